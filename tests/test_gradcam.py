"""Grad-CAM points at the object, overlays have the right colours and size, and the CLI writes PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import train
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from fgvc.core.config import make_config
from fgvc.data import FGVC_FOLDER
from fgvc.models.backbones import build_model, model_spec
from fgvc.models.gradcam import cam_peak, compute_cam
from fgvc.models.heatmap import overlay_heatmap

SIZE, PART = 128, 32


def part_images(count: int, seed: int, arch: str,
                size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Noisy ``size``-px images with grey distractor squares and one coloured square, red (class 0) or blue
    (class 1), at a random place: only that square decides the class. Returns images (normalised for ``arch``),
    labels and square corners."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.3, 0.6, size=(count, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, 2, size=count)
    corners = []
    for image, label in zip(images, labels):
        for _ in range(3):
            x, y = rng.integers(0, size - PART, size=2)
            image[:, y:y + PART, x:x + PART] = rng.uniform(0.1, 0.9)
        x, y = (int(v) for v in rng.integers(0, size - PART, size=2))
        image[:, y:y + PART, x:x + PART] = 0.1
        image[0 if label == 0 else 2, y:y + PART, x:x + PART] = 0.95
        corners.append((x, y))
    norm = model_spec(arch).norm
    mean, std = np.array(norm.mean, np.float32)[:, None, None], np.array(norm.std, np.float32)[:, None, None]
    return torch.from_numpy((images - mean) / std), torch.from_numpy(labels), corners


def share_pointing_at_the_part(model: torch.nn.Module, arch: str, images: torch.Tensor, labels: torch.Tensor,
                               corners: list[tuple[int, int]]) -> float:
    """Share of images whose Grad-CAM peak (for the true class) lies on the coloured square, give or take
    half a feature-map cell (16 px at stride 32)."""
    model.eval()
    hits = 0
    for image, label, (x, y) in zip(images, labels, corners):
        peak_x, peak_y = cam_peak(compute_cam(model, arch, image[None], int(label)))
        hits += x - 16 <= peak_x < x + PART + 16 and y - 16 <= peak_y < y + PART + 16
    return hits / len(images)


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "pretrained", "epochs", "lr", "train_size"),
                         [("efficientnet-b0", False, 6, 3e-3, 96), ("efficientnet-lite0", True, 2, 2e-3, SIZE)])
def test_gradcam_points_at_the_part_that_decides_the_class(arch: str, pretrained: bool, epochs: int, lr: float,
                                                           train_size: int) -> None:
    """B0 trained from random weights (on the same squares in smaller images: half the cost), and Lite0
    fine-tuned from its ImageNet weights; the maps are read on SIZE-px images. The control is the same
    architecture from random weights, untrained."""
    torch.manual_seed(0)
    train_x, train_y, _ = part_images(192, seed=1, arch=arch, size=train_size)
    test_x, test_y, corners = part_images(48, seed=2, arch=arch)
    untrained = build_model(arch, 2, pretrained=False, bn_momentum=0.1)
    model = build_model(arch, 2, pretrained=pretrained, bn_momentum=0.1)
    if not pretrained:
        model.load_state_dict(untrained.state_dict())
    cfg = make_config("demo", arch=arch, epochs=epochs, lr=lr, batch_size=16, warmup_epochs=0)
    train(model, cfg, DataLoader(TensorDataset(train_x, train_y), batch_size=16, shuffle=True, drop_last=True))
    with torch.no_grad():
        accuracy = (model.eval()(test_x).argmax(1) == test_y).float().mean().item()
    trained_share = share_pointing_at_the_part(model, arch, test_x, test_y, corners)
    untrained_share = share_pointing_at_the_part(untrained, arch, test_x, test_y, corners)
    print(f"\n{arch} (pretrained={pretrained}): accuracy {accuracy:.2f}; CAM peak on the part: "
          f"trained {trained_share:.2f}, untrained {untrained_share:.2f} "
          f"(a peak lands in the zone by chance ~{(PART + 32) ** 2 / SIZE ** 2:.2f})")
    assert accuracy >= 0.8
    assert trained_share >= 0.6  # a clear majority
    assert untrained_share < 0.6  # the same check fails without training: it can fail


def test_overlay_is_red_where_the_map_is_hot_and_has_the_image_size() -> None:
    image = np.full((50, 80, 3), 128, dtype=np.uint8)
    cam = np.zeros((7, 7), dtype=np.float32)
    cam[:, :3] = 1.0  # hot on the left
    overlay = overlay_heatmap(image, cam)
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    left, right = overlay[:, :20].reshape(-1, 3).mean(0), overlay[:, -20:].reshape(-1, 3).mean(0)
    assert left[0] > left[2] + 40  # red (RGB order), not OpenCV's BGR
    assert right[2] > right[0] + 40  # cold is blue
    with pytest.raises(ValueError, match="RGB"):
        overlay_heatmap(image[:, :, 0], cam)


def test_gradcam_command_writes_one_overlay_per_image(short_run: Path, synthetic_root: Path,
                                                      tmp_path: Path) -> None:
    from fgvc.apps.cli import main

    images = sorted((synthetic_root / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[:2]
    assert main(["gradcam", "--checkpoint", str(short_run / "last.pt"), *map(str, images),
                 "--out", str(tmp_path), "--method", "gradcam++", "--crop-banner"]) == 0
    written = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in written] == sorted(f"{p.stem}-gradcam++.png" for p in images)
    with Image.open(images[0]) as raw, Image.open(tmp_path / f"{images[0].stem}-gradcam++.png") as overlay:
        assert overlay.size == (raw.width, raw.height - 20)
    assert main(["gradcam", "--checkpoint", str(short_run / "last.pt"), str(images[0]), "--out",
                 str(tmp_path), "--class", "No Such Plane"]) == 2
