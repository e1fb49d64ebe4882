"""The training loop as plain functions: ``train_one_epoch``, ``evaluate``, ``fit``.

    run_dir = fit(make_config("demo"))                         # logs/<time>-demo/
    run_dir = fit(resume="logs/<run>/last.pt")                 # continue at the next epoch
    run_dir = fit(resume="logs/<run>/last.pt", overrides={"epochs": 80})   # and train longer

One code path serves CPU, CUDA and MPS: the device and the autocast precision come from
the config (``auto`` picks CUDA, then MPS, then the CPU; bf16 where the GPU has it, fp16
with a GradScaler on older GPUs, fp32 otherwise). Every epoch starts by reseeding all
random generators from ``(seed, epoch)``, so a run resumed from a checkpoint sees exactly
the batches and augmentations an uninterrupted run would have seen. With ``ema_decay`` a
moving average of the weights (``fgvc.ema``) follows every optimizer step, is evaluated beside
them each epoch, saved in the checkpoint and restored on resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fgvc import distributed, metrics, provenance
from fgvc.analysis import analyse, format_report
from fgvc.checkpoint import TrainState, load_checkpoint, save_checkpoint, unwrap
from fgvc.config import TrainConfig, resume_config, validate
from fgvc.data.datasets import image_files
from fgvc.data.hierarchy import hierarchy_names
from fgvc.data.loaders import Loaders, build_loaders
from fgvc.data.normalization import Normalization
from fgvc.data.transforms import BatchAugment, batch_augmentation, normalize
from fgvc.distributed import SINGLE, Dist
from fgvc.ema import ema_model
from fgvc.errors import ConfigError, FgvcError, FolderError, NonFiniteLossError, Preempted
from fgvc.evaluation import evaluate_checkpoint
from fgvc.model import build_model, model_spec
from fgvc.plots import curves_figure, samples_figure
from fgvc.predict import predict_scores
from fgvc.runtime import Runtime
from fgvc.tracking import EMA_PREFIX, RunLog, claim_run_dir, new_run_dir, release_run_dir, setup_logging

log = logging.getLogger("fgvc")
RANK_SEED_STRIDE = 100_003  # rank r seeds dropout from seed + r * stride (rank 0: the plain seed)


def _last_good(epoch: int) -> str:
    """What is left after a failure once ``epoch`` epochs had finished."""
    if epoch == 0:
        return "no epoch had finished, so there is no checkpoint"
    return f"last.pt keeps epoch {epoch}, the last good one"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov) or AdamW; norms and biases get no weight decay, and with ``head_lr_scale``
    the classifier head (new for the dataset's classes) trains at that multiple of ``lr``."""
    head_prefix = model_spec(cfg.arch).head + "."
    by_kind: dict[tuple[bool, bool], list[nn.Parameter]] = {}  # (in the head, decays): backbone first, decay first
    for name, param in model.named_parameters():
        if param.requires_grad:
            in_head = cfg.head_lr_scale != 1 and name.startswith(head_prefix)
            by_kind.setdefault((in_head, param.ndim <= 1), []).append(param)
    groups = [{"params": params, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
               "lr": cfg.lr * (cfg.head_lr_scale if in_head else 1.0)}
              for (in_head, no_decay), params in sorted(by_kind.items())]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step warmup + cosine schedule over the whole run (``steps_per_epoch`` optimizer steps an epoch)."""
    warmup, total = cfg.warmup_epochs * steps_per_epoch, cfg.epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total))


def train_one_epoch(state: TrainState, loader: DataLoader, criterion: nn.Module, runtime: Runtime, *,
                    epoch: int, log_every: int = 5, log_step: Callable[[dict[str, float]], None] | None = None,
                    progress: bool = False, accum_steps: int = 1, norm: Normalization | None = None,
                    batch_augment: BatchAugment | None = None) -> float:
    """Train ``state`` one pass over ``loader``; every ``log_every`` batches call ``log_step`` with the mean loss.

    uint8 batches (``build_loaders``' training batches) go to the device as they are and are normalised
    there with ``norm``: a quarter of the bytes to copy, and no float work in the loader's workers. Then
    ``batch_augment`` (``fgvc.data.batch_augmentation``: random erasing, mixup, cutmix) may change the batch.

    The gradients of ``accum_steps`` batches add up before each optimizer step (under DDP, without
    an all-reduce for the batches in between); the EMA, if kept, is updated after each optimizer step.
    Returns the epoch's mean training loss, averaged over the processes of a torchrun run. Raises
    ``NonFiniteLossError`` naming the epoch and step when the loss stops being finite (checked at each
    logged step, on every rank alike, so the GPU is not synchronised on every batch and all ranks stop
    together).
    """
    model, optimizer, scheduler, scaler = state.model, state.optimizer, state.scheduler, state.scaler
    model.train()
    steps = len(loader)
    window_loss, window_images, window_start = torch.zeros((), device=runtime.device), 0, time.perf_counter()
    epoch_loss, window_batches = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress)
    for batch, (images, targets) in enumerate(bar, start=1):
        images, targets = runtime.inputs(images), targets.to(runtime.device, non_blocking=True)
        if images.dtype == torch.uint8:
            images = normalize(images, norm)
        if batch_augment is not None:
            images, targets = batch_augment(images, targets)
        step_now = batch % accum_steps == 0 or batch == steps
        no_sync = model.no_sync() if not step_now and hasattr(model, "no_sync") else contextlib.nullcontext()
        with no_sync:
            with runtime.autocast():
                loss = criterion(model(images), targets)
            scaler.scale(loss / accum_steps).backward()
        if step_now:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if state.ema is not None:
                state.ema.update_parameters(unwrap(model))
        window_loss += loss.detach().float()
        window_images += images.shape[0] * runtime.ranks.world_size
        window_batches += 1
        if batch % log_every == 0 or batch == steps:
            window_loss = distributed.mean(window_loss, runtime.ranks)
            mean_loss = window_loss.item() / window_batches
            step = (epoch - 1) * steps + batch
            if not math.isfinite(mean_loss):
                raise NonFiniteLossError(f"the training loss became {mean_loss} in epoch {epoch} at step {step}: "
                                         f"expected a finite loss (try a lower --lr or --precision fp32); "
                                         f"{_last_good(epoch - 1)}")
            epoch_loss += window_loss.item()
            row = {"epoch": epoch, "step": step, "loss": mean_loss, "lr": scheduler.get_last_lr()[0],
                   "images_per_s": window_images / (time.perf_counter() - window_start)}
            bar.set_postfix(loss=f"{mean_loss:.3f}")
            if log_step is not None:
                log_step(row)
            window_loss.zero_()
            window_images, window_batches, window_start = 0, 0, time.perf_counter()
    return epoch_loss / steps


@dataclass
class EvalResult:
    """Loss and accuracies (fractions in [0, 1]) of one pass, with the raw scores behind them."""

    loss: float
    top1: float
    top5: float
    mean_class_acc: float
    scores: np.ndarray  # (N, C) softmax probabilities
    targets: np.ndarray  # (N,)


def evaluate(model: nn.Module, loader: DataLoader, runtime: Runtime, progress: bool = False) -> EvalResult:
    """Cross-entropy, top-1, top-5 and mean per-class accuracy of ``model`` over ``loader``; under torchrun
    each rank scores its shard and every rank gets the whole split's result, each image counted once."""
    scores, targets = distributed.gather_shards(*predict_scores(model, loader, runtime, progress=progress),
                                                runtime.ranks)
    num_classes = scores.shape[1]
    loss = float(-np.log(np.clip(scores[np.arange(len(targets)), targets], 1e-12, None)).mean())
    confusion = metrics.confusion_matrix(scores.argmax(axis=1), targets, num_classes)
    return EvalResult(
        loss=loss,
        top1=float(metrics.topk_hits(scores, targets, 1).mean()),
        top5=float(metrics.topk_hits(scores, targets, min(5, num_classes)).mean()),
        mean_class_acc=metrics.mean_class_accuracy(confusion),
        scores=scores,
        targets=targets,
    )


def start_run(cfg: TrainConfig, ranks: Dist = SINGLE) -> TrainConfig:
    """Validate ``cfg``, claim its run folder, write ``config.json`` and log to ``train.log``.

    The folder is ``cfg.run_dir``, or a new ``logs/<time>-<preset>``; a folder that already
    holds a trained epoch is refused (resume it instead), and so is one that another process
    holds (``tracking.claim_run_dir``). Returns ``cfg`` with ``run_dir`` set. Calling it again
    on the returned config is harmless, so a notebook can start logging before ``fit``.
    """
    validate(cfg)
    try:
        run_dir = new_run_dir("logs", cfg.preset) if cfg.run_dir is None else Path(cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FolderError(f"cannot create run folder {cfg.run_dir or 'logs/<time>-<preset>'} ({err}): "
                          f"expected a writable path") from err
    claim_run_dir(run_dir)
    if (run_dir / "last.pt").exists() or (run_dir / "epochs.csv").exists():
        release_run_dir(run_dir)
        raise FolderError(f"run folder {run_dir} already holds a run: resume it with --resume "
                          f"{run_dir / 'last.pt'} or choose another --run-dir")
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    _write_config(cfg, ranks)
    setup_logging(run_dir)
    return cfg


def _run_record(cfg: TrainConfig, ranks: Dist) -> dict[str, Any]:
    """The config, the number of processes and the global batch they make."""
    facts = {"processes": ranks.world_size, "global_batch": ranks.world_size * cfg.batch_size * cfg.accum_steps}
    return {**cfg.to_dict(), **facts}


def _write_config(cfg: TrainConfig, ranks: Dist) -> None:
    """``config.json``: the run record."""
    (Path(cfg.run_dir) / "config.json").write_text(json.dumps(_run_record(cfg, ranks), indent=2) + "\n")


def _on_primary(action: Callable[[], Any], ranks: Dist) -> Any:
    """Run ``action`` on rank 0 alone and give every rank its result; its ``FgvcError`` stops every rank
    with the same message."""
    if not ranks.enabled:
        return action()
    outcome: Any = None
    if ranks.primary:
        try:
            outcome = action()
        except FgvcError as err:
            distributed.broadcast(FgvcError(str(err)), ranks)
            raise
    outcome = distributed.broadcast(outcome, ranks)
    if isinstance(outcome, FgvcError):
        raise outcome
    return outcome


def _hold_for_resume(run_dir: Path, cfg: TrainConfig, ranks: Dist) -> None:
    """Hold a resumed run's folder, record how it now runs in ``config.json``, and log into its ``train.log``."""
    claim_run_dir(run_dir)
    _write_config(cfg, ranks)
    setup_logging(run_dir)


def fit(cfg: TrainConfig | None = None, *, resume: str | Path | None = None, overrides: dict[str, Any] | None = None,
        progress: bool = True, stop_after: int | None = None) -> Path:
    """Train ``cfg``, or resume the run of checkpoint ``resume``, to the last epoch; return the run folder.

    A resumed run keeps its config except for ``overrides`` that can safely change (device,
    workers, data_root, and a longer ``epochs`` with the learning-rate schedule recomputed); any
    other override is refused with a ``ConfigError`` naming its flag. ``stop_after`` ends this
    call after that many epochs (a cluster job with a time limit); resuming carries on.

    The run folder receives ``config.json``, ``train.log``, ``samples.png`` (augmented training
    images), ``steps.csv``, ``epochs.csv``, ``last.pt`` (every epoch), ``best.pt`` (best on the
    eval split, only when that split is ``val``: choosing on ``test`` would leak it),
    ``curves.png``, after the last epoch the full analysis of the final model in
    ``eval-<split>/`` (see ``fgvc.analysis``), TensorBoard events of the same metrics,
    figures and config (``tracking.RunLog``; ``tensorboard=False`` leaves them out), and
    ``provenance.json``: the code, libraries, machine, command, times and data fingerprints of
    each session (``fgvc.provenance``; each checkpoint holds it too). ``epochs.csv``'s ``wall_s``
    counts the run's seconds from the start of ``fit`` to the end of each epoch, over every session.

    The process holds the run folder while it trains: another run into it is refused. Ctrl-C
    (also Jupyter's interrupt) leaves ``last.pt`` at the last finished epoch, exact to resume,
    and is re-raised as a ``KeyboardInterrupt`` whose one-line message says how to resume; SIGTERM
    and SIGUSR1 (a scheduler's preemption) do the same, raising ``Preempted``.
    A NaN or infinite loss raises ``NonFiniteLossError`` before that epoch's checkpoint is written.
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
        _on_primary(lambda: _hold_for_resume(run_dir, cfg, ranks), ranks)
    elif overrides:
        raise ConfigError("overrides are for a resumed run: put the values into the config of a new run")
    else:
        if cfg is None:
            raise ConfigError("fit needs a config (make_config(...)) or a checkpoint to resume")
        validate(cfg)
        ranks = distributed.init(cfg.device)
        cfg = _on_primary(lambda: start_run(cfg, ranks), ranks)
        run_dir = Path(cfg.run_dir)
    if not ranks.primary:
        setup_logging(None, logging.WARNING)  # the other ranks print warnings and errors only
    try:
        with preemption_signals():
            return _train_run(cfg, run_dir, checkpoint, resume, progress and ranks.primary, stop_after, ranks,
                              clock)
    except KeyboardInterrupt as stop:
        last = run_dir / "last.pt"
        what = str(stop) if isinstance(stop, Preempted) else "interrupted"
        message = (f"{what}; {last} keeps the last finished epoch; resume with: fgvc train --resume {last}"
                   if last.is_file() else f"{what} before the first epoch finished: no checkpoint, start again")
        log.warning(message)
        raise type(stop)(message) from None
    finally:
        release_run_dir(run_dir)


@dataclass
class _Stop:
    """A stop signal seen by this process, and how many ``uninterrupted`` sections it is waiting for."""

    signal: signal.Signals | None = None
    deferring: int = 0


_STOP = _Stop()


@contextlib.contextmanager
def preemption_signals() -> Iterator[None]:
    """Turn SIGTERM (what schedulers send before they kill a job) and SIGUSR1 (SLURM's ``--signal``) into
    ``Preempted``, so a preempted run stops like Ctrl-C: ``last.pt`` keeps the last finished epoch.

    Python runs the handler between bytecodes, so the stop waits for the operation in progress (a forward or
    backward pass at most); inside ``uninterrupted`` it waits for the section to end. Only the first signal
    counts: under SLURM a rank can get the same signal twice (from srun's step and from torchrun, which
    forwards it), and a second one must not cut the first one's clean-up. Outside the main thread (where
    signals cannot be handled) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        if _STOP.signal is not None:
            return
        _STOP.signal = signal.Signals(signum)
        if not _STOP.deferring:
            raise Preempted(f"preempted by {_STOP.signal.name}")

    wanted = [signal.SIGTERM] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
    _STOP.signal = None
    previous = {sig: signal.signal(sig, stop) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A section that a stop signal never cuts (rank 0 writing an epoch's records and checkpoints, the final
    analysis): a signal that arrives meanwhile raises ``Preempted`` once the section has ended."""
    _STOP.deferring += 1
    try:
        yield
    finally:
        _STOP.deferring -= 1
    if not _STOP.deferring and _STOP.signal is not None:
        raise Preempted(f"preempted by {_STOP.signal.name}")


def build_state(cfg: TrainConfig, num_classes: int, steps_per_epoch: int, runtime: Runtime,
                pretrained: bool = True) -> TrainState:
    """A fresh training state: the model (ImageNet weights when ``pretrained`` and the config asks for them),
    its optimizer, the schedule over the whole run and the loss scaler."""
    seed_everything(cfg.seed * 1000)  # the same initial weights in every process, so reruns are exact
    model = build_model(cfg.arch, num_classes, pretrained=cfg.pretrained and pretrained,
                        weights=cfg.weights if pretrained else None, bn_momentum=cfg.bn_momentum)
    model = runtime.prepare(model)
    optimizer = build_optimizer(model, cfg)
    ema = ema_model(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    return TrainState(model, optimizer, build_scheduler(optimizer, cfg, steps_per_epoch), runtime.grad_scaler(), ema)


def _restore(state: TrainState, checkpoint: dict[str, Any], source: str | Path, cfg: TrainConfig,
             run_dir: Path) -> None:
    """Continue from ``checkpoint``: weights, optimizer and schedule position (``RunLog`` cuts the CSVs back)."""
    state.restore(checkpoint, source)
    scheduler = state.scheduler  # the schedule follows cfg.epochs, which a resume may have lengthened
    for group, base, factor in zip(state.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(scheduler.last_epoch)
    saved_epochs = checkpoint["config"]["epochs"]
    log.info("resuming %s after epoch %d of %d%s", run_dir, state.epoch, cfg.epochs,
             f" (was {saved_epochs}: schedule recomputed)" if cfg.epochs != saved_epochs else "")


def _train_run(cfg: TrainConfig, run_dir: Path, checkpoint: dict[str, Any] | None, source: str | Path | None,
               progress: bool, stop_after: int | None, ranks: Dist, clock: provenance.Clock) -> Path:
    """The body of ``fit`` once the run folder is held: build, restore, loop, finish (``clock``: this session's)."""
    runtime = Runtime.create(cfg.device, cfg.precision, cfg.channels_last, ranks)
    loaders = build_loaders(cfg, model_spec(cfg.arch).norm, ranks)
    steps_per_epoch = math.ceil(len(loaders.train) / cfg.accum_steps)
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
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    last_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, state.epoch + stop_after)
    clock = dataclasses.replace(clock, before_s=provenance.resumed_wall_s(checkpoint))
    record = provenance.open_record(run_dir, checkpoint, clock, provenance.run_data(cfg, loaders)) \
        if ranks.primary else None
    run_log = RunLog(run_dir, tensorboard=cfg.tensorboard, done_epochs=state.epoch,
                     batches_per_epoch=len(loaders.train), ema=state.ema is not None) if ranks.primary else None
    try:
        if run_log is not None and checkpoint is None:
            _record_start(run_log, cfg, loaders, ranks)
        for epoch in range(state.epoch + 1, last_epoch + 1):
            with contextlib.ExitStack() as records:  # a stop waits from the epoch's records to the analysis
                result = _run_epoch(state, epoch, cfg, loaders, criterion, runtime, progress, run_log, records, clock,
                                    record)
                if epoch == cfg.epochs and run_log is not None:
                    out, weights = run_dir / f"eval-{cfg.eval_split}", "raw" if state.ema is None else "ema"
                    if cfg.eval_zoom:  # what `fgvc evaluate` gives by default: the zoomed second look as well
                        analysis = evaluate_checkpoint(run_dir / "last.pt", cfg.eval_split, cfg.data_root,
                                                       cfg.device, out)
                    else:
                        analysis = analyse(result.scores, result.targets, loaders.classes, loaders.hierarchy, out,
                                           cfg.seed, {"checkpoint": str(run_dir / "last.pt"),
                                                      "split": cfg.eval_split, "tta": False, "view": cfg.eval_view,
                                                      "weights": weights, **provenance.evaluation_facts(
                                                          record, record["sessions"][-1]["data"]["eval"])},
                                           files=image_files(loaders.eval.dataset))
                    log.info("final model (%s weights%s):\n%s", "EMA" if weights == "ema" else "raw",
                             ", zoomed second look" if cfg.eval_zoom else "", format_report(analysis.report))
                    run_log.image("confusion", out / "confusion.png", epoch * len(loaders.train))
                    run_log.end_session(epoch * len(loaders.train))
    finally:
        if run_log is not None:
            run_log.close()
        if record is not None:
            provenance.write_record(run_dir, provenance.update_record(record, clock, ended=True))
    return run_dir


def _record_start(run_log: RunLog, cfg: TrainConfig, loaders: Loaders, ranks: Dist) -> None:
    """A new run's ``samples.png`` (a grid of augmented training images, also an image event) and its hparams.
    Its draws come from their own generators (epoch 0's augmentations), so training's batches are unchanged."""
    path = Path(cfg.run_dir) / "samples.png"
    samples_figure(loaders.train.dataset, loaders.classes, model_spec(cfg.arch).norm, seed=cfg.seed).savefig(
        path, dpi=80)
    run_log.image("samples", path, 0)
    run_log.start_session(_run_record(cfg, ranks))


def _run_epoch(state: TrainState, epoch: int, cfg: TrainConfig, loaders: Loaders, criterion: nn.Module,
               runtime: Runtime, progress: bool, run_log: RunLog | None, records: contextlib.ExitStack,
               clock: provenance.Clock, record: dict[str, Any] | None) -> EvalResult:
    """Train and evaluate epoch ``epoch``, then write its metrics, checkpoints, curves and the run's provenance
    ``record`` (``run_log`` and ``record``: rank 0 alone has them; ``clock`` times the run for ``wall_s``). From
    its records on, ``records`` holds the section ``uninterrupted`` until it closes, so a stop signal never leaves
    ``epochs.csv``, ``last.pt`` and ``best.pt`` disagreeing or half written.

    With an EMA both weights are evaluated; the EMA's result is returned and chooses ``best.pt``, as the
    EMA is what ``fgvc evaluate`` and ``fgvc predict`` use."""
    run_dir, ranks = Path(cfg.run_dir), runtime.ranks

    def log_step(row: dict[str, float]) -> None:
        if run_log is not None:
            run_log.step(row)
        log.info("epoch %d step %d loss %.4f lr %.2e", row["epoch"], row["step"], row["loss"], row["lr"])

    seed_everything(cfg.seed * 1000 + epoch + RANK_SEED_STRIDE * ranks.rank)  # dropout differs between ranks
    loaders.train.sampler.set_epoch(epoch)  # this epoch's permutation, the same on every rank
    started = time.perf_counter()
    train_loss = train_one_epoch(state, loaders.train, criterion, runtime, epoch=epoch, log_every=cfg.log_every,
                                 log_step=log_step, progress=progress, accum_steps=cfg.accum_steps,
                                 norm=model_spec(cfg.arch).norm,
                                 batch_augment=batch_augmentation(cfg, len(loaders.classes)))
    distributed.sync_buffers(unwrap(state.model), ranks)
    result = evaluate(unwrap(state.model), loaders.eval, runtime, progress)
    if not math.isfinite(result.loss):
        raise NonFiniteLossError(f"the {cfg.eval_split} loss became {result.loss} after epoch {epoch}: expected "
                                 f"a finite loss (try a lower --lr or --precision fp32); {_last_good(epoch - 1)}")
    row = {"epoch": epoch, "train_loss": train_loss, **_eval_columns(result),
           "lr": state.scheduler.get_last_lr()[0]}
    if state.ema is not None:
        distributed.sync_buffers(state.ema, ranks)  # each rank averaged its own batch-norm statistics
        result = evaluate(state.ema.module, loaders.eval, runtime, progress)
        row.update(_eval_columns(result, EMA_PREFIX))
    row["seconds"], row["wall_s"] = time.perf_counter() - started, clock.run_wall_s()
    is_best = cfg.eval_split == "val" and result.top1 > state.best_top1
    state.epoch, state.best_top1 = epoch, max(state.best_top1, result.top1)
    records.enter_context(uninterrupted())
    if run_log is not None:
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
    return result


def _eval_columns(result: EvalResult, prefix: str = "") -> dict[str, float]:
    """The ``epochs.csv`` columns of one evaluation (``prefix``: ``ema_`` for the EMA weights')."""
    return {f"{prefix}eval_loss": result.loss, f"{prefix}eval_top1": result.top1, f"{prefix}eval_top5": result.top5,
            f"{prefix}eval_mean_class_acc": result.mean_class_acc}
