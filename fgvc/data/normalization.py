"""What a backbone's weights expect of an input image: the one small fact that the data, ``model`` and ``plots``
need, kept here for every architecture (``arch_normalization``) so the loaders need no model to know it."""

from __future__ import annotations

from dataclasses import dataclass

from torchvision import models, transforms

from fgvc.core.config import ARCHS
from fgvc.core.errors import ConfigError


@dataclass(frozen=True)
class Normalization:
    """The mean and standard deviation of the pixels the weights were trained on, and the resampling filter."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: transforms.InterpolationMode = transforms.InterpolationMode.BICUBIC


IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# The Lite weights come from TensorFlow, trained on (pixel - 127) / 128, i.e. [-1, 1]; on real photos this
# gives the stem the activation statistics its batch norm learned, ImageNet's mean/std does not
# (tests/test_pretrained.py measures it).
TF_LITE = Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def arch_normalization(arch: str) -> Normalization:
    """The ``Normalization`` of ``arch``'s ImageNet weights: TensorFlow's [-1, 1] for the Lite family, ImageNet's
    mean and std for the others (torchvision's with the filter its weights were trained with)."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown arch {arch!r}: expected one of {', '.join(ARCHS)}")
    if arch.startswith("efficientnet-lite"):
        return TF_LITE
    if arch.startswith("tv_"):
        weights = models.get_model_weights(arch[len("tv_"):]).IMAGENET1K_V1
        return Normalization(IMAGENET.mean, IMAGENET.std, weights.transforms.keywords["interpolation"])
    return IMAGENET
