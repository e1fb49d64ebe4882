"""One typed training configuration, made from a preset (``fgvc.core.presets``), a file and overrides, and validated.

    cfg = make_config("demo", epochs=3)                    # preset + overrides
    cfg = make_config(config_file="my.yaml", lr=0.01)      # preset < file < overrides
    cfg.to_dict(); TrainConfig.from_dict(d)                # what config.json and checkpoints hold

The fields carry their help text, so the ``fgvc train`` flags are generated from them.

A bad value is refused with a ``ConfigError`` that names the field, the value
received and what was expected, before any data is read or model is built.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgvc.core.errors import ConfigError
from fgvc.core.presets import PRESETS

ARCHS = (tuple(f"efficientnet-b{i}" for i in range(8)) + tuple(f"efficientnet-lite{i}" for i in range(3))
         + tuple(f"tv_efficientnet_b{i}" for i in range(8)))
LEVELS = ("variant", "family", "manufacturer")
PARENT_LEVELS = LEVELS[1:]  # the coarser levels a class may have: family, manufacturer
FGVC_SPLITS = ("train", "val", "trainval", "test")
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
EVAL_VIEWS = ("squash", "whole", "crop")
MIN_IMG_SIZE = 32  # EfficientNets downsample 32x: a smaller input leaves no spatial map


@dataclass(frozen=True)
class DatasetFields:
    """What a kind of dataset allows of the config; the rest of each kind is its ``fgvc.data.kinds.DatasetKind``."""

    splits: tuple[str, ...] | None  # the names of its splits; None: whatever its split folders or split file name
    split_file: bool  # whether a split file may list its photos


DATASET_FIELDS = {"fgvc-aircraft": DatasetFields(FGVC_SPLITS, split_file=False),
                  "imagefolder": DatasetFields(None, split_file=True)}
DATASETS = tuple(DATASET_FIELDS)


def _field(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its command-line help (and choices) kept beside it."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved with every run and checkpoint.

    Each field is also a ``fgvc train`` flag (``img_size`` -> ``--img-size``) with the help text given here.
    """

    preset: str = _field("b4", "the preset this config started from")
    # data
    dataset: str = _field("fgvc-aircraft", "fgvc-aircraft, or imagefolder for your own photos: a flat folder "
                          "ROOT/<class>/*.jpg split by ROOT/splits.csv (fgvc split ROOT), or split folders "
                          "ROOT/<split>/<class>/*.jpg", DATASETS)
    data_root: str = _field("data", "folder holding fgvc-aircraft-2013b/ (or an imagefolder's class or split folders)")
    split_file: str | None = _field(None, "an imagefolder's split file (path,class,split for each photo, as fgvc split "
                                    "writes it; default: ROOT/splits.csv where it exists, else the split folders)")
    exclude: str | None = _field(None, "exclusion list: a text file of photos to leave out of every split, one path "
                                 "relative to the data root a line, # comments (fgvc audit suggests one)")
    level: str = _field("variant", "FGVC-Aircraft label level", LEVELS)
    train_split: str = _field("trainval", "split to train on")
    eval_split: str = _field("test", "split evaluated every epoch (val also keeps best.pt)")
    download: bool = _field(True, "download FGVC-Aircraft when it is missing")
    banner_px: int = _field(20, "rows of copyright banner cut from the bottom of every FGVC-Aircraft photo")
    skip_bad_images: bool = _field(False, "leave out (and log) images that do not decode instead of stopping")
    train_per_class: int | None = _field(None, "train on at most N photos of each class, drawn from the training "
                                         "split with the run's seed (the same N photos on any machine, and the "
                                         "first N of a larger N's: a learning curve); the evaluation split stays "
                                         "whole (default: every photo)")
    # model
    arch: str = _field("efficientnet-b4", "efficientnet-b0..b7 (efficientnet_pytorch), efficientnet-lite0..lite2 "
                       "(ImageNet weights installed by pip: no download) or tv_efficientnet_b0..b7 (torchvision)",
                       ARCHS)
    pretrained: bool = _field(True, "start from ImageNet weights (B0-B7: downloaded into TORCH_HOME once; "
                              "Lite: from their pip packages)")
    weights: str | None = _field(None, "ImageNet weights from a local file (offline clusters)")
    bn_momentum: float | None = _field(None, "batch-norm momentum in PyTorch's convention (default: the library's)")
    img_size: int = _field(448, "training resolution in pixels (and evaluation's, unless --eval-img-size)")
    eval_img_size: int | None = _field(None, "evaluation and inference resolution (default: img_size); after "
                                       "random-resized-crop training a somewhat larger one can help (FixRes)")
    eval_view: str = _field("squash", "what evaluation and inference see of a photo: squash (whole image to a "
                            "square), whole (short side to the size) or crop (centre square)", EVAL_VIEWS)
    eval_zoom: bool = _field(False, "evaluation and inference look twice by default (fgvc.models.zoom: the box around "
                             "the top class's activation map is cut from the photo, classified, and its logits "
                             "averaged with the whole view's); evaluate and predict take --no-zoom")
    calibrate: bool = _field(True, "after the last epoch, fit the temperature and the unknown-type threshold on the "
                             "evaluation split as fgvc calibrate does, where that split is held out (not test, "
                             "no training photo)")
    # optimisation
    epochs: int | None = _field(50, "epochs to train (None: chosen from the data by schedule_steps)")
    schedule_steps: int = _field(400, "with epochs unset: train about this many optimizer steps, whatever the "
                                 "size of the data (fgvc.training.schedule)")
    schedule_min_epochs: int = _field(5, "with epochs unset: the fewest epochs the rule gives (large data)")
    schedule_max_epochs: int = _field(40, "with epochs unset: the most epochs the rule gives (small data)")
    time_budget: float = _field(0.0, "minutes a new run may take: it times a few batches first and, when the "
                                "projected run is longer, trains fewer epochs, saying so (0: no budget)")
    batch_size: int = _field(32, "images per process in each forward pass (global batch: processes x batch x "
                             "accum_steps)")
    accum_steps: int = _field(1, "batches whose gradients add up before each optimizer step (a large global batch "
                              "on a small GPU)")
    lr: float = _field(0.02, "peak learning rate after warmup")
    head_lr_scale: float = _field(1.0, "learning rate of the new classifier head as a multiple of lr (the "
                                  "pretrained backbone trains at lr)")
    layer_decay: float = _field(1.0, "layer-wise learning-rate decay: each block of the pretrained backbone trains "
                                "at this multiple of the rate of the block above it, the head at lr (1: one rate "
                                "for the whole network)")
    frozen_stages: int = _field(0, "the first N stages of the pretrained backbone (its stem, then one per block) "
                                "stay as ImageNet trained them: no gradient and batch norm on its running "
                                "statistics, so each training step is shorter (0: the whole network trains)")
    head_only_epochs: int = _field(0, "epochs at the start in which only the new classifier head learns, the "
                                   "pretrained backbone waiting at learning rate 0 (a linear probe, then "
                                   "fine-tuning; the backbone's warmup and cosine follow them)")
    optimizer: str = _field("sgd", "sgd (momentum, nesterov) or adamw", OPTIMIZERS)
    momentum: float = _field(0.9, "SGD momentum")
    weight_decay: float = _field(1e-4, "weight decay (never on norms and biases)")
    warmup_epochs: int = _field(2, "epochs of linear warmup before the cosine decay")
    label_smoothing: float = _field(0.1, "label smoothing of the cross-entropy")
    min_crop_scale: float = _field(0.25, "smallest area of the random resized crop, as a share of the image")
    affine_degrees: float = _field(10.0, "largest rotation of the random affine (shear: half of it)")
    mixup_alpha: float = _field(0.0, "mix pairs of training images and their labels, weight ~ Beta(a, a) "
                                "(torchvision MixUp; 0: off)")
    cutmix_alpha: float = _field(0.0, "paste a box of one training image into another, labels mixed by area "
                                 "(torchvision CutMix; 0: off; with mixup too, each batch takes one of the two)")
    random_erasing: float = _field(0.0, "probability that a random rectangle of each training image is erased "
                                   "(torchvision RandomErasing; 0: off)")
    ema_decay: float = _field(0.0, "keep an exponential moving average (EMA) of the weights, which moves "
                              "1 - EMA_DECAY of the way to the trained weights after every optimizer step (e.g. "
                              "0.999; 0: off); each epoch evaluates both, and evaluate, predict and gradcam use "
                              "the EMA")
    # execution
    precision: str = _field("auto", "auto: bf16 (or fp16) on GPUs; on the CPU fp32, except bf16 for training on a "
                            "CPU with bf16 arithmetic (AVX512-BF16 or AMX)", PRECISIONS)
    sync_bn: bool = _field(False, "synchronise batch-norm statistics across the GPUs of a torchrun run")
    channels_last: bool = _field(True, "NHWC memory layout (faster on recent GPUs)")
    compile: bool = _field(False, "torch.compile the training model (compiling takes minutes; BENCHMARKS.md "
                           "says when it pays for itself)")
    device: str = _field("auto", "auto: CUDA, then MPS, then CPU", DEVICES)
    workers: int = _field(8, "DataLoader worker processes")
    seed: int = _field(0, "seed of initial weights, sample order and augmentations")
    log_every: int = _field(5, "write a steps.csv row every N batches")
    tensorboard: bool = _field(True, "also write the metrics, figures and config as TensorBoard events into the "
                               "run folder (tensorboard --logdir logs)")
    run_dir: str | None = _field(None, "run folder (default logs/<time>-<preset>)")

    def __post_init__(self) -> None:
        """A config is validated once, when it is made (``make_config``, ``from_dict``, ``dataclasses.replace``):
        whoever holds one holds a valid one."""
        validate(self)

    @property
    def eval_size(self) -> int:
        """The resolution evaluation and inference feed the network."""
        return self.eval_img_size or self.img_size

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON- and ``weights_only``-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by ``to_dict``; unknown keys are refused."""
        _refuse_unknown(values)
        return cls(**values)


def _refuse_unknown(values: dict[str, Any]) -> None:
    """A ``ConfigError`` naming the keys of ``values`` that are no config field."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}; expected some of {sorted(known)}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The fields set in a JSON or YAML file (``config.json`` of a run is one); unknown keys are refused."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path} ({err.strerror}): expected a JSON or YAML file") from err
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from err
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config file {path} is not valid JSON: {err}") from err
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} holds a {type(values).__name__}: expected a mapping of field names")
    values = {k: v for k, v in values.items() if k not in RUN_FACTS}
    _refuse_unknown({k: v for k, v in values.items() if k != "preset"})
    return values


