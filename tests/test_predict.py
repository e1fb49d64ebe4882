"""One inference path: every command names the same class with the same probability, the evaluation
views behave as documented, Grad-CAM keeps every output and every error, and inference stays light."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import same_top1, train
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch.utils.data import DataLoader, TensorDataset

from fgvc.apps.cam_examples import load_split_images
from fgvc.apps.cam_files import write_overlays
from fgvc.apps.cli import main
from fgvc.core.config import make_config
from fgvc.core.runtime import Runtime
from fgvc.data import FGVC_FOLDER, eval_transform
from fgvc.models.backbones import build_model, model_spec
from fgvc.models.gradcam import compute_cam, explain
from fgvc.models.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]


def test_every_path_names_the_same_class_with_the_same_probability(
        short_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a flag: fgvc predict and fgvc gradcam cut the banner from the dataset's own photos, as evaluate."""
    checkpoint = short_run / "last.pt"
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    dataset = load_split_images(predictor.cfg, "test")
    files = [path for path, _ in dataset.samples]
    indices = list(range(0, len(dataset), max(1, len(dataset) // 12)))[:12]
    explained = [files[i] for i in indices]

    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(checkpoint), *files, "--json", "--topk", "1"]) == 0
    by_predict = {Path(r["file"]).name: (r["top"][0]["class"], r["top"][0]["probability"])
                  for r in json.loads(capsys.readouterr().out)}

    assert main(["evaluate", "--checkpoint", str(checkpoint), "--split", "test", "--out", str(tmp_path / "eval")]) == 0
    with (tmp_path / "eval" / "predictions.csv").open(newline="") as f:
        by_evaluate = {Path(r["file"]).name: (r["predicted"], float(r["probability"])) for r in csv.DictReader(f)}

    by_gradcam = {Path(r["file"]).name: (r["predicted"], r["probability"])
                  for r in write_overlays(checkpoint, explained, tmp_path / "cams", device="cpu")}
    by_notebook = {}
    for index, file in zip(indices, explained, strict=True):
        explanation = explain(predictor, dataset[index][0])
        by_notebook[Path(file).name] = (predictor.classes[explanation.predicted], explanation.probability)

    assert len(by_predict) == len(files) and {*by_gradcam} == {*by_notebook} == {Path(f).name for f in explained}
    assert same_top1(by_predict, by_evaluate)
    for other in (by_gradcam, by_notebook):
        assert same_top1({name: by_predict[name] for name in other}, other)
    assert len(set(np.round([p for _, p in by_predict.values()], 4))) > 1  # scores that depend on the image


def ends_images(count: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    """Wide 3:1 photos whose class shows only at the ends: two squares in the outer sixths, red for class 0 and
    blue for class 1. The middle third always holds one red and one blue square, so it says nothing."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(count):
        label = int(rng.integers(2))
        pixels = rng.uniform(90, 160, size=(64, 192, 3))
        colours = {0: (230, 30, 30), 1: (30, 30, 230)}
        for x_lo, colour in ((2, colours[label]), (144, colours[label]), (64, colours[0]), (96, colours[1])):
            x, y = int(x_lo + rng.integers(0, 9)), int(rng.integers(0, 40))
            pixels[y:y + 24, x:x + 24] = colour
        images.append(Image.fromarray(pixels.astype(np.uint8)))
        labels.append(label)
    return images, labels


@pytest.mark.slow
def test_crop_view_loses_the_ends_of_a_wide_photo_and_the_default_does_not() -> None:
    cfg = make_config("demo", img_size=64, epochs=2, lr=2e-3, warmup_epochs=0, batch_size=16)
    assert cfg.eval_view == "squash"  # the default keeps the whole aircraft
    train_images, train_labels = ends_images(160, seed=1)
    transform = eval_transform(cfg.img_size, model_spec(cfg.arch).norm, cfg.eval_view)
    loader = DataLoader(TensorDataset(torch.stack([transform(i) for i in train_images]), torch.tensor(train_labels)),
                        batch_size=16, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model(cfg.arch, 2, pretrained=cfg.pretrained, bn_momentum=0.1)
    train(model, cfg, loader)
    runtime = Runtime(torch.device("cpu"))
    test_images, test_labels = ends_images(80, seed=2)
    accuracy = {}
    for view in ("squash", "crop", "whole"):
        predictor = Predictor(model.eval(), cfg, ["red ends", "blue ends"], runtime, view=view)
        accuracy[view] = float((predictor.scores(test_images).argmax(1) == np.array(test_labels)).mean())
    print(f"\naccuracy on 3:1 photos whose ends decide the class: {accuracy}")
    assert accuracy["squash"] >= 0.9
    assert accuracy["crop"] <= 0.7  # the centre square holds no evidence: about chance


@pytest.mark.slow  # a fresh Python process: about 15 s
def test_inference_does_not_load_the_training_stack(short_run: Path, synthetic_root: Path) -> None:
    image = next((synthetic_root / FGVC_FOLDER / "data" / "images").glob("*.jpg"))
    script = ("import sys; from fgvc.apps.cli import main; code = main(['predict', '--checkpoint', sys.argv[1], "
              "sys.argv[2], '--json']); loaded = [m for m in ('matplotlib', 'fgvc.training.engine', "
              "'fgvc.evaluation.analysis', "
              "'fgvc.evaluation.plots', 'fgvc.models.gradcam', 'gradio', 'onnxruntime', 'onnx') if m in sys.modules]; "
              "print('LOADED', loaded); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script, str(short_run / "last.pt"), str(image)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_gradcam_keeps_every_output_of_photos_with_the_same_name(short_run: Path, synthetic_root: Path,
                                                                 tmp_path: Path) -> None:
    sources = sorted((synthetic_root / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[:30]
    photos = tmp_path / "photos"
    for i, source in enumerate(sources):  # 10 class folders of 3 photos, named 1.jpg, 2.jpg, 3.jpg in each
        folder = photos / f"class {i // 3}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / f"{i % 3 + 1}.jpg")
    out = tmp_path / "cams"
    assert main(["gradcam", "--checkpoint", str(short_run / "last.pt"), str(photos), "--out", str(out),
                 "--device", "cpu"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(written) == 30
    assert written[:3] == ["class 0/1-gradcam.png", "class 0/2-gradcam.png", "class 0/3-gradcam.png"]


def test_a_cam_error_raises_instead_of_coming_back_as_none() -> None:
    model = build_model("efficientnet-b0", 2, pretrained=False).eval()
    inputs, layer = torch.randn(1, 3, 64, 64), model.get_submodule("_bn1")

    def through_the_library_context_manager() -> np.ndarray | None:
        with GradCAM(model=model, target_layers=[layer]) as cam:
            return cam(input_tensor=inputs, targets=[ClassifierOutputTarget(5)])[0]

    assert through_the_library_context_manager() is None  # class 5 of 2: the IndexError was swallowed
    with pytest.raises(IndexError):
        compute_cam(model, "efficientnet-b0", inputs, 5)
    with pytest.raises(AttributeError):  # a layer that never runs: nothing recorded, no silent map either
        compute_cam(model, "efficientnet-b0", inputs, 0, layer=torch.nn.Conv2d(3, 3, 1))
    assert compute_cam(model, "efficientnet-b0", inputs, 1).shape == (64, 64)
