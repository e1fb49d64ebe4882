"""Computing class activation maps with the ``grad-cam`` library (pytorch-grad-cam): maps, not pictures or files.

    predictor = Predictor.from_checkpoint("logs/<run>/last.pt")
    result = explain(predictor, image)          # image: a banner-cropped PIL image
    result.cam                                  # (H, W) in [0, 1], the size of what the network saw
    result.overlay                              # drawn on demand by ``fgvc.models.heatmap``

The network sees exactly what ``fgvc predict`` feeds it (the predictor's view, by default the
whole banner-cropped photo squashed to a square), so both name the same class with the same
probability. The map is resized back onto the part of the photo the view shows (all of it,
except for the ``crop`` view). Which images to explain is ``fgvc.apps.cam_examples``'s job; the files
of ``fgvc gradcam`` are ``fgvc.apps.cam_files``'s.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from fgvc.core.defaults import CAM_METHODS, PER_CHANNEL_METHODS
from fgvc.core.errors import ConfigError
from fgvc.data.transforms import visible_part
from fgvc.models.backbones import cam_target_layer
from fgvc.models.heatmap import overlay_heatmap
from fgvc.models.predictor import Predictor

METHODS = dict(zip(CAM_METHODS, (GradCAM, GradCAMPlusPlus, HiResCAM, XGradCAM, LayerCAM, EigenCAM, ScoreCAM,
                                 AblationCAM), strict=True))
CAM_BATCH = 32  # inputs per forward pass of those methods


@dataclass
class Explanation:
    """One image explained for one class."""

    image: np.ndarray  # (H, W, 3) uint8 RGB: the part of the (banner-cropped) photo the network saw
    cam: np.ndarray  # (H, W) float in [0, 1]
    target: int  # the class explained
    predicted: int
    probability: float  # of the predicted class

    @functools.cached_property
    def overlay(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB: the map drawn over the image (``fgvc.models.heatmap``)."""
        return overlay_heatmap(self.image, self.cam)


def compute_cam(model: nn.Module, arch: str, inputs: torch.Tensor, target: int, method: str = "gradcam",
                layer: nn.Module | None = None) -> np.ndarray:
    """The (H, W) map in [0, 1] of ``method`` for class ``target`` on one normalised input (1, 3, H, W).

    ``layer`` defaults to the backbone's last feature map (``model_spec(arch).cam_layer``). The
    per-channel methods run their forward passes ``CAM_BATCH`` inputs at a time. The
    library's context manager would swallow an ``IndexError`` (a wrong layer) and hand back
    ``None``; here every error propagates, and a map of the wrong shape is refused.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown CAM method {method!r}: expected one of {sorted(METHODS)}")
    layer = layer if layer is not None else cam_target_layer(model, arch)
    cam = METHODS[method](model=model, target_layers=[layer])
    if method in PER_CHANNEL_METHODS:
        cam.batch_size = CAM_BATCH  # the attribute both read (ScoreCAM would take 16)
    try:
        maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(target)])
    finally:
        cam.activations_and_grads.release()
    if not isinstance(maps, np.ndarray) or maps.shape != (1, *inputs.shape[2:]) or not np.isfinite(maps).all():
        raise RuntimeError(f"{method} on layer {type(layer).__name__} gave "
                           f"{getattr(maps, 'shape', maps)!r}: expected a finite map of shape {(1, *inputs.shape[2:])}")
    return maps[0]


@dataclass(frozen=True)
class CamCost:
    """What a per-channel method (ScoreCAM, AblationCAM) costs for one input, from one timed batch."""

    passes: int  # forward passes: one per channel of the target layer
    batch_seconds: float  # one forward pass of ``CAM_BATCH`` inputs, timed on this machine

    @property
    def batches(self) -> int:
        return math.ceil(self.passes / CAM_BATCH)

    @property
    def seconds(self) -> float:
        """The estimated time of the whole method."""
        return self.batches * self.batch_seconds


def per_channel_cost(model: nn.Module, arch: str, inputs: torch.Tensor) -> CamCost:
    """Time one forward pass of ``CAM_BATCH`` copies of ``inputs`` (1, 3, H, W), the step that ScoreCAM and
    AblationCAM repeat, and count the channels of the target layer on the way."""
    channels: list[int] = []
    handle = cam_target_layer(model, arch).register_forward_hook(lambda _m, _i, out: channels.append(out.shape[1]))
    try:
        with torch.no_grad():
            start = time.perf_counter()
            float(model(inputs.repeat(CAM_BATCH, 1, 1, 1)).sum())  # reading the result waits for a GPU too
            seconds = time.perf_counter() - start
    finally:
        handle.remove()
    return CamCost(channels[0], seconds)


def explain(predictor: Predictor, image: Image.Image, target: int | None = None, method: str = "gradcam",
            probabilities: np.ndarray | None = None) -> Explanation:
    """Predict ``image`` as ``fgvc predict`` does (unless the caller has: its ``probabilities``) and explain
    ``target`` (default: the predicted class)."""
    if probabilities is None:
        probabilities = predictor.scores([image])[0]
    predicted = int(np.argmax(probabilities))
    target = predicted if target is None else target
    cam = compute_cam(predictor.model, predictor.cfg.arch, predictor.inputs(image), target, method)
    rgb = np.asarray(visible_part(image, predictor.view).convert("RGB"))
    cam = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]))
    return Explanation(rgb, cam, target, predicted, float(probabilities[predicted]))


def cam_peak(cam: np.ndarray) -> tuple[int, int]:
    """(x, y) of the map's hottest pixel."""
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(x), int(y)


def compare_methods(predictor: Predictor, image: Image.Image,
                    methods: tuple[str, ...] = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam",
                                                "eigencam")) -> dict[str, Explanation]:
    """The same image explained (for its predicted class) by each of ``methods``."""
    return {method: explain(predictor, image, method=method) for method in methods}
