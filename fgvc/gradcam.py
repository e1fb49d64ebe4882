"""Grad-CAM heatmaps and overlays, computed with the ``grad-cam`` library (pytorch-grad-cam).

    trained = load_trained("logs/<run>/last.pt")
    result = explain(model, cfg.arch, cfg.img_size, image)          # image: banner-cropped PIL
    result.overlay                                                  # uint8 RGB, size of the image

The network sees the whole (banner-cropped) image resized so its short side is the run's
``img_size``; EfficientNets pool globally, so no centre crop is needed and no part of the
aircraft is cut away from the explanation. The map is resized back to the image and drawn
with OpenCV's JET colour map, converted from OpenCV's BGR to RGB.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torch.utils.data import Dataset
from torchvision import transforms

from fgvc.checkpoint import load_trained
from fgvc.config import CAM_METHODS, TrainConfig
from fgvc.data import BadImageError, Normalization, build_split, dataset_labels, load_image
from fgvc.model import cam_target_layer, model_spec

METHODS = dict(zip(CAM_METHODS, (GradCAM, GradCAMPlusPlus, HiResCAM, XGradCAM, LayerCAM, EigenCAM, ScoreCAM,
                                 AblationCAM), strict=True))


@dataclass
class Explanation:
    """One image explained for one class."""

    image: np.ndarray  # (H, W, 3) uint8 RGB, the banner-cropped input
    cam: np.ndarray  # (H, W) float in [0, 1]
    overlay: np.ndarray  # (H, W, 3) uint8 RGB
    target: int  # the class explained
    predicted: int
    probability: float  # of the predicted class


def cam_input(image: Image.Image, img_size: int, norm: Normalization) -> torch.Tensor:
    """The whole image, short side resized to ``img_size``, normalised, with a batch dimension."""
    return transforms.Compose([
        transforms.Resize(img_size, interpolation=norm.interpolation),
        transforms.ToTensor(),
        transforms.Normalize(norm.mean, norm.std),
    ])(image).unsqueeze(0)


def overlay_heatmap(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Blend ``cam`` (values in [0, 1], any size) over the uint8 RGB ``image`` with the JET colour map.

    Hot (1) comes out red and cold (0) blue in the returned uint8 RGB array of the image's size.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image has shape {image.shape}; expected (H, W, 3) RGB")
    cam = cv2.resize(np.clip(cam, 0, 1).astype(np.float32), (image.shape[1], image.shape[0]))
    heatmap = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * cam), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blended = image_weight * image.astype(np.float32) + (1 - image_weight) * heatmap.astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)


def compute_cam(model: nn.Module, arch: str, inputs: torch.Tensor, target: int, method: str = "gradcam",
                layer: nn.Module | None = None) -> np.ndarray:
    """The (H, W) map in [0, 1] of ``method`` for class ``target`` on one normalised input (1, 3, H, W).

    ``layer`` defaults to the backbone's last feature map (``model_spec(arch).cam_layer``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}: expected one of {sorted(METHODS)}")
    layer = layer if layer is not None else cam_target_layer(model, arch)
    with METHODS[method](model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=inputs, targets=[ClassifierOutputTarget(target)])[0]


def explain(model: nn.Module, arch: str, img_size: int, image: Image.Image, target: int | None = None,
            method: str = "gradcam") -> Explanation:
    """Predict ``image`` and explain ``target`` (default: the predicted class) with ``method``."""
    model.eval()
    device = next(model.parameters()).device
    inputs = cam_input(image, img_size, model_spec(arch).norm).to(device)
    with torch.no_grad():
        probs = model(inputs).float().softmax(dim=1)[0]
    predicted = int(probs.argmax())
    target = predicted if target is None else target
    cam = compute_cam(model, arch, inputs, target, method)
    rgb = np.asarray(image.convert("RGB"))
    cam = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]))
    return Explanation(rgb, cam, overlay_heatmap(rgb, cam), target, predicted, float(probs[predicted]))


def cam_peak(cam: np.ndarray) -> tuple[int, int]:
    """(x, y) of the map's hottest pixel."""
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(x), int(y)


