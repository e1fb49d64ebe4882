"""What a checkpoint holds, in one place: saved and restored by ``TrainState``, read back by ``load_trained``.

    state = TrainState(model, optimizer, scheduler, scaler)
    save_checkpoint(run_dir / "last.pt", state.checkpoint(cfg, classes, hierarchy, metrics))
    state.restore(load_checkpoint(run_dir / "last.pt"), "last.pt")     # resume
    trained = load_trained("logs/<run>/last.pt")                      # inference

A checkpoint holds what rebuilds and resumes a run: the training state (model, optimizer,
scheduler and grad-scaler states, finished epochs, best top-1) and what describes the model's
outputs (the whole config, the class names with their families and manufacturers, the last
metrics). It is written to a temporary file and renamed, so ``last.pt`` is always either the
previous or the new checkpoint, never half of one. Loading never unpickles code: a file that
needs more than tensors and plain containers is refused.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fgvc.config import TrainConfig
from fgvc.errors import CheckpointError
from fgvc.model import build_model

REQUIRED_KEYS = ("model", "epoch", "config", "classes")


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


def load_model_state(model: nn.Module, state: dict[str, Any], source: str | Path) -> None:
    """Load a checkpoint's weights, with an error that says which arch and class count it was made for."""
    try:
        unwrap(model).load_state_dict(state["model"])
    except RuntimeError as err:
        cfg = state["config"]
        raise CheckpointError(f"{source} was saved from {cfg.get('arch')} with {len(state['classes'])} classes "
                              f"and does not fit this model ({str(err).splitlines()[0]})") from err


@dataclass
class TrainState:
    """Everything that changes while training; saving and restoring it resumes a run exactly
    (the data order and augmentations are reseeded from the epoch, see ``fgvc.engine``)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epoch: int = 0  # finished epochs
    best_top1: float = -1.0  # best evaluation top-1 so far (best.pt is chosen on it)

    def checkpoint(self, cfg: TrainConfig, classes: list[str], hierarchy: dict[str, list[str]],
                   metrics: dict[str, float]) -> dict[str, Any]:
        """The checkpoint of this state; ``hierarchy`` gives each class's family and manufacturer, if any."""
        return {"model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "epoch": self.epoch,
                "best_top1": self.best_top1, "config": cfg.to_dict(), "classes": classes, "hierarchy": hierarchy,
                "metrics": metrics}

    def restore(self, checkpoint: dict[str, Any], source: str | Path) -> None:
        """Continue from ``checkpoint`` (read from ``source``)."""
        load_model_state(self.model, checkpoint, source)
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


def load_trained(path: str | Path) -> Trained:
    """Rebuild the trained model, its config, class names and class hierarchy from a checkpoint."""
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg.arch, len(state["classes"]), pretrained=False)
    load_model_state(model, state, path)
    return Trained(model.eval(), cfg, list(state["classes"]), dict(state.get("hierarchy", {})))
