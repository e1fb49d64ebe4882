"""Every preprocessing decision, like torchvision's ``presets.py``: the training augmentation (random resized
crop, horizontal flip and random affine as one warp per image), the batch augmentations on the device
(random erasing, mixup, cutmix), normalisation, and the one evaluation transform that every path that
predicts uses.

    augment = Augment(img_size=448)                      # PIL image + generator -> uint8 (3, 448, 448)
    inputs = normalize(batch.to(device), norm)           # on the device
    transform = eval_transform(448, norm, view="squash")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import v2

from fgvc.core.config import EVAL_VIEWS, TrainConfig
from fgvc.core.errors import ConfigError
from fgvc.data.images import fit_short_side
from fgvc.data.normalization import Normalization

# The random affine's fixed ranges; its rotation (and half of it as shear) comes from the config.
AFFINE_TRANSLATE = (0.05, 0.05)  # largest shift, as a fraction of the width and of the height
AFFINE_SCALE = (0.9, 1.1)
# Training decodes (and `fgvc prepare` stores) images with their short side this many times the training size.
PREPARED_SCALE = 1.15


@dataclass(frozen=True)
class Augmentation:
    """One draw of the three augmentations for one image, in torchvision's terms."""

    crop: tuple[float, float, float, float]  # random resized crop: left, top, width, height in the image's pixels
    flip: bool  # horizontal flip
    angle: float  # random affine, applied to the img_size x img_size crop: rotation in degrees,
    translate: tuple[int, int]  # shift in pixels,
    scale: float  # zoom,
    shear: float  # and shear along x in degrees


