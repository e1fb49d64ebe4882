"""``fgvc bench data``: the training input pipeline, as batches out of a DataLoader.

The baseline is what fgvc did before it had a pipeline of its own: torchvision's ``FGVCAircraft`` on
the original JPEGs, the banner cropped, then RandomResizedCrop, RandomHorizontalFlip and
RandomAffine as torchvision transforms, ToTensor and Normalize in each worker. Against it: the
project's loader (one affine warp per image, reduced-size JPEG decoding, uint8 batches normalised
where the model runs) on the original JPEGs, and on the files ``fgvc prepare`` writes. Each runs
with 1 worker and with a worker per core.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from fgvc.apps.benchmarks import Row, fgvc_sized_dataset, measure, table
from fgvc.core.config import make_config
from fgvc.core.runtime import resolve_device
from fgvc.data.images import load_image
from fgvc.data.layout import prepared_info
from fgvc.data.loaders import build_loaders
from fgvc.data.normalization import Normalization
from fgvc.data.prepare import prepare_fgvc
from fgvc.data.transforms import AFFINE_SCALE, AFFINE_TRANSLATE, normalize, prepared_short_side
from fgvc.models.backbones import model_spec


def torchvision_augmentations(img_size: int, norm: Normalization, min_crop_scale: float,
                              affine_degrees: float) -> transforms.Compose:
    """The project's three augmentations as torchvision transforms, in float, as the baseline runs them."""
    return transforms.Compose([
        transforms.RandomResizedCrop(img_size, scale=(min_crop_scale, 1.0), interpolation=norm.interpolation),
        transforms.RandomHorizontalFlip(),
        transforms.RandomAffine(degrees=affine_degrees, translate=AFFINE_TRANSLATE, scale=AFFINE_SCALE,
                                shear=affine_degrees / 2, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(),
        transforms.Normalize(norm.mean, norm.std),
    ])


def _passes(loader: DataLoader, device: torch.device, norm: Normalization | None) -> Callable[[], int]:
    """One pass over ``loader``, each batch moved to ``device`` (and normalised there when uint8)."""
    def run() -> int:
        count = 0
        for images, _ in loader:
            images = images.to(device, non_blocking=True)
            if images.dtype == torch.uint8:
                images = normalize(images, norm)
            count += images.shape[0]
        return count
    return run


def run(*, repeats: int, device: str, workdir: str | Path, img_size: int | None = None, batch_size: int | None = None,
        quick: bool = False) -> str:
    """Images per second of each pipeline with 1 worker and with one per core, the median of ``repeats`` passes;
    a table for each. The generated images are kept under ``workdir``; ``quick``: tiny inputs."""
    img_size = img_size or (64 if quick else 448)
    batch_size = batch_size or (4 if quick else 16)
    images = 12 if quick else 96
    torch_device = resolve_device(device)
    root = fgvc_sized_dataset(Path(workdir) / f"fgvc-sized-{images}", images)
    prepared = Path(workdir) / f"fgvc-sized-{images}-prepared-{img_size}"
    if not prepared_info(prepared):
        prepare_fgvc(root, prepared, img_size)
    cfg = make_config("b4", data_root=str(root), img_size=img_size, batch_size=batch_size, train_split="trainval",
                      eval_split="test")
    norm = model_spec(cfg.arch).norm
    baseline_set = datasets.FGVCAircraft(
        root, split="trainval", transform=torchvision_augmentations(img_size, norm, cfg.min_crop_scale,
                                                                    cfg.affine_degrees),
        loader=functools.partial(load_image, banner_px=cfg.banner_px))
    pipelines: list[tuple[str, Callable[[int], DataLoader], Normalization | None]] = [
        ("baseline: torchvision transforms, original JPEGs",
         lambda workers: DataLoader(baseline_set, batch_size=batch_size, shuffle=True, drop_last=True,
                                    num_workers=workers, persistent_workers=True), None),
        ("fgvc: one warp, draft decoding, uint8; original JPEGs",
         lambda workers: build_loaders(dataclasses.replace(cfg, workers=workers)).train, norm),
        (f"fgvc on `fgvc prepare` files (short side {prepared_short_side(img_size)} px)",
         lambda workers: build_loaders(dataclasses.replace(cfg, workers=workers, data_root=str(prepared))).train,
         norm),
    ]
    reports = []
    for workers in sorted({1, len(os.sched_getaffinity(0))}):
        rows: list[Row] = []
        for name, make_loader, batch_norm in pipelines:
            loader = make_loader(workers)
            rows.append(measure(name, _passes(loader, torch_device, batch_norm), repeats, device=torch_device))
            del loader  # its persistent workers end here, before the next pipeline is measured
            gc.collect()
        reports.append(table(f"Training input pipeline, {img_size} px, batch {batch_size}, {workers} worker(s), "
                             f"{len(baseline_set)} images per pass", rows))
    return "\n\n".join(reports)
