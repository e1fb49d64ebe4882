"""EfficientNet backbones behind one small interface.

    model = build_model("efficientnet-b4", num_classes=100)          # ImageNet weights
    model = build_model("tv_efficientnet_b0", 10, pretrained=False)  # torchvision's family
    spec = model_spec("efficientnet-b4")    # input size, normalisation, Grad-CAM layer

``efficientnet-b0`` ... ``efficientnet-b7`` come from ``efficientnet_pytorch`` (the default
family); ``tv_efficientnet_b0`` ... ``tv_efficientnet_b7`` from torchvision. Pretrained
weights are downloaded into the hub cache under ``TORCH_HOME`` or read from a local file.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import efficientnet_params, url_map
from torch import nn
from torchvision import models

from fgvc.data import Normalization
from fgvc.errors import ConfigError, WeightsError

IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of the code needs to know about an architecture."""

    arch: str
    family: str  # "efficientnet_pytorch" or "torchvision"
    native_size: int  # the resolution the ImageNet weights were trained at
    norm: Normalization
    head: str  # parameter prefix of the classifier, replaced for the dataset's classes
    cam_layer: str  # dotted module path Grad-CAM targets: the last feature map


def model_spec(arch: str) -> ModelSpec:
    """The ``ModelSpec`` of ``arch``; ``ConfigError`` for an unknown name."""
    if arch.startswith("efficientnet-b") and arch in url_map:
        # _bn1 is the head's last feature map; the shared `_swish` module must never be hooked.
        return ModelSpec(arch, "efficientnet_pytorch", efficientnet_params(arch)[2], IMAGENET, "_fc", "_bn1")
    if arch.startswith("tv_efficientnet_b") and arch[len("tv_"):] in models.list_models(module=models):
        weights = models.get_model_weights(arch[len("tv_"):]).IMAGENET1K_V1
        norm = Normalization(IMAGENET.mean, IMAGENET.std, weights.transforms.keywords["interpolation"])
        return ModelSpec(arch, "torchvision", weights.transforms.keywords["crop_size"], norm,
                         "classifier.1", "features.8")
    raise ConfigError(f"unknown arch {arch!r}: expected efficientnet-b0..b7 or tv_efficientnet_b0..b7")


def weights_url(spec: ModelSpec) -> str:
    """Where the ImageNet weights of ``spec.arch`` are downloaded from."""
    if spec.family == "efficientnet_pytorch":
        return url_map[spec.arch]
    return models.get_model_weights(spec.arch[len("tv_"):]).IMAGENET1K_V1.url


def _fresh_model(spec: ModelSpec, num_classes: int) -> nn.Module:
    if spec.family == "efficientnet_pytorch":
        return EfficientNet.from_name(spec.arch, num_classes=num_classes)
    return models.get_model(spec.arch[len("tv_"):], weights=None, num_classes=num_classes)


def load_backbone(model: nn.Module, state_dict: dict[str, torch.Tensor], spec: ModelSpec, source: str) -> None:
    """Load ImageNet weights into every layer but the classifier head, which keeps its fresh init."""
    backbone = {k: v for k, v in state_dict.items() if not k.startswith(spec.head + ".")}
    expected = f"expected weights saved from {spec.arch}"
    try:
        result = model.load_state_dict(backbone, strict=False)
    except RuntimeError as err:  # tensors of another shape
        mismatch = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise WeightsError(f"{source} does not fit {spec.arch}: {mismatch}; {expected}") from err
    missing = [k for k in result.missing_keys if not k.startswith(spec.head + ".")]
    if missing or result.unexpected_keys:
        raise WeightsError(f"{source} does not fit {spec.arch}: missing {missing[:5]}, "
                           f"unexpected {result.unexpected_keys[:5]} (of {len(missing)} / "
                           f"{len(result.unexpected_keys)}); {expected}")


def read_weights(spec: ModelSpec, weights: str | Path | None) -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet weights from a local file, or downloaded into the hub cache; returns (state_dict, source)."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file {path} not found: expected a state_dict saved from {spec.arch}")
        try:
            return torch.load(path, map_location="cpu", weights_only=True), str(path)
        except pickle.UnpicklingError as err:
            raise WeightsError(f"refused to load {path}: it holds more than tensors, and loading it could run code; "
                               f"expected a state_dict saved from {spec.arch}") from err
    url = weights_url(spec)
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=True), url
    except OSError as err:
        raise WeightsError(
            f"could not download the ImageNet weights of {spec.arch} from {url} ({err}). Download that file "
            f"and pass it with --weights FILE, place it in {torch.hub.get_dir()}/checkpoints, "
            f"or train from scratch with --no-pretrained"
        ) from err


def build_model(arch: str, num_classes: int, pretrained: bool = True, weights: str | Path | None = None,
                bn_momentum: float | None = None) -> nn.Module:
    """An EfficientNet with a ``num_classes`` head; ImageNet weights when ``pretrained`` (or ``weights`` given).

    ``bn_momentum`` (PyTorch's convention) replaces the library's batch-norm momentum.
    """
    if num_classes < 2:
        raise ConfigError(f"num_classes={num_classes} is invalid: expected at least 2 classes")
    spec = model_spec(arch)
    model = _fresh_model(spec, num_classes)
    if pretrained or weights is not None:
        state_dict, source = read_weights(spec, weights)
        load_backbone(model, state_dict, spec, source)
    if bn_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = bn_momentum
    return model


def cam_target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The layer whose activations Grad-CAM weighs (the last feature map of the backbone)."""
    return model.get_submodule(model_spec(arch).cam_layer)