def draw_augmentation(rng: np.random.Generator, width: int, height: int, img_size: int, min_crop_scale: float,
                      affine_degrees: float) -> Augmentation:
    """The parameters torchvision's ``RandomResizedCrop(scale=(min_crop_scale, 1))``, ``RandomHorizontalFlip``
    and ``RandomAffine(affine_degrees, AFFINE_TRANSLATE, AFFINE_SCALE, shear=affine_degrees / 2)`` would draw
    for a ``width`` x ``height`` image, by the same algorithm, from ``rng``."""
    area, log_ratio = width * height, (math.log(3 / 4), math.log(4 / 3))
    crop = None
    for _ in range(10):  # torchvision's rejection sampling, then its fallback
        target = area * rng.uniform(min_crop_scale, 1.0)
        ratio = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            crop = (float(rng.integers(0, width - w + 1)), float(rng.integers(0, height - h + 1)), float(w), float(h))
            break
    if crop is None:  # the whole image, clipped to the ratio range
        w, h = width, height
        if width / height < 3 / 4:
            h = round(w / (3 / 4))
        elif width / height > 4 / 3:
            w = round(h * (4 / 3))
        crop = (float((width - w) // 2), float((height - h) // 2), float(w), float(h))
    shift = [round(rng.uniform(-f * img_size, f * img_size)) for f in AFFINE_TRANSLATE]
    return Augmentation(crop=crop, flip=bool(rng.random() < 0.5),
                        angle=float(rng.uniform(-affine_degrees, affine_degrees)),
                        translate=(shift[0], shift[1]), scale=float(rng.uniform(*AFFINE_SCALE)),
                        shear=float(rng.uniform(-affine_degrees / 2, affine_degrees / 2)))


def augmentation_matrix(aug: Augmentation, img_size: int) -> np.ndarray:
    """The 2x3 matrix that maps each output pixel to its source pixel in the image (OpenCV's
    ``WARP_INVERSE_MAP`` convention, pixel centres at integers): the crop resized to ``img_size``, the
    flip and the affine, composed, as torchvision applies them one after the other."""
    def homogeneous(m: Sequence[float]) -> np.ndarray:
        return np.array([m[:3], m[3:6], [0.0, 0.0, 1.0]])

    centre = img_size / 2
    affine = homogeneous(transforms.functional._get_inverse_affine_matrix(
        [centre, centre], aug.angle, list(aug.translate), aug.scale, [aug.shear, 0.0]))
    flip = homogeneous([-1.0, 0.0, img_size, 0.0, 1.0, 0.0]) if aug.flip else np.eye(3)
    left, top, width, height = aug.crop
    crop = homogeneous([width / img_size, 0.0, left, 0.0, height / img_size, top])
    to_centre, from_centre = homogeneous([1, 0, 0.5, 0, 1, 0.5]), homogeneous([1, 0, -0.5, 0, 1, -0.5])
    return (from_centre @ crop @ flip @ affine @ to_centre)[:2]


def prepared_short_side(img_size: int) -> int:
    """The short side images are stored at (``fgvc prepare``) and decoded to for training at ``img_size``."""
    return math.ceil(PREPARED_SCALE * img_size)


class Augment:
    """The three training augmentations (random resized crop, horizontal flip, random affine) as one affine
    warp per image, to a uint8 ``(3, img_size, img_size)`` tensor; ``normalize`` makes it a float input on
    the device. Images larger than training needs are first shrunk to ``prepared_short_side`` (as
    ``fgvc prepare`` stores them), so the bilinear warp never shrinks by much."""

    def __init__(self, img_size: int, min_crop_scale: float = 0.25, affine_degrees: float = 10.0) -> None:
        self.img_size, self.min_crop_scale, self.affine_degrees = img_size, min_crop_scale, affine_degrees

    def draw(self, rng: np.random.Generator, image: Image.Image) -> Augmentation:
        """This image's augmentation parameters."""
        return draw_augmentation(rng, image.width, image.height, self.img_size, self.min_crop_scale,
                                 self.affine_degrees)

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        image = fit_short_side(image, prepared_short_side(self.img_size))
        matrix = augmentation_matrix(self.draw(rng, image), self.img_size)
        warped = cv2.warpAffine(np.asarray(image), matrix, (self.img_size, self.img_size),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        return torch.from_numpy(warped).permute(2, 0, 1)


def normalize(images: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """A uint8 ``(N, 3, H, W)`` batch as the float input the weights expect, computed where the batch is."""
    mean, std = torch.tensor(norm.mean).view(1, 3, 1, 1), torch.tensor(norm.std).view(1, 3, 1, 1)
    scale, shift = (1 / (255 * std)).to(images.device), (-mean / std).to(images.device)
    return images.float().mul_(scale).add_(shift)  # in place: one float tensor, no temporaries


BatchAugment = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def batch_augmentation(cfg: TrainConfig, num_classes: int) -> BatchAugment | None:
    """``cfg``'s augmentations of a whole normalised batch on the device, after the one-warp pipeline:
    torchvision's ``RandomErasing`` (each image on its own, erased to the mean colour), then ``MixUp`` or
    ``CutMix`` (one of them per batch when both are on; the labels become class probabilities). Their
    randomness comes from torch's generator, which the loop reseeds from ``(seed, epoch)``, so a resumed
    run draws the same. ``None`` when all are off."""
    mixes = [mix(alpha=alpha, num_classes=num_classes)
             for mix, alpha in ((v2.MixUp, cfg.mixup_alpha), (v2.CutMix, cfg.cutmix_alpha)) if alpha > 0]
    mix = None if not mixes else mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
    erase = v2.RandomErasing(p=cfg.random_erasing, value=0) if cfg.random_erasing > 0 else None
    if mix is None and erase is None:
        return None

    def augment(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if erase is not None:
            images = torch.stack([erase(image) for image in images])
        return (images, targets) if mix is None else mix(images, targets)

    return augment


def eval_transform(img_size: int, norm: Normalization, view: str = "squash") -> transforms.Compose:
    """The one evaluation preprocessing: every path that predicts (evaluate, predict, Grad-CAM) uses it.

    ``view`` says what the network sees of a photo: ``squash`` the whole image resized to
    ``img_size`` x ``img_size``; ``whole`` the short side resized to ``img_size``, aspect ratio kept
    (inputs differ in width, so they are not batched together); ``crop`` the short side resized, then
    the centre square, which cuts the nose and tail off a 3:2 photo.
    """
    resize = {"squash": [transforms.Resize((img_size, img_size), interpolation=norm.interpolation)],
              "whole": [transforms.Resize(img_size, interpolation=norm.interpolation)],
              "crop": [transforms.Resize(img_size, interpolation=norm.interpolation), transforms.CenterCrop(img_size)]}
    if view not in resize:
        raise ConfigError(f"view={view!r} is invalid: expected one of {EVAL_VIEWS}")
    return transforms.Compose([*resize[view], transforms.ToTensor(), transforms.Normalize(norm.mean, norm.std)])


def visible_box(width: int, height: int, view: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the part of a ``width`` x ``height`` photo that ``view`` shows the network:
    all of it, or the centre square for ``crop``."""
    if view != "crop":
        return 0, 0, width, height
    side = min(width, height)
    left, top = round((width - side) / 2), round((height - side) / 2)
    return left, top, left + side, top + side


def visible_part(image: Image.Image, view: str) -> Image.Image:
    """The part of ``image`` that ``view`` shows the network (the centre square for ``crop``)."""
    return image if view != "crop" else image.crop(visible_box(image.width, image.height, view))