def make_config(preset: str | None = None, config_file: str | Path | None = None,
                fields: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """The preset (default: the config file's, else ``b4``), then the fields of ``config_file`` and ``fields``
    (a study's recipe; like a file's, a ``None`` there is the value None), then ``overrides`` (``None`` keeps the
    value before it); validated. Setting ``img_size`` without ``eval_img_size`` evaluates at ``img_size``: a
    preset's evaluation size was chosen for its own training size."""
    from_file = {**(read_config_file(config_file) if config_file is not None else {}), **(fields or {})}
    preset = preset or from_file.get("preset") or "b4"
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    chosen = {**from_file, **{k: v for k, v in overrides.items() if v is not None}}
    values: dict[str, Any] = {**PRESETS[preset], **chosen, "preset": preset}
    if "img_size" in chosen and "eval_img_size" not in chosen:
        values["eval_img_size"] = None  # a preset's evaluation size belongs to its own img_size
    return TrainConfig.from_dict(values)


# What config.json records about a run beside its config (not settable: they follow from how it was launched).
RUN_FACTS = ("processes", "global_batch")


def flag(name: str) -> str:
    """The command-line flag of config field ``name``."""
    return "--" + name.replace("_", "-")


# What may change when a run is resumed: where and how it runs, where the same data lies, and a
# longer schedule (the learning-rate schedule is then recomputed for the new length).
RESUMABLE = ("device", "workers", "data_root", "epochs")


def resume_config(saved: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """``saved`` with the ``overrides`` a resumed run may honour; any other change is refused naming its flag."""
    changes = {k: v for k, v in overrides.items() if v is not None and v != getattr(saved, k)}
    for name, value in changes.items():
        if name not in RESUMABLE:
            raise ConfigError(f"{flag(name)} cannot change when resuming (the run has {getattr(saved, name)!r}, "
                              f"got {value!r}): leave it out, or start a new run; a resume may change "
                              f"{', '.join(flag(n) for n in RESUMABLE)}")
    if changes.get("epochs", saved.epochs) < saved.epochs:
        raise ConfigError(f"--epochs {changes['epochs']} is shorter than the run's {saved.epochs}: a resume may "
                          f"only lengthen the schedule")
    return dataclasses.replace(saved, **changes)


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: expected {expected}")


def validate(cfg: TrainConfig) -> None:
    """Raise ``ConfigError`` naming the first field whose value is unusable."""
    _check(cfg.dataset in DATASETS, "dataset", cfg.dataset, f"one of {DATASETS}")
    _check(cfg.level in LEVELS, "level", cfg.level, f"one of {LEVELS}")
    fields = DATASET_FIELDS[cfg.dataset]
    for name in ("train_split", "eval_split") if fields.splits else ():
        _check(getattr(cfg, name) in fields.splits, name, getattr(cfg, name), f"one of {fields.splits}")
    _check(cfg.split_file is None or fields.split_file, "split_file", cfg.split_file,
           f"None for {cfg.dataset} (a split file lists an imagefolder's photos)")
    _check(cfg.arch in ARCHS, "arch", cfg.arch, f"one of {', '.join(ARCHS)}")
    _check(isinstance(cfg.img_size, int) and cfg.img_size >= MIN_IMG_SIZE, "img_size", cfg.img_size,
           f"an integer >= {MIN_IMG_SIZE} (EfficientNets downsample 32x)")
    _check(cfg.eval_img_size is None or (isinstance(cfg.eval_img_size, int) and cfg.eval_img_size >= MIN_IMG_SIZE),
           "eval_img_size", cfg.eval_img_size, f"None (img_size) or an integer >= {MIN_IMG_SIZE}")
    for name in ("batch_size", "accum_steps", "log_every", "schedule_steps", "schedule_min_epochs",
                 "schedule_max_epochs"):
        value = getattr(cfg, name)
        _check(isinstance(value, int) and value > 0, name, value, "a positive integer")
    _check(cfg.epochs is None or (isinstance(cfg.epochs, int) and cfg.epochs > 0), "epochs", cfg.epochs,
           "a positive integer, or None (chosen from the data by schedule_steps)")
    _check(cfg.schedule_min_epochs <= cfg.schedule_max_epochs, "schedule_min_epochs", cfg.schedule_min_epochs,
           f"at most schedule_max_epochs={cfg.schedule_max_epochs}")
    _check(cfg.time_budget >= 0, "time_budget", cfg.time_budget, "minutes >= 0 (0: no budget)")
    _check(cfg.train_per_class is None or (isinstance(cfg.train_per_class, int) and cfg.train_per_class > 0),
           "train_per_class", cfg.train_per_class, "None (every photo) or a positive integer")
    for name in ("workers", "warmup_epochs", "banner_px", "head_only_epochs", "frozen_stages"):
        value = getattr(cfg, name)
        _check(isinstance(value, int) and value >= 0, name, value, "an integer >= 0")
    _check(cfg.warmup_epochs <= (cfg.epochs or cfg.schedule_min_epochs), "warmup_epochs", cfg.warmup_epochs,
           f"at most epochs={cfg.epochs or cfg.schedule_min_epochs}")
    backbone_epochs = (cfg.epochs or cfg.schedule_min_epochs) - max(cfg.warmup_epochs, 1)
    _check(cfg.head_only_epochs <= backbone_epochs, "head_only_epochs", cfg.head_only_epochs,
           f"at most {backbone_epochs} (epochs - warmup_epochs, and at least one epoch of the whole network)")
    _check(0 < cfg.layer_decay <= 1, "layer_decay", cfg.layer_decay, "a number in (0, 1] (1: no decay)")
    _check(cfg.lr > 0, "lr", cfg.lr, "a positive number")
    _check(cfg.head_lr_scale > 0, "head_lr_scale", cfg.head_lr_scale, "a positive number")
    for name in ("mixup_alpha", "cutmix_alpha"):
        _check(getattr(cfg, name) >= 0, name, getattr(cfg, name), "a number >= 0 (0: off)")
    _check(0 <= cfg.random_erasing <= 1, "random_erasing", cfg.random_erasing, "a probability in [0, 1]")
    _check(cfg.weight_decay >= 0, "weight_decay", cfg.weight_decay, "a number >= 0")
    _check(0 <= cfg.momentum < 1, "momentum", cfg.momentum, "a number in [0, 1)")
    _check(0 <= cfg.label_smoothing < 1, "label_smoothing", cfg.label_smoothing, "a number in [0, 1)")
    _check(0 < cfg.min_crop_scale <= 1, "min_crop_scale", cfg.min_crop_scale, "a number in (0, 1]")
    _check(0 <= cfg.affine_degrees <= 180, "affine_degrees", cfg.affine_degrees, "a number in [0, 180]")
    _check(0 <= cfg.ema_decay < 1, "ema_decay", cfg.ema_decay, "a number in [0, 1) (0: no EMA)")
    _check(cfg.bn_momentum is None or 0 < cfg.bn_momentum < 1, "bn_momentum", cfg.bn_momentum,
           "None (keep the library's) or a number in (0, 1)")
    _check(cfg.optimizer in OPTIMIZERS, "optimizer", cfg.optimizer, f"one of {OPTIMIZERS}")
    _check(cfg.precision in PRECISIONS, "precision", cfg.precision, f"one of {PRECISIONS}")
    _check(cfg.device in DEVICES, "device", cfg.device, f"one of {DEVICES}")
    _check(cfg.eval_view in EVAL_VIEWS, "eval_view", cfg.eval_view, f"one of {EVAL_VIEWS}")
    _check(not (cfg.weights and not cfg.pretrained), "weights", cfg.weights,
           "no weights file together with pretrained=False")
    _check(not (cfg.frozen_stages and not cfg.pretrained), "frozen_stages", cfg.frozen_stages,
           f"0 with pretrained=False (frozen random weights learn nothing; {flag('frozen_stages')} 0 trains the "
           f"whole network)")
