"""Grad-CAM heatmaps and overlays, computed with the ``grad-cam`` library (pytorch-grad-cam).

    predictor = Predictor.from_checkpoint("logs/<run>/last.pt")
    result = explain(predictor, image)          # image: a banner-cropped PIL image
    result.overlay                              # uint8 RGB, the size of what the network saw

The network sees exactly what ``fgvc predict`` feeds it (the predictor's view, by default the
whole banner-cropped photo squashed to a square), so both name the same class with the same
probability. The map is resized back onto the part of the photo the view shows (all of it,
except for the ``crop`` view) and drawn with OpenCV's JET colour map, converted from BGR to RGB.
"""

from __future__ import annotations

import dataclasses
import os
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

from fgvc.config import CAM_METHODS, TrainConfig
from fgvc.data.datasets import build_split, dataset_labels
from fgvc.data.images import load_image
from fgvc.data.transforms import visible_part
from fgvc.errors import BadImageError, ConfigError
from fgvc.model import cam_target_layer
from fgvc.predict import Predictor, expand_images

METHODS = dict(zip(CAM_METHODS, (GradCAM, GradCAMPlusPlus, HiResCAM, XGradCAM, LayerCAM, EigenCAM, ScoreCAM,
                                 AblationCAM), strict=True))


@dataclass
class Explanation:
    """One image explained for one class."""

    image: np.ndarray  # (H, W, 3) uint8 RGB: the part of the (banner-cropped) photo the network saw
    cam: np.ndarray  # (H, W) float in [0, 1]
    overlay: np.ndarray  # (H, W, 3) uint8 RGB
    target: int  # the class explained
    predicted: int
    probability: float  # of the predicted class


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

    ``layer`` defaults to the backbone's last feature map (``model_spec(arch).cam_layer``). The
    library's context manager would swallow an ``IndexError`` (a wrong layer) and hand back
    ``None``; here every error propagates, and a map of the wrong shape is refused.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown CAM method {method!r}: expected one of {sorted(METHODS)}")
    layer = layer if layer is not None else cam_target_layer(model, arch)
    cam = METHODS[method](model=model, target_layers=[layer])
    try:
        maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(target)])
    finally:
        cam.activations_and_grads.release()
    if not isinstance(maps, np.ndarray) or maps.shape != (1, *inputs.shape[2:]) or not np.isfinite(maps).all():
        raise RuntimeError(f"{method} on layer {type(layer).__name__} gave "
                           f"{getattr(maps, 'shape', maps)!r}: expected a finite map of shape {(1, *inputs.shape[2:])}")
    return maps[0]


def explain(predictor: Predictor, image: Image.Image, target: int | None = None,
            method: str = "gradcam") -> Explanation:
    """Predict ``image`` as ``fgvc predict`` does and explain ``target`` (default: the predicted class)."""
    probabilities = predictor.scores([image])[0]
    predicted = int(np.argmax(probabilities))
    target = predicted if target is None else target
    cam = compute_cam(predictor.model, predictor.cfg.arch, predictor.inputs(image), target, method)
    rgb = np.asarray(visible_part(image, predictor.view).convert("RGB"))
    cam = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]))
    return Explanation(rgb, cam, overlay_heatmap(rgb, cam), target, predicted, float(probabilities[predicted]))


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


def predicted_classes(predictor: Predictor, dataset: Dataset, indices: list[int]) -> list[int]:
    """The predicted class of each chosen image, ``predictor.batch_size`` images at a time."""
    predicted: list[int] = []
    for start in range(0, len(indices), predictor.batch_size):
        chunk = [dataset[i][0] for i in indices[start:start + predictor.batch_size]]
        predicted.extend(int(i) for i in predictor.scores(chunk).argmax(axis=1))
    return predicted


def pick_examples(predictor: Predictor, dataset: Dataset, count: int, seed: int = 0) -> list[int]:
    """Indices of up to ``count`` images, half that the model classifies correctly and half it gets wrong
    (topped up from the other kind when one runs short), in a seeded random order."""
    order = np.random.default_rng(seed).permutation(len(dataset)).tolist()
    labels = dataset_labels(dataset)
    correct: list[int] = []
    wrong: list[int] = []
    for start in range(0, len(order), predictor.batch_size):
        chunk = order[start:start + predictor.batch_size]
        for index, predicted in zip(chunk, predicted_classes(predictor, dataset, chunk)):
            (correct if predicted == labels[index] else wrong).append(index)
        if len(correct) >= count and len(wrong) >= count:
            break
    half = count // 2
    take_wrong = min(len(wrong), max(half, count - len(correct)))
    take_correct = min(len(correct), count - take_wrong)
    return correct[:take_correct] + wrong[:take_wrong]


