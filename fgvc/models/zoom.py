"""Test-time "look closer": the whole view, then a crop around where the network found its top class.

    predictor = Predictor.from_checkpoint("logs/<run>/last.pt", zoom=Zoom())    # threshold 0.3, pad 0.1
    [look] = predictor.predict([photo])    # look.probabilities, look.box: (left, top, right, bottom) in the photo

As WS-DAN and CAL do at test time, the predictor classifies the photo as usual, boxes the object with the
class activation map (CAM) of the top class, classifies that box cut from the photo at full resolution
through the same preprocessing, and averages the two views' logits before the softmax. The CAM comes
free with the forward pass: for the feature map F (C x h x w) that the global pooling averages and the
head's weights W, class k's map is W[k] . F, whose mean over the map plus the bias is the logit; its
positive part, relu(W[k] . F), says where class k was found.

The box: the map, upsampled to the network's input, thresholded at ``threshold`` x its peak; the
connected region that holds the peak (CAM's own localisation rule: a second hot spot elsewhere, another
aircraft or a logo, does not stretch the box over the background between them); grown by ``pad`` x its
width (height) on each side; made square as the network sees it (in the photo: the photo's aspect
ratio for the ``squash`` view, a square for ``whole`` and ``crop``, so the crop is distorted as the whole
photo was); moved inside the photo (for ``crop`` it may reach beyond the centre square into the sides the
view had cut). A map with no positive value boxes the whole view.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from fgvc.core.defaults import ZOOM_PAD, ZOOM_THRESHOLD
from fgvc.core.errors import ConfigError
from fgvc.data.transforms import visible_box
from fgvc.models.backbones import model_spec

Box = tuple[int, int, int, int]  # left, top, right, bottom in a photo's pixels (right and bottom excluded, as PIL's)
BOX_COLOUR = (255, 214, 0)  # the box drawn on a photo: yellow, seen on sky, grass and tarmac


@dataclass(frozen=True)
class Zoom:
    """The settings of the zoomed second look (``None`` in their place: no second look)."""

    threshold: float = ZOOM_THRESHOLD  # a map value at least this fraction of the map's peak belongs to the object
    pad: float = ZOOM_PAD  # the box grows by this fraction of its width (height) on the left and right (top and bottom)

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ConfigError(f"zoom threshold={self.threshold!r} is invalid: expected a fraction of the map's peak, "
                              f"between 0 and 1 (exclusive), e.g. 0.3")
        if not (math.isfinite(self.pad) and self.pad >= 0):
            raise ConfigError(f"zoom pad={self.pad!r} is invalid: expected a fraction of the box's size, 0 or more, "
                              f"e.g. 0.1")

    @property
    def name(self) -> str:
        """``zoom`` for the default settings, else ``zoom-t<threshold>-p<pad>`` (evaluation folder suffixes)."""
        return "zoom" if self == Zoom() else f"zoom-t{self.threshold:g}-p{self.pad:g}"


def chosen_zoom(requested: Zoom | bool | None, run_default: bool) -> Zoom | None:
    """The second look a prediction takes: ``requested`` (a ``Zoom``; ``True`` the default settings; ``False``
    none), or without a request the run's own ``eval_zoom`` (default settings)."""
    if requested is None:
        requested = run_default
    if requested is True:
        return Zoom()
    return requested or None


@contextlib.contextmanager
def captured_features(model: nn.Module, arch: str) -> Iterator[list[torch.Tensor]]:
    """Inside the block, each forward pass of ``model`` appends the (N, C, h, w) feature map its global pooling
    averages: the last feature map after its activation, exactly what the head weighs."""
    features: list[torch.Tensor] = []
    pooling = model.get_submodule(model_spec(arch).pool_layer)
    handle = pooling.register_forward_pre_hook(lambda _module, args: features.append(args[0].detach()))
    try:
        yield features
    finally:
        handle.remove()


