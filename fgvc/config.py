"""One typed training configuration, its named presets, and its validation.

    cfg = make_config("demo", epochs=3)      # preset + overrides
    cfg.to_dict(); TrainConfig.from_dict(d)  # what config.json and checkpoints hold

A bad value is refused with a ``ConfigError`` that names the field, the value
received and what was expected, before any data is read or model is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

ARCHS = (tuple(f"efficientnet-b{i}" for i in range(8)) + tuple(f"efficientnet-lite{i}" for i in range(3))
         + tuple(f"tv_efficientnet_b{i}" for i in range(8)))
DATASETS = ("fgvc-aircraft", "imagefolder")
LEVELS = ("variant", "family", "manufacturer")
FGVC_SPLITS = ("train", "val", "trainval", "test")
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
CAM_METHODS = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam", "scorecam", "ablationcam")
MIN_IMG_SIZE = 32  # EfficientNets downsample 32x: a smaller input leaves no spatial map


class ConfigError(ValueError):
    """A configuration value is out of range or of the wrong kind."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved with every run and checkpoint."""

    preset: str = "b4"
    # data
    dataset: str = "fgvc-aircraft"
    data_root: str = "data"
    level: str = "variant"
    train_split: str = "trainval"
    eval_split: str = "test"
    download: bool = True
    banner_px: int = 20
    skip_bad_images: bool = False  # leave out (and log) images that do not decode
    # model
    arch: str = "efficientnet-b4"
    pretrained: bool = True
    weights: str | None = None
    bn_momentum: float | None = None
    img_size: int = 448
    # optimisation
    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.02
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    min_crop_scale: float = 0.25
    affine_degrees: float = 10.0
    # execution
    precision: str = "auto"
    channels_last: bool = True
    device: str = "auto"
    workers: int = 8
    seed: int = 0
    log_every: int = 5
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON- and ``weights_only``-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by ``to_dict``; unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; expected some of {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, dict[str, Any]] = {
    # The FGVC-Aircraft recipe: train on trainval, report on test (the last epoch, never the
    # best-on-test one), B4 from ImageNet at 448 px, SGD + nesterov, warmup + cosine,
    # label smoothing 0.1 (after the published ResNet-50 448-px recipe, see README).
    "b4": {},
    # Minutes on a CPU, offline: the synthetic set that `fgvc synth` writes, Lite0 fine-tuned
    # from the ImageNet weights its pip package installs (no download), at 96 px; PyTorch's usual
    # BN momentum so eval statistics catch up within a few epochs, and milder crops and rotations
    # (they were tuned for B0 from random weights; fine-tuned Lite0 needs no more). fp32: bf16
    # autocast is 2-4x faster on CPUs with native bf16, but far slower on many laptops without.
    "demo": {
        "data_root": "data/synthetic",
        "download": False,
        "arch": "efficientnet-lite0",
        "pretrained": True,
        "bn_momentum": 0.1,
        "img_size": 96,
        "epochs": 6,
        "batch_size": 16,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 0.05,
        "warmup_epochs": 1,
        "min_crop_scale": 0.8,
        "affine_degrees": 5.0,
        "precision": "fp32",
        "channels_last": False,
        "device": "cpu",
        "workers": 0,  # in-process loading: small images, and no per-epoch worker start-up in Jupyter
    },
    # Your own photos or FGVC-Aircraft without a GPU: Lite0 (no squeeze-and-excitation, ReLU6: cheap
    # on CPUs) fine-tuned from the ImageNet weights its pip package installs, at its native 224 px,
    # AdamW, bf16 autocast (CPUs with avx512_bf16 or AMX; elsewhere pass --precision fp32).
    # Add --dataset imagefolder --data-root ROOT --train-split train --eval-split val for your photos.
    "cpu": {
        "arch": "efficientnet-lite0",
        "pretrained": True,
        "img_size": 224,
        "epochs": 15,
        "batch_size": 32,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 0.05,
        "warmup_epochs": 1,
        "min_crop_scale": 0.35,
        "precision": "bf16",
        "channels_last": False,
        "device": "cpu",
        "workers": 2,
    },
}


def make_config(preset: str = "b4", **overrides: Any) -> TrainConfig:
    """Return the named preset with ``overrides`` applied (``None`` keeps the preset's value), validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    values: dict[str, Any] = {"preset": preset, **PRESETS[preset]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = TrainConfig.from_dict(values)
    validate(cfg)
    return cfg


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: expected {expected}")


def validate(cfg: TrainConfig) -> None:
    """Raise ``ConfigError`` naming the first field whose value is unusable."""
    _check(cfg.dataset in DATASETS, "dataset", cfg.dataset, f"one of {DATASETS}")
    _check(cfg.level in LEVELS, "level", cfg.level, f"one of {LEVELS}")
    if cfg.dataset == "fgvc-aircraft":
        for name in ("train_split", "eval_split"):
            _check(getattr(cfg, name) in FGVC_SPLITS, name, getattr(cfg, name), f"one of {FGVC_SPLITS}")
    _check(cfg.arch in ARCHS, "arch", cfg.arch, f"one of {', '.join(ARCHS)}")
    _check(isinstance(cfg.img_size, int) and cfg.img_size >= MIN_IMG_SIZE, "img_size", cfg.img_size,
           f"an integer >= {MIN_IMG_SIZE} (EfficientNets downsample 32x)")
    for name in ("epochs", "batch_size", "log_every"):
        value = getattr(cfg, name)
        _check(isinstance(value, int) and value > 0, name, value, "a positive integer")
    for name in ("workers", "warmup_epochs", "banner_px"):
        value = getattr(cfg, name)
        _check(isinstance(value, int) and value >= 0, name, value, "an integer >= 0")
    _check(cfg.warmup_epochs <= cfg.epochs, "warmup_epochs", cfg.warmup_epochs, f"at most epochs={cfg.epochs}")
    _check(cfg.lr > 0, "lr", cfg.lr, "a positive number")
    _check(cfg.weight_decay >= 0, "weight_decay", cfg.weight_decay, "a number >= 0")
    _check(0 <= cfg.momentum < 1, "momentum", cfg.momentum, "a number in [0, 1)")
    _check(0 <= cfg.label_smoothing < 1, "label_smoothing", cfg.label_smoothing, "a number in [0, 1)")
    _check(0 < cfg.min_crop_scale <= 1, "min_crop_scale", cfg.min_crop_scale, "a number in (0, 1]")
    _check(0 <= cfg.affine_degrees <= 180, "affine_degrees", cfg.affine_degrees, "a number in [0, 180]")
    _check(cfg.bn_momentum is None or 0 < cfg.bn_momentum < 1, "bn_momentum", cfg.bn_momentum,
           "None (keep the library's) or a number in (0, 1)")
    _check(cfg.optimizer in OPTIMIZERS, "optimizer", cfg.optimizer, f"one of {OPTIMIZERS}")
    _check(cfg.precision in PRECISIONS, "precision", cfg.precision, f"one of {PRECISIONS}")
    _check(cfg.device in DEVICES, "device", cfg.device, f"one of {DEVICES}")
    _check(not (cfg.weights and not cfg.pretrained), "weights", cfg.weights,
           "no weights file together with pretrained=False")
