"""What a checkpoint holds, in one place: saved and restored by ``TrainState``, read back by ``load_trained``.

    state = TrainState(model, optimizer, scheduler, scaler)
    save_checkpoint(run_dir / "last.pt", state.checkpoint(cfg, classes, hierarchy, metrics))
    state.restore(load_checkpoint(run_dir / "last.pt"), "last.pt")     # resume
    trained = load_trained("logs/<run>/last.pt")                      # inference (EMA weights if it has them)

A checkpoint holds what rebuilds and resumes a run: the training state (model, optimizer,
scheduler and grad-scaler states, finished epochs, best top-1; with ``ema_decay`` also the EMA
weights under ``ema``, a state dict of the same model, and the number of updates behind them under
``ema_updates``), what describes the model's outputs (the whole config, the class names with their
families and manufacturers, the last metrics), after ``fgvc calibrate`` its temperature and unknown-type
threshold for each inference setting (``fgvc.models.calibration.CALIBRATION_KEY``; a checkpoint without them predicts
uncalibrated), and under ``PROVENANCE_KEY`` the run's record of what produced it (``fgvc.runs.provenance``;
checkpoints of older fgvc versions lack it and load all the same).
It is written to a temporary file and renamed, so ``last.pt`` is always either the
previous or the new checkpoint, never half of one. Loading never unpickles code: a file that
needs more than tensors and plain containers is refused.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from fgvc.core.config import TrainConfig
from fgvc.core.defaults import WEIGHTS
from fgvc.core.errors import CheckpointError, ConfigError
from fgvc.models.calibration import Calibration, read_calibrations

REQUIRED_KEYS = ("model", "epoch", "config", "classes")
PROVENANCE_KEY = "provenance"  # the run's record of what produced it (``fgvc.runs.provenance``)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint saved by ``save_checkpoint``; ``CheckpointError`` names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found: expected a last.pt or best.pt from a run folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"refused to load {path}: it holds more than tensors and plain data, and loading "
                              f"it could run code ({str(err).splitlines()[0]})") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"could not read checkpoint {path}: {err}; expected a file written by fgvc") from err
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path} is not an fgvc checkpoint: it lacks {missing}")
    return state


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DistributedDataParallel or compiled wrapper."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def load_model_state(model: nn.Module, state: dict[str, Any], source: str | Path, key: str = "model") -> None:
    """Load a checkpoint's weights (``key``: ``model``, or ``ema`` for their moving average), with an error that
    says which arch and class count it was made for."""
    try:
        unwrap(model).load_state_dict(state[key])
    except RuntimeError as err:
        cfg = state["config"]
        raise CheckpointError(f"{source} was saved from {cfg.get('arch')} with {len(state['classes'])} classes "
                              f"and does not fit this model ({str(err).splitlines()[0]})") from err


@dataclass
class TrainState:
    """Everything that changes while training; saving and restoring it resumes a run exactly
    (the data order and augmentations are reseeded from the epoch, see ``fgvc.training.engine``)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: AveragedModel | None = None  # moving average of the weights (``fgvc.training.ema``), when ema_decay > 0
    epoch: int = 0  # finished epochs
    best_top1: float = -1.0  # best evaluation top-1 so far of the weights inference uses (EMA when kept)

    def checkpoint(self, cfg: TrainConfig, classes: list[str], hierarchy: dict[str, list[str]],
                   metrics: dict[str, float], provenance: dict[str, Any] | None = None) -> dict[str, Any]:
        """The checkpoint of this state; ``hierarchy`` gives each class's family and manufacturer, if any;
        ``provenance`` is the run's record (``fgvc.runs.provenance``)."""
        ema = {} if self.ema is None else {"ema": self.ema.module.state_dict(),
                                           "ema_updates": int(self.ema.n_averaged)}
        return {"model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "epoch": self.epoch,
                "best_top1": self.best_top1, "config": cfg.to_dict(), "classes": classes, "hierarchy": hierarchy,
                "metrics": metrics, PROVENANCE_KEY: provenance, **ema}

    def restore(self, checkpoint: dict[str, Any], source: str | Path) -> None:
        """Continue from ``checkpoint`` (read from ``source``)."""
        load_model_state(self.model, checkpoint, source)
        if self.ema is not None:  # the checkpoint's run kept one too: a resume cannot change ema_decay
            load_model_state(self.ema.module, checkpoint, source, key="ema")
            self.ema.n_averaged.fill_(checkpoint["ema_updates"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch, self.best_top1 = checkpoint["epoch"], checkpoint.get("best_top1", -1.0)


@dataclass
class Trained:
    """A trained model rebuilt from its checkpoint, with what describes its outputs."""

    model: nn.Module  # in eval mode, on the CPU
    cfg: TrainConfig
    classes: list[str]
    hierarchy: dict[str, list[str]]  # e.g. {"family": [family of each class], "manufacturer": [...]}
    weights: str = "raw"  # which weights the model holds: "raw" or "ema"
    has_ema: bool = False  # whether the checkpoint also holds EMA weights
    calibrations: dict[str, Calibration] = field(default_factory=dict)  # fgvc calibrate's, by inference setting


def load_trained(path: str | Path, weights: str | None = None) -> Trained:
    """Rebuild the trained model, its config, class names and class hierarchy from a checkpoint.

    ``weights``: ``"ema"`` (the moving average of the weights), ``"raw"`` (the trained weights), or
    ``None``: the EMA when the checkpoint holds one, else the raw weights.
    """
    if weights not in (None, *WEIGHTS):
        raise ConfigError(f"weights={weights!r} is invalid: expected one of {WEIGHTS} or None")
    state = load_checkpoint(path)
    has_ema = "ema" in state
    if weights == "ema" and not has_ema:
        raise CheckpointError(f"{path} holds no EMA weights (its run trained without --ema-decay): "
                              f"use --weights raw, or leave --weights out")
    from fgvc.models.backbones import build_model  # here: reading a checkpoint (fgvc status) needs torch alone

    weights = weights or ("ema" if has_ema else "raw")
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg.arch, len(state["classes"]), pretrained=False)
    load_model_state(model, state, path, key="ema" if weights == "ema" else "model")
    return Trained(model.eval(), cfg, list(state["classes"]), dict(state.get("hierarchy", {})), weights, has_ema,
                   read_calibrations(state))
