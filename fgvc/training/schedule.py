"""How long a run trains: a number of epochs chosen from the data, then shortened to fit a time budget.

    epochs, reason = rule_epochs(cfg, steps_per_epoch=15)          # 27, "schedule_steps 400 / 15 steps an epoch"
    cfg, schedule = choose_schedule(cfg, steps_per_epoch, measure)   # the epochs a new run trains, and why

A fixed number of epochs cannot suit 300 photos and 3,000: fine-tuning wants about the same number of
optimizer steps on either (BiT's "HyperRule", Kolesnikov et al., "Big Transfer", sets the steps by the dataset's
size). With ``epochs`` left unset (``None``) and ``schedule_steps`` set, a new run trains
``ceil(schedule_steps / steps_per_epoch)`` epochs, held between ``schedule_min_epochs`` and
``schedule_max_epochs``: the same data, batch and number of processes give the same epochs on any machine.

With ``time_budget`` (minutes; 0: none), a new run times a few training and evaluation batches before its schedule
starts, projects the whole run (the time it has taken so far, its epochs, and the evaluation passes after the last
one: calibration, a zoomed look), and when the projection exceeds the budget trains fewer epochs, saying so and
recording it. After its first epoch (still warming up, so any length agrees with it so far) the run fits its
length again at the pace that whole epoch took, longer or shorter, and says so. Either way the chosen ``epochs`` go
into the run's config (``config.json``, the checkpoint), so ``--resume`` keeps them and ``--epochs N`` reproduces
the run; ``schedule.json`` in the run folder holds the rule, its numbers, the projection and the refit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fgvc.core.config import TrainConfig, flag

log = logging.getLogger("fgvc")
SCHEDULE_FILE = "schedule.json"
# the batches timed before the schedule starts, of training and of evaluation; the first few of each warm up (workers
# start, oneDNN builds its kernels) and are left out, and the median of the rest resists a stall. On warbirds20 with 2
# AVX2 cores the preset's first 12 training batches took 4.4, 3.1, 2.8, 2.8, 2.3, 2.8, 2.3, 2.0, 2.0, 2.2, 2.1 and
# 2.5 s; the mean of batches 2-3 alone projected 251 s an epoch, against 145 to 184 s trained, and cut the
# preset's 7 epochs to 3 where 5 fitted. Batches after the warm-up still varied by a third from one start to the
# next there, so a projection stays an estimate.
PROBE_BATCHES, PROBE_EVAL_BATCHES, WARMUP_BATCHES = 8, 3, 3


@dataclasses.dataclass(frozen=True)
class Pace:
    """Measured seconds of one training batch and one evaluation batch (per process), and the batches an epoch
    holds of each."""

    train_batch_s: float
    eval_batch_s: float
    train_batches: int
    eval_batches: int
    evaluations: int = 1  # evaluation passes an epoch (2 with an EMA: both weights are evaluated)
    before_s: float = 0.0  # seconds the run took before its first epoch: checking the images, this probe
    final_passes: int = 0  # evaluation passes after the last epoch: the calibration's, a zoomed look's (2)

    def epoch_s(self) -> float:
        """Projected seconds of one epoch: its training batches, then its evaluations."""
        return self.train_batch_s * self.train_batches + self.evaluations * self.eval_batch_s * self.eval_batches

    def final_s(self) -> float:
        """Projected seconds of the evaluation passes after the last epoch."""
        return self.final_passes * self.eval_batch_s * self.eval_batches

    def outside_s(self) -> float:
        """Seconds of the run outside its epochs: before the first, and the passes after the last."""
        return self.before_s + self.final_s()

    def run_s(self, epochs: int) -> float:
        """Projected seconds of a whole run of ``epochs``, from its start to its end."""
        return self.outside_s() + epochs * self.epoch_s()


def rule_epochs(cfg: TrainConfig, steps_per_epoch: int) -> tuple[int, str]:
    """The epochs ``cfg``'s schedule rule gives for ``steps_per_epoch`` optimizer steps an epoch, and the rule
    in words with its numbers. ``cfg.epochs`` set (pinned) wins."""
    if cfg.epochs is not None:
        return cfg.epochs, f"{flag('epochs')} {cfg.epochs} (pinned)"
    wanted = math.ceil(cfg.schedule_steps / steps_per_epoch)
    epochs = min(max(wanted, cfg.schedule_min_epochs), cfg.schedule_max_epochs)
    held = "" if epochs == wanted else f", held to [{cfg.schedule_min_epochs}, {cfg.schedule_max_epochs}]"
    return epochs, (f"schedule_steps {cfg.schedule_steps} / {steps_per_epoch} optimizer steps an epoch = "
                    f"{wanted} epochs{held}")


def fit_budget(epochs: int, pace: Pace, budget_minutes: float) -> int:
    """The most epochs, at most ``epochs`` and at least 1, whose whole run (``Pace.run_s``) fits ``budget_minutes``."""
    return max(1, min(epochs, math.floor((60 * budget_minutes - pace.outside_s()) / pace.epoch_s())))


def choose_schedule(cfg: TrainConfig, steps_per_epoch: int,
                    measure: Callable[[], Pace]) -> tuple[TrainConfig, dict[str, Any]]:
    """``cfg`` with the epochs a new run trains (the rule's, shortened to ``cfg.time_budget`` when the run,
    projected by ``measure()``, would not fit), and the record of that choice. ``measure`` is called only when
    there is a budget (``time_budget`` > 0)."""
    epochs, rule = rule_epochs(cfg, steps_per_epoch)
    record: dict[str, Any] = {"rule": rule, "steps_per_epoch": steps_per_epoch, "rule_epochs": epochs,
                              "time_budget_minutes": cfg.time_budget, "epochs": epochs, "shortened": False}
    log.info("schedule: %d epochs (%s)", epochs, rule)
    if cfg.time_budget > 0:
        pace = measure()
        projected = pace.run_s(epochs) / 60
        fitted = fit_budget(epochs, pace, cfg.time_budget)
        record.update(projected_minutes=projected, pace=dataclasses.asdict(pace), epochs=fitted,
                      shortened=fitted < epochs)
        if fitted < epochs:
            log.warning("schedule: %d epochs project to %.1f min on this machine (%.2f s a training batch, %.0f s "
                        "an epoch, %.0f s before the first and after the last), over the time budget of %g min: "
                        "training %d epochs instead. %s %d reproduces this run; %s 0 turns the budget off", epochs,
                        projected, pace.train_batch_s, pace.epoch_s(), pace.outside_s(), cfg.time_budget, fitted,
                        flag("epochs"), fitted, flag("time_budget"))
        else:
            log.info("schedule: %d epochs project to %.1f min on this machine, within the time budget of %g min",
                     epochs, projected, cfg.time_budget)
    record["asked"] = {"warmup_epochs": cfg.warmup_epochs, "head_only_epochs": cfg.head_only_epochs}
    log.info("schedule: %s %d reproduces this run's length", flag("epochs"), record["epochs"])
    return _with_epochs(cfg, record), record


def _with_epochs(cfg: TrainConfig, record: dict[str, Any]) -> TrainConfig:
    """``cfg`` training ``record``'s epochs, with the warm-up and head-only epochs it asked for held within them."""
    epochs, asked = record["epochs"], record["asked"]
    warmup = min(asked["warmup_epochs"], epochs)
    return dataclasses.replace(cfg, epochs=epochs, warmup_epochs=warmup,
                               head_only_epochs=min(asked["head_only_epochs"], epochs - max(warmup, 1)))