def explain_examples(predictor: Predictor, dataset: Dataset, indices: list[int],
                     method: str = "gradcam") -> tuple[list[Explanation], list[int]]:
    """Explain the predicted class of each chosen image; returns the explanations and the true labels."""
    explanations, labels = [], []
    for index in indices:
        image, label = dataset[index]
        explanations.append(explain(predictor, image, method=method))
        labels.append(label)
    return explanations, labels


def compare_methods(predictor: Predictor, image: Image.Image,
                    methods: tuple[str, ...] = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam",
                                                "eigencam")) -> dict[str, Explanation]:
    """The same image explained (for its predicted class) by each of ``methods``."""
    return {method: explain(predictor, image, method=method) for method in methods}


def overlay_paths(files: list[Path], out: str | Path, method: str) -> list[Path]:
    """Where the overlay of each file goes: ``out/<folders below the files' common parent>/<stem>-<method>.png``,
    so photos of the same name in different folders never overwrite each other."""
    resolved = [path.resolve() for path in files]
    if not resolved:
        return []
    base = Path(os.path.commonpath([path.parent for path in resolved]))
    paths = [Path(out) / path.parent.relative_to(base) / f"{path.stem}-{method}.png" for path in resolved]
    sources: dict[Path, set[Path]] = {}
    for path, file in zip(paths, resolved):
        sources.setdefault(path, set()).add(file)
    # a.jpg and a.png in one folder would share a name: those keep their suffix
    return [path.with_name(f"{file.name}-{method}.png") if len(sources[path]) > 1 else path
            for path, file in zip(paths, resolved)]


def write_overlays(checkpoint: str | Path, images: list[str | Path], out: str | Path, method: str = "gradcam",
                   class_name: str | None = None, crop_banner: bool | None = None, device: str = "auto",
                   view: str | None = None, weights: str | None = None) -> list[dict[str, Any]]:
    """One overlay PNG per image (folders are searched for images) under ``out``; an unreadable image gets an
    ``error`` entry instead. ``crop_banner`` cuts the run's FGVC-Aircraft banner first (True: from every image;
    None, auto: from the dataset's own photos, as ``Predictor.predict_files``); ``weights`` as in
    ``Predictor.from_checkpoint``."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device, view=view, weights=weights)
    classes = predictor.classes
    if class_name is not None and class_name not in classes:
        raise ConfigError(f"class {class_name!r} is not one of the {len(classes)} classes of {checkpoint}")
    target = None if class_name is None else classes.index(class_name)
    files = expand_images(images)
    predictor.say_auto_cropped(files, crop_banner)
    results: list[dict[str, Any]] = []
    for path, destination in zip(files, overlay_paths(files, out, method)):
        try:
            image = load_image(path, predictor.banner_rows(path, crop_banner))
        except BadImageError as err:  # names the file and what is wrong with it
            results.append({"file": str(path), "error": str(err)})
            continue
        explanation = explain(predictor, image, target, method)
        results.append({"file": str(path), "overlay": str(save_overlay(explanation, destination)),
                        "explained": classes[explanation.target], "predicted": classes[explanation.predicted],
                        "probability": explanation.probability})
    return results


def explain_confusions(predictor: Predictor, dataset: Dataset, confusions: list[dict[str, Any]], count: int = 3,
                       method: str = "gradcam") -> list[tuple[Explanation, Explanation]]:
    """For each of the first ``count`` most-confused pairs that has a misclassified image in ``dataset``:
    that image explained for the predicted class and for the true class."""
    classes, labels = predictor.classes, dataset_labels(dataset)
    pairs = []
    for confusion in confusions:
        true, predicted = classes.index(confusion["true"]), classes.index(confusion["predicted"])
        candidates = [i for i, label in enumerate(labels) if label == true]
        for index, guess in zip(candidates, predicted_classes(predictor, dataset, candidates)):
            if guess == predicted:
                image = dataset[index][0]
                pairs.append((explain(predictor, image, predicted, method), explain(predictor, image, true, method)))
                break
        if len(pairs) == count:
            break
    return pairs
