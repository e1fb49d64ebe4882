"""A new run's length on this machine, the engine's side of ``fgvc.training.schedule``: the probe that times a few
batches of a throwaway model before the schedule starts, the records of the choice (``config.json``,
``schedule.json``), and the refit after the first epoch.

    cfg, record = schedule_new_run(cfg, steps_per_epoch, loaders, runtime, ranks, clock)
    cfg, record = refit_new_run(state, cfg, record, first_epoch_s, clock, ranks)   # after epoch 1 (can_refit)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fgvc.core import distributed
from fgvc.core.config import TrainConfig
from fgvc.core.distributed import Dist
from fgvc.core.runtime import Runtime
from fgvc.data.loaders import Loaders
from fgvc.data.transforms import normalize
from fgvc.models.backbones import build_model, model_spec
from fgvc.models.checkpoint import TrainState
from fgvc.runs import provenance
from fgvc.runs.folders import write_config
from fgvc.training.optim import build_optimizer, build_scheduler, follow_schedule
from fgvc.training.report import final_passes
from fgvc.training.schedule import Pace, choose_schedule, measure_pace, refit_schedule, write_schedule


def schedule_new_run(cfg: TrainConfig, steps_per_epoch: int, loaders: Loaders, runtime: Runtime,
                     ranks: Dist, clock: provenance.Clock) -> tuple[TrainConfig, dict[str, Any]]:
    """``cfg`` with the epochs this new run trains (``fgvc.training.schedule``), written to ``config.json`` and
    ``schedule.json``, and that record. With a time budget, a throwaway model of the same arch times a few training
    and evaluation batches first (rank 0's pace decides for every rank)."""

    def measure() -> Pace:
        model = runtime.prepare(build_model(cfg.arch, len(loaders.classes), pretrained=False,
                                            bn_momentum=cfg.bn_momentum, frozen_stages=cfg.frozen_stages))
        optimizer, criterion, norm = build_optimizer(model, cfg), nn.CrossEntropyLoss(), model_spec(cfg.arch).norm

        def train_step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
            model.train()
            with runtime.autocast():
                loss = criterion(model(normalize(runtime.inputs(batch[0]), norm)), batch[1].to(runtime.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def eval_step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
            model.eval()
            with torch.no_grad(), runtime.autocast():
                model(runtime.inputs(batch[0]))

        pace = measure_pace(loaders.train, loaders.eval, train_step, eval_step, 2 if cfg.ema_decay > 0 else 1,
                            final_passes(cfg), clock.seconds)
        return distributed.broadcast(pace, ranks)

    cfg, record = choose_schedule(cfg, steps_per_epoch, measure)
    _record_schedule(cfg, record, ranks)
    return cfg, record


def _record_schedule(cfg: TrainConfig, record: dict[str, Any], ranks: Dist, length_changed: bool = True) -> None:
    """Write how the run's length was chosen to ``schedule.json`` and, when it changed, the length to
    ``config.json`` (rank 0)."""

    def write() -> None:
        if length_changed:
            write_config(cfg, ranks.world_size)
        write_schedule(cfg.run_dir, record)

    distributed.on_primary(write, ranks)


def refit_new_run(state: TrainState, cfg: TrainConfig, schedule: dict[str, Any], first_epoch_s: float,
                  clock: provenance.Clock, ranks: Dist) -> tuple[TrainConfig, dict[str, Any]]:
    """After a new run's first epoch, ``cfg`` with the epochs that fit its budget at that epoch's pace (rank 0's),
    the scheduler following them, and the record of that choice (``schedule.refit_schedule``)."""
    first_epoch_s, elapsed_s = distributed.broadcast((first_epoch_s, clock.seconds()), ranks)
    refitted, schedule = refit_schedule(cfg, schedule, first_epoch_s, elapsed_s)
    length_changed = refitted.epochs != cfg.epochs
    if length_changed:
        position = state.scheduler.state_dict()
        state.scheduler = build_scheduler(state.optimizer, refitted, schedule["steps_per_epoch"])
        state.scheduler.load_state_dict(position)
        follow_schedule(state.optimizer, state.scheduler)
    _record_schedule(refitted, schedule, ranks, length_changed)
    return refitted, schedule
