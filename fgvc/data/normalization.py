"""What a backbone's weights expect of an input image: the one small fact that ``model`` and ``plots`` need."""

from __future__ import annotations

from dataclasses import dataclass

from torchvision import transforms


@dataclass(frozen=True)
class Normalization:
    """The mean and standard deviation of the pixels the weights were trained on, and the resampling filter."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: transforms.InterpolationMode = transforms.InterpolationMode.BICUBIC