def save_overlay(explanation: Explanation, path: str | Path) -> Path:
    """Write the overlay as a PNG (RGB order on disk, as every viewer expects)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(explanation.overlay).save(path)
    return path


def load_split_images(cfg: TrainConfig, split: str, data_root: str | Path | None = None) -> Dataset:
    """The images of ``split`` as banner-cropped PIL images (no transform), for explaining."""
    root = data_root if data_root is not None else cfg.data_root
    return build_split(dataclasses.replace(cfg, data_root=str(root), download=False), split, None)


def pick_examples(model: nn.Module, cfg: TrainConfig, dataset: Dataset, count: int, seed: int = 0) -> list[int]:
    """Indices of up to ``count`` images, half that the model classifies correctly and half it gets wrong
    (topped up from the other kind when one runs short), in a seeded random order."""
    model.eval()
    device = next(model.parameters()).device
    norm = model_spec(cfg.arch).norm
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    correct: list[int] = []
    wrong: list[int] = []
    for index in order:
        image, label = dataset[index]
        with torch.no_grad():
            predicted = int(model(cam_input(image, cfg.img_size, norm).to(device)).argmax())
        (correct if predicted == label else wrong).append(index)
        if len(correct) >= count and len(wrong) >= count:
            break
    half = count // 2
    take_wrong = min(len(wrong), max(half, count - len(correct)))
    take_correct = min(len(correct), count - take_wrong)
    return correct[:take_correct] + wrong[:take_wrong]


def explain_examples(model: nn.Module, cfg: TrainConfig, dataset: Dataset, indices: list[int],
                     method: str = "gradcam") -> tuple[list[Explanation], list[int]]:
    """Explain the predicted class of each chosen image; returns the explanations and the true labels."""
    explanations, labels = [], []
    for index in indices:
        image, label = dataset[index]
        explanations.append(explain(model, cfg.arch, cfg.img_size, image, method=method))
        labels.append(label)
    return explanations, labels


def compare_methods(model: nn.Module, cfg: TrainConfig, image: Image.Image,
                    methods: tuple[str, ...] = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam",
                                                "eigencam")) -> dict[str, Explanation]:
    """The same image explained (for its predicted class) by each of ``methods``."""
    return {method: explain(model, cfg.arch, cfg.img_size, image, method=method) for method in methods}


def write_overlays(checkpoint: str | Path, images: list[str | Path], out: str | Path, method: str = "gradcam",
                   class_name: str | None = None, banner_px: int = 0) -> list[dict[str, object]]:
    """One overlay PNG per image in ``out``; an unreadable image gets an ``error`` entry instead."""
    trained = load_trained(checkpoint)
    model, cfg, classes = trained.model, trained.cfg, trained.classes
    if class_name is not None and class_name not in classes:
        raise ValueError(f"class {class_name!r} is not one of the {len(classes)} classes of {checkpoint}")
    target = None if class_name is None else classes.index(class_name)
    results: list[dict[str, object]] = []
    for path in images:
        try:
            image = load_image(path, banner_px)
        except BadImageError as err:  # names the file and what is wrong with it
            results.append({"file": str(path), "error": str(err)})
            continue
        explanation = explain(model, cfg.arch, cfg.img_size, image, target, method)
        written = save_overlay(explanation, Path(out) / f"{Path(path).stem}-{method}.png")
        results.append({"file": str(path), "overlay": str(written), "explained": classes[explanation.target],
                        "predicted": classes[explanation.predicted], "probability": explanation.probability})
    return results


def explain_confusions(model: nn.Module, cfg: TrainConfig, dataset: Dataset, classes: list[str],
                       confusions: list[dict[str, Any]], count: int = 3, method: str = "gradcam"
                       ) -> list[tuple[Explanation, Explanation]]:
    """For each of the first ``count`` most-confused pairs that has a misclassified image in ``dataset``:
    that image explained for the predicted class and for the true class."""
    model.eval()
    device = next(model.parameters()).device
    norm = model_spec(cfg.arch).norm
    labels = dataset_labels(dataset)
    pairs = []
    for confusion in confusions:
        true, predicted = classes.index(confusion["true"]), classes.index(confusion["predicted"])
        for index in (i for i, label in enumerate(labels) if label == true):
            image = dataset[index][0]
            with torch.no_grad():
                guess = int(model(cam_input(image, cfg.img_size, norm).to(device)).argmax())
            if guess == predicted:
                pairs.append((explain(model, cfg.arch, cfg.img_size, image, predicted, method),
                              explain(model, cfg.arch, cfg.img_size, image, true, method)))
                break
        if len(pairs) == count:
            break
    return pairs