def head_layer(model: nn.Module, arch: str) -> nn.Linear:
    """The classifier: its weights (classes, C) weigh the pooled features."""
    return model.get_submodule(model_spec(arch).head)


def class_maps(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """W[k] . F at every cell: (N, K, h, w) from features (N, C, h, w) and head weights (K, C). Their mean over
    (h, w) plus the head's bias is the logits."""
    return torch.einsum("kc,nchw->nkhw", weight.float(), features.float())


def top_class_maps(features: torch.Tensor, weight: torch.Tensor, classes: torch.Tensor) -> np.ndarray:
    """The CAM relu(W[k] . F) of class ``classes[n]`` for each image n: (N, h, w), float32 on the CPU."""
    maps = torch.einsum("nc,nchw->nhw", weight.float()[classes], features.float())
    return maps.clamp(min=0).cpu().numpy()


def view_box(cam: np.ndarray, input_size: tuple[int, int], threshold: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) as fractions of the view's width and height: around the region of ``cam``
    (h, w), upsampled to the ``input_size`` (width, height) the network saw, that holds the peak and is at
    least ``threshold`` x the peak. The whole view where ``cam`` has no positive value."""
    width, height = input_size
    upsampled = cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    peak = float(upsampled.max())
    if not peak > 0:
        return 0.0, 0.0, 1.0, 1.0
    _, regions = cv2.connectedComponents((upsampled >= threshold * peak).astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(regions == regions.flat[int(np.argmax(upsampled))])
    return xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height


def photo_box(fractions: tuple[float, float, float, float], input_size: tuple[int, int],
              photo_size: tuple[int, int], view: str, pad: float) -> Box:
    """A box of the view (``view_box``'s fractions) in the pixels of the photo (``photo_size``: width, height),
    grown by ``pad`` on each side, made square as the network sees it (``input_size``: the view's width and
    height in input pixels) and moved inside the photo, which caps a side at the photo's."""
    photo_width, photo_height = photo_size
    left, top, right, bottom = visible_box(photo_width, photo_height, view)
    seen_width, seen_height = right - left, bottom - top
    x0, y0 = left + fractions[0] * seen_width, top + fractions[1] * seen_height
    x1, y1 = left + fractions[2] * seen_width, top + fractions[3] * seen_height
    width, height = (x1 - x0) * (1 + 2 * pad), (y1 - y0) * (1 + 2 * pad)
    aspect = (seen_width / input_size[0]) / (seen_height / input_size[1])  # a square input pixel, in the photo
    width, height = max(width, height * aspect), max(height, width / aspect)
    width, height = min(width, photo_width), min(height, photo_height)
    x0 = min(max((x0 + x1 - width) / 2, 0.0), photo_width - width)
    y0 = min(max((y0 + y1 - height) / 2, 0.0), photo_height - height)
    box_left, box_top = math.floor(x0), math.floor(y0)
    return (box_left, box_top, max(box_left + 1, min(photo_width, math.ceil(x0 + width))),
            max(box_top + 1, min(photo_height, math.ceil(y0 + height))))


def format_box(box: Box) -> str:
    """``zoomed into (left, top)-(right, bottom), W x H px``: one line of ``fgvc predict --zoom``."""
    left, top, right, bottom = box
    return f"zoomed into ({left}, {top})-({right}, {bottom}), {right - left} x {bottom - top} px"


def draw_box(image: Image.Image, box: Box, offset: tuple[int, int] = (0, 0)) -> Image.Image:
    """A copy of ``image`` with ``box`` drawn on it; ``offset`` is where the image's top-left corner lies in
    the box's photo (for the ``crop`` view's centre square)."""
    drawn = image.convert("RGB")
    line = max(2, round(min(drawn.size) / 150))
    left, top, right, bottom = (box[0] - offset[0], box[1] - offset[1], box[2] - offset[0], box[3] - offset[1])
    ImageDraw.Draw(drawn).rectangle((left, top, right - 1, bottom - 1), outline=BOX_COLOUR, width=line)
    return drawn
