"""Training a run as plain functions: ``fit`` (around ``fgvc.training.loop``'s ``train_one_epoch`` and ``evaluate``).

    run_dir = fit(make_config("demo"))                         # logs/<time>-demo/
    run_dir = fit(resume="logs/<run>/last.pt")                 # continue at the next epoch
    run_dir = fit(resume="logs/<run>/last.pt", overrides={"epochs": 80})   # and train longer

One code path serves CPU, CUDA and MPS: the device and the autocast precision come from
the config (``auto`` picks CUDA, then MPS, then the CPU; bf16 where the GPU has it, fp16
with a GradScaler on older GPUs, fp32 otherwise). Every epoch starts by reseeding all
random generators from ``(seed, epoch)``, so a run resumed from a checkpoint sees exactly
the batches and augmentations an uninterrupted run would have seen. With ``ema_decay`` a
moving average of the weights (``fgvc.training.ema``) follows every optimizer step, is evaluated beside
them each epoch, saved in the checkpoint and restored on resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fgvc.core import distributed
from fgvc.core.config import TrainConfig, flag, resume_config
from fgvc.core.distributed import Dist
from fgvc.core.errors import ConfigError, NonFiniteLossError, Preempted
from fgvc.core.presets import PRESETS
from fgvc.core.runtime import Runtime, cpu_computes_bf16
from fgvc.data.hierarchy import hierarchy_names
from fgvc.data.loaders import Loaders, build_loaders
from fgvc.data.transforms import batch_augmentation
from fgvc.evaluation.plots import curves_figure, samples_figure
from fgvc.models.backbones import build_model, model_spec
from fgvc.models.checkpoint import TrainState, load_checkpoint, save_checkpoint, unwrap
from fgvc.runs import provenance
from fgvc.runs.csvlog import EMA_PREFIX
from fgvc.runs.folders import hold_for_resume, release_run_dir, run_record, start_run
from fgvc.runs.logs import setup_logging
from fgvc.runs.runlog import RunLog
from fgvc.runs.status import record_stop
from fgvc.training import memory
from fgvc.training.budget import refit_new_run, schedule_new_run
from fgvc.training.ema import ema_model
from fgvc.training.loop import (
    EvalResult,
    RunProgress,
    eval_columns,
    evaluate,
    format_duration,
    last_good,
    seed_everything,
    train_one_epoch,
)
from fgvc.training.optim import build_optimizer, build_scheduler, follow_schedule
from fgvc.training.preemption import preemption_signals, uninterrupted
from fgvc.training.report import final_report
from fgvc.training.schedule import can_refit

log = logging.getLogger("fgvc")
RANK_SEED_STRIDE = 100_003  # rank r seeds dropout from seed + r * stride (rank 0: the plain seed)


def fit(cfg: TrainConfig | None = None, *, resume: str | Path | None = None, overrides: dict[str, Any] | None = None,
        progress: bool = True, stop_after: int | None = None, loaders: Loaders | None = None) -> Path:
    """Train ``cfg``, or resume the run of checkpoint ``resume``, to the last epoch; return the run folder.

    ``cfg`` is valid: a ``TrainConfig`` validates itself when made. A resumed run keeps its config except for
    ``overrides`` that can safely change (device, workers, data_root, and a longer ``epochs`` with the learning-rate
    schedule recomputed; ``resume_config``); any other override is refused with a ``ConfigError`` naming its flag.
    ``stop_after`` ends this call after that many epochs (a cluster job with a time limit); resuming carries on.

    The run folder receives ``config.json``, ``train.log``, ``samples.png`` (augmented training
    images), ``steps.csv``, ``epochs.csv``, ``last.pt`` (every epoch), ``best.pt`` (best on the
    eval split, only when that split is ``val``: choosing on ``test`` would leak it),
    ``curves.png``, after the last epoch the full analysis of the final model in
    ``eval-<split>/`` (see ``fgvc.evaluation.analysis``), TensorBoard events of the same metrics,
    figures and config (``fgvc.runs.runlog.RunLog``; ``tensorboard=False`` leaves them out), and
    ``provenance.json``: the code, libraries, machine, command, times and data fingerprints of
    each session (``fgvc.runs.provenance``; each checkpoint holds it too). ``epochs.csv``'s ``wall_s``
    counts the run's seconds from the start of ``fit`` to the end of each epoch, over every session.

    The process holds the run folder while it trains: another run into it is refused. Ctrl-C
    (also Jupyter's interrupt) leaves ``last.pt`` at the last finished epoch, exact to resume,
    and is re-raised as a ``KeyboardInterrupt`` whose one-line message says how to resume; SIGTERM
    and SIGUSR1 (a scheduler's preemption) do the same, raising ``Preempted``, and rank 0 records the signal in
    the run folder (``fgvc.runs.status.record_stop``: ``fgvc status`` then asks for a requeue; the next session
    clears it).
    A NaN or infinite loss raises ``NonFiniteLossError`` before that epoch's checkpoint is written.

    ``loaders`` are the ones ``build_loaders(cfg)`` returns, when the caller built
    them already (the notebook shows them first): the images are then decoded and checked once.
    """
    clock, checkpoint = provenance.start_clock(), None
    if resume is not None:
        if cfg is not None:
            raise ConfigError("fit takes a config to start a run or a checkpoint to resume, not both: "
                              "pass what a resume may change as overrides")
        checkpoint = load_checkpoint(resume)
        saved = TrainConfig.from_dict(checkpoint["config"])
        run_dir = Path(resume).parent
        cfg = dataclasses.replace(resume_config(saved, overrides or {}), run_dir=str(run_dir))
        ranks = distributed.init(cfg.device)
        distributed.on_primary(lambda: hold_for_resume(run_dir, cfg, ranks.world_size), ranks)
    elif overrides:
        raise ConfigError("overrides are for a resumed run: put the values into the config of a new run")
    else:
        if cfg is None:
            raise ConfigError("fit needs a config (make_config(...)) or a checkpoint to resume")
        ranks = distributed.init(cfg.device)
        cfg = distributed.on_primary(lambda: start_run(cfg, ranks.world_size), ranks)
        run_dir = Path(cfg.run_dir)
    if not ranks.primary:
        setup_logging(None, logging.WARNING)  # the other ranks print warnings and errors only
    with preemption_signals():  # around the stop's record too: a second signal (torchrun forwards one) is ignored
        try:
            with memory.explain_out_of_memory(cfg, run_dir):
                return _train_run(cfg, run_dir, checkpoint, resume, progress and ranks.primary, stop_after, ranks,
                                  clock, loaders)
        except Preempted as stop:
            if ranks.primary:  # fgvc status reads it: the job is requeued, whichever process the signal reached
                record_stop(run_dir, stop.signal_name)
            raise Preempted(_stopped(str(stop), run_dir), stop.signal_name) from None
        except KeyboardInterrupt:
            raise KeyboardInterrupt(_stopped("interrupted", run_dir)) from None
        finally:
            release_run_dir(run_dir)


def _stopped(what: str, run_dir: Path) -> str:
    """Log and return the line that says how to go on with a run stopped early (``what``: why it stopped)."""
    last = run_dir / "last.pt"
    message = (f"{what}; {last} keeps the last finished epoch; resume with: fgvc train --resume {last}"
               if last.is_file() else f"{what} before the first epoch finished: no checkpoint, start again")
    log.warning(message)
    return message


def build_state(cfg: TrainConfig, num_classes: int, steps_per_epoch: int, runtime: Runtime,
                pretrained: bool = True) -> TrainState:
    """A fresh training state: ``cfg.arch`` (with ImageNet weights when ``pretrained`` and the config asks for
    them), its optimizer, the schedule over the whole run, the loss scaler and the EMA."""
    seed_everything(cfg.seed * 1000)  # the same initial weights in every process, so reruns are exact
    model = runtime.prepare(build_model(cfg.arch, num_classes, pretrained=cfg.pretrained and pretrained,
                                        weights=cfg.weights if pretrained else None, bn_momentum=cfg.bn_momentum,
                                        frozen_stages=cfg.frozen_stages))
    optimizer = build_optimizer(model, cfg)
    ema = ema_model(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    return TrainState(model, optimizer, build_scheduler(optimizer, cfg, steps_per_epoch), runtime.grad_scaler(), ema)


def _restore(state: TrainState, checkpoint: dict[str, Any], source: str | Path, cfg: TrainConfig,
             run_dir: Path) -> None:
    """Continue from ``checkpoint``: weights, optimizer and schedule position (``RunLog`` cuts the CSVs back)."""
    state.restore(checkpoint, source)
    follow_schedule(state.optimizer, state.scheduler)  # cfg.epochs, which a resume may have lengthened
    saved_epochs = checkpoint["config"]["epochs"]
    log.info("resuming %s after epoch %d of %d%s", run_dir, state.epoch, cfg.epochs,
             f" (was {saved_epochs}: schedule recomputed)" if cfg.epochs != saved_epochs else "")


def _train_run(cfg: TrainConfig, run_dir: Path, checkpoint: dict[str, Any] | None, source: str | Path | None,
               progress: bool, stop_after: int | None, ranks: Dist, clock: provenance.Clock,
               loaders: Loaders | None) -> Path:
    """The body of ``fit`` once the run folder is held: build, restore, loop, finish (``clock``: this session's;
    ``loaders``: the caller's, or None to build them)."""
    runtime = Runtime.create(cfg.device, cfg.precision, cfg.channels_last, ranks, training=True)
    if runtime.device.type == "cpu" and runtime.dtype == torch.bfloat16 and not cpu_computes_bf16():
        log.warning("%s bf16 on a CPU without bf16 arithmetic (no AVX512-BF16 or AMX): PyTorch emulates it, several "
                    "times slower than fp32 here; %s auto trains in fp32 on this CPU", flag("precision"),
                    flag("precision"))
    memory.check_fits(cfg, runtime)  # before a step the OOM killer would end without a word
    if loaders is None:
        loaders = build_loaders(cfg, ranks)
    elif ranks.enabled:  # a caller's loaders hold every image: each rank would train and score the whole split
        raise ConfigError("fit(loaders=...) is for one process: under torchrun, let fit build each rank's loaders")
    steps_per_epoch = math.ceil(len(loaders.train) / cfg.accum_steps)
    schedule = None  # how a new run chose its length; a resumed one keeps the epochs it chose
    if checkpoint is None:
        cfg, schedule = schedule_new_run(cfg, steps_per_epoch, loaders, runtime, ranks, clock)
    state = build_state(cfg, len(loaders.classes), steps_per_epoch, runtime, pretrained=checkpoint is None)
    if checkpoint is not None:
        _restore(state, checkpoint, source, cfg, run_dir)
    else:
        log.info("run folder %s", run_dir)
    if ranks.enabled:
        state.model = distributed.wrap(state.model, runtime.device, cfg.sync_bn)
    if cfg.compile:
        state.model = torch.compile(state.model)  # checkpoints and evaluation use the module inside
    log.info("%s on %s (%s), %d classes, %d train / %d eval images (%d bad images skipped), %s precision",
             cfg.arch, runtime.device, cfg.dataset, len(loaders.classes), len(loaders.train.dataset),
             len(loaders.eval.dataset), len(loaders.skipped), runtime.precision_name)
    log.info("global batch %d = %d process(es) x batch %d x %d accumulation step(s)",
             ranks.world_size * cfg.batch_size * cfg.accum_steps, ranks.world_size, cfg.batch_size, cfg.accum_steps)
    if runtime.device.type == "cpu" and PRESETS.get(cfg.preset, {}).get("device") != "cpu":
        log.warning("preset %r is made for a GPU, and this run trains on the CPU: the first batch below projects "
                    "how long it takes. On a machine without a GPU, `--preset cpu` is the recipe measured for the "
                    "CPU (see the README's results on real photos)", cfg.preset)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    first_epoch = state.epoch + 1

    def session_end(cfg: TrainConfig) -> int:
        return cfg.epochs if stop_after is None else min(cfg.epochs, first_epoch - 1 + stop_after)

    clock = dataclasses.replace(clock, before_s=provenance.resumed_wall_s(checkpoint))
    record = provenance.open_record(run_dir, checkpoint, clock, provenance.run_data(cfg, loaders)) \
        if ranks.primary else None
    run_log = RunLog(run_dir, tensorboard=cfg.tensorboard, done_epochs=state.epoch,
                     batches_per_epoch=len(loaders.train), ema=state.ema is not None) if ranks.primary else None
    try:
        if run_log is not None and checkpoint is None:
            _record_start(run_log, cfg, loaders)
        with contextlib.closing(RunProgress(state.epoch * len(loaders.train), session_end(cfg) * len(loaders.train),
                                            progress)) as run_progress:  # its clock starts with the first batch
            for epoch in itertools.count(first_epoch):
                if epoch > session_end(cfg):
                    break
                with contextlib.ExitStack() as records:  # a stop waits from the epoch's records to the analysis
                    result, cfg = _run_epoch(state, epoch, cfg, loaders, criterion, runtime, run_progress, run_log,
                                             records, clock, record, schedule)
                    run_progress.retarget(session_end(cfg) * len(loaders.train))
                    if epoch == cfg.epochs and run_log is not None:
                        final_report(cfg, state, loaders, result, record, run_log, epoch * len(loaders.train))
    finally:
        if run_log is not None:
            run_log.close()
        if record is not None:
            provenance.write_record(run_dir, provenance.update_record(record, clock, ended=True))
    return run_dir


def _record_start(run_log: RunLog, cfg: TrainConfig, loaders: Loaders) -> None:
    """A new run's ``samples.png`` (a grid of augmented training images, also an image event). Its draws come from
    their own generators (epoch 0's augmentations), so training's batches are unchanged."""
    path = Path(cfg.run_dir) / "samples.png"
    samples_figure(loaders.train.dataset, loaders.classes, model_spec(cfg.arch).norm, seed=cfg.seed).savefig(
        path, dpi=80)
    run_log.image("samples", path, 0)


def _run_epoch(state: TrainState, epoch: int, cfg: TrainConfig, loaders: Loaders, criterion: nn.Module,
               runtime: Runtime, run_progress: RunProgress, run_log: RunLog | None, records: contextlib.ExitStack,
               clock: provenance.Clock, record: dict[str, Any] | None,
               schedule: dict[str, Any] | None) -> tuple[EvalResult, TrainConfig]:
    """Train and evaluate epoch ``epoch``, then write its metrics, checkpoints, curves and the run's provenance
    ``record`` (``run_log`` and ``record``: rank 0 alone has them; ``clock`` times the run for ``wall_s``;
    ``run_progress`` shows the session's bar and projects its end in the log). From
    its records on, ``records`` holds the section ``uninterrupted`` until it closes, so a stop signal never leaves
    ``epochs.csv``, ``last.pt`` and ``best.pt`` disagreeing or half written. The first epoch of a new run with a
    time budget (``schedule``: how it chose its length) fits the run's length again before its checkpoint and its
    TensorBoard hparams: the config returned trains those epochs.

    With an EMA both weights are evaluated; the EMA's result is returned and chooses ``best.pt``, as the
    EMA is what ``fgvc evaluate`` and ``fgvc predict`` use."""
    run_dir, ranks = Path(cfg.run_dir), runtime.ranks

    def on_batch(step: int) -> None:
        if run_progress.done == 0:  # the session's first batch: a B4 step on a CPU takes a minute
            if runtime.device.type == "cuda":
                torch.cuda.synchronize(runtime.device)
            left_s = run_progress.move(step)
            log.info("the first batch took %.2f s: this session's %d more batches take about %s",
                     run_progress.seconds_per_batch(), run_progress.last_step - step, format_duration(left_s))

    def log_step(row: dict[str, float]) -> None:
        if run_log is not None:
            run_log.step(row)
        left_s = run_progress.step(row)
        log.info("epoch %d step %d loss %.4f lr %.2e (run: about %s left)", row["epoch"], row["step"], row["loss"],
                 row["lr"], format_duration(left_s))

    seed_everything(cfg.seed * 1000 + epoch + RANK_SEED_STRIDE * ranks.rank)  # dropout differs between ranks
    loaders.train.sampler.set_epoch(epoch)  # this epoch's permutation, the same on every rank
    started = time.perf_counter()
    train_loss = train_one_epoch(state, loaders.train, criterion, runtime, epoch=epoch, log_every=cfg.log_every,
                                 log_step=log_step, accum_steps=cfg.accum_steps,
                                 norm=model_spec(cfg.arch).norm,
                                 batch_augment=batch_augmentation(cfg, len(loaders.classes)), on_batch=on_batch)
    distributed.sync_buffers(unwrap(state.model), ranks)
    result = evaluate(unwrap(state.model), loaders.eval, runtime, run_progress.show)
    if not math.isfinite(result.loss):
        raise NonFiniteLossError(f"the {cfg.eval_split} loss became {result.loss} after epoch {epoch}: expected "
                                 f"a finite loss (try a lower --lr or --precision fp32); {last_good(epoch - 1)}")
    row = {"epoch": epoch, "train_loss": train_loss, **eval_columns(result),
           "lr": state.scheduler.get_last_lr()[0]}
    if state.ema is not None:
        distributed.sync_buffers(state.ema, ranks)  # each rank averaged its own batch-norm statistics
        result = evaluate(state.ema.module, loaders.eval, runtime, run_progress.show)
        row.update(eval_columns(result, EMA_PREFIX))
    row["seconds"], row["wall_s"] = time.perf_counter() - started, clock.run_wall_s()
    is_best = cfg.eval_split == "val" and result.top1 > state.best_top1
    state.epoch, state.best_top1 = epoch, max(state.best_top1, result.top1)
    records.enter_context(uninterrupted())
    if epoch == 1 and can_refit(cfg, schedule):
        cfg, schedule = refit_new_run(state, cfg, schedule, row["seconds"], clock, ranks)
    if run_log is not None:
        if epoch == 1:  # a new run's hparams, with the length its first epoch settled: TensorBoard keeps the first
            run_log.start_session(run_record(cfg, ranks.world_size))
        run_log.epoch(row, epoch * len(loaders.train))
        checkpoint = state.checkpoint(cfg, loaders.classes, hierarchy_names(loaders.hierarchy or {}), row,
                                      provenance.update_record(record, clock))
        save_checkpoint(run_dir / "last.pt", checkpoint)
        provenance.write_record(run_dir, record)
        if is_best:
            save_checkpoint(run_dir / "best.pt", checkpoint)
        curves_figure(run_dir).savefig(run_dir / "curves.png", dpi=110)
        run_log.image("curves", run_dir / "curves.png", epoch * len(loaders.train))
    log.info("epoch %d/%d: train loss %.4f, %s loss %.4f, top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%% "
             "(%.0f s)", epoch, cfg.epochs, train_loss, cfg.eval_split, row["eval_loss"], 100 * row["eval_top1"],
             100 * row["eval_top5"], 100 * row["eval_mean_class_acc"], row["seconds"])
    if state.ema is not None:
        log.info("epoch %d/%d: EMA weights: %s loss %.4f, top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%%", epoch,
                 cfg.epochs, cfg.eval_split, result.loss, 100 * result.top1, 100 * result.top5,
                 100 * result.mean_class_acc)
    return result, cfg