def can_refit(cfg: TrainConfig, record: dict[str, Any] | None) -> bool:
    """Whether a run whose schedule ``record`` chose may fit its length again after its first epoch: it has a time
    budget, and that epoch is still warming up (the cosine has not begun, so the lengths agree up to there)."""
    return record is not None and "pace" in record and cfg.warmup_epochs >= 1


def refit_schedule(cfg: TrainConfig, record: dict[str, Any], first_epoch_s: float,
                   elapsed_s: float) -> tuple[TrainConfig, dict[str, Any]]:
    """After a new run's first epoch (``can_refit``), the epochs that fit its budget at that epoch's pace:
    ``elapsed_s`` seconds gone, ``first_epoch_s`` for each epoch to come, and the evaluation passes after the last,
    never more than the rule's epochs nor fewer than one. A whole epoch measures better than the probe's few batches
    (on warbirds20 with 2 AVX2 cores, those were 15 % pessimistic on 2,000 photos and 10 % optimistic on 500)."""
    pace, before = Pace(**record["pace"]), record["epochs"]
    left_s = 60 * cfg.time_budget - elapsed_s - pace.final_s()
    epochs = max(1, min(record["rule_epochs"], 1 + math.floor(left_s / first_epoch_s)))
    record = {**record, "epochs": epochs, "shortened": epochs < record["rule_epochs"],
              "refit": {"first_epoch_s": first_epoch_s, "elapsed_s": elapsed_s, "epochs_before": before}}
    if epochs != before:
        log.warning("schedule: the first epoch took %.0f s (%.0f s since the start): %d epochs fit the time budget of "
                    "%g min, not the %d the probe projected: training %d. %s %d reproduces this run", first_epoch_s,
                    elapsed_s, epochs, cfg.time_budget, before, epochs, flag("epochs"), epochs)
    return _with_epochs(cfg, record), record


def write_schedule(run_dir: str | Path, record: dict[str, Any]) -> None:
    """``schedule.json``: how the run's epochs were chosen."""
    (Path(run_dir) / SCHEDULE_FILE).write_text(json.dumps(record, indent=2) + "\n")


def measure_pace(train_loader: Iterable[Any], eval_loader: Iterable[Any], train_step: Callable[[Any], None],
                 eval_step: Callable[[Any], None], evaluations: int, final_passes: int,
                 since_start: Callable[[], float]) -> Pace:
    """Time ``PROBE_BATCHES`` batches of ``train_loader`` through ``train_step`` and ``PROBE_EVAL_BATCHES`` of
    ``eval_loader`` through ``eval_step``, loading included, leaving out the warm-up; ``since_start()`` then gives
    the seconds the run has taken so far."""
    train_batch_s = _seconds_per_batch(train_loader, train_step, PROBE_BATCHES)
    eval_batch_s = _seconds_per_batch(eval_loader, eval_step, PROBE_EVAL_BATCHES)
    return Pace(train_batch_s, eval_batch_s, len(train_loader), len(eval_loader), evaluations, since_start(),
                final_passes)


def _seconds_per_batch(loader: Iterable[Any], work: Callable[[Any], None], batches: int) -> float:
    """Median seconds of loading and working on the first ``batches`` batches of ``loader`` after its first
    ``WARMUP_BATCHES`` (fewer where the probe or the loader is short: at least one batch is timed)."""
    times, started = [], time.perf_counter()
    for index, batch in enumerate(loader):
        work(batch)
        now = time.perf_counter()
        times.append(now - started)
        started = now
        if index + 1 >= batches:
            break
    return statistics.median(times[min(WARMUP_BATCHES, len(times) - 1):])
