"""The training loop as plain functions: ``train_one_epoch``, ``evaluate``, ``fit``.

    run_dir = fit(make_config("demo"))                    # logs/<time>-demo/
    run_dir = fit(cfg, resume="logs/<run>/last.pt")       # continue at the next epoch

One code path serves CPU, CUDA and MPS: the device and the autocast precision come from
the config (``auto`` picks CUDA, then MPS, then the CPU; bf16 where the GPU has it, fp16
with a GradScaler on older GPUs, fp32 otherwise). Every epoch starts by reseeding all
random generators from ``(seed, epoch)``, so a run resumed from a checkpoint sees exactly
the batches and augmentations an uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fgvc import metrics
from fgvc.analysis import analyse, format_report
from fgvc.checkpoint import load_checkpoint, load_model_state, save_checkpoint, unwrap
from fgvc.config import TrainConfig, validate
from fgvc.data import build_loaders, dataset_hierarchy, hierarchy_names
from fgvc.model import build_model, model_spec
from fgvc.plots import curves_figure
from fgvc.tracking import (
    EPOCH_FIELDS,
    STEP_FIELDS,
    append_row,
    claim_run_dir,
    keep_epochs_up_to,
    new_run_dir,
    release_run_dir,
    setup_logging,
)

log = logging.getLogger("fgvc")


class NonFiniteLossError(RuntimeError):
    """The training (or evaluation) loss became NaN or infinite; ``last.pt`` keeps the last good epoch."""


def _last_good(epoch: int) -> str:
    """What is left after a failure once ``epoch`` epochs had finished."""
    if epoch == 0:
        return "no epoch had finished, so there is no checkpoint"
    return f"last.pt keeps epoch {epoch}, the last good one"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA, then MPS, then CPU; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[name]:
        raise RuntimeError(f"device={name!r} is not available on this machine: expected 'auto' or 'cpu'")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``name`` on ``device``; ``None`` means plain fp32."""
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov) or AdamW; norms and biases get no weight decay."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
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
    """Per-step warmup + cosine schedule over the whole run."""
    warmup, total = cfg.warmup_epochs * steps_per_epoch, cfg.epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total))


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, criterion: nn.Module, *,
                    device: torch.device, dtype: torch.dtype | None, scaler: torch.amp.GradScaler,
                    epoch: int, log_every: int = 5, log_step: Callable[[dict[str, float]], None] | None = None,
                    channels_last: bool = False, progress: bool = False) -> float:
    """Train one pass over ``loader``; every ``log_every`` batches call ``log_step`` with the mean loss.

    Returns the epoch's mean training loss. Raises ``NonFiniteLossError`` naming the epoch and
    step when the loss stops being finite (checked at each logged step, so the GPU is not
    synchronised on every batch).
    """
    model.train()
    steps = len(loader)
    window_loss, window_images, window_start = torch.zeros((), device=device), 0, time.perf_counter()
    epoch_loss, window_batches = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress)
    for batch, (images, targets) in enumerate(bar, start=1):
        images, targets = _to_device(images, device, channels_last), targets.to(device, non_blocking=True)
        with _autocast(device, dtype):
            loss = criterion(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        window_loss += loss.detach().float()
        window_images += images.shape[0]
        window_batches += 1
        if batch % log_every == 0 or batch == steps:
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


@torch.no_grad()
def predict_scores(model: nn.Module, loader: DataLoader, *, device: torch.device, dtype: torch.dtype | None = None,
                   channels_last: bool = False, progress: bool = False, tta: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N, C) and targets (N,) of ``model`` over ``loader``.

    ``tta`` averages the softmax of each image and of its horizontal mirror.
    """
    model.eval()
    all_scores, all_targets = [], []
    for images, targets in tqdm(loader, desc="eval", leave=False, disable=not progress):
        images = _to_device(images, device, channels_last)
        with _autocast(device, dtype):
            probs = model(images).float().softmax(dim=1)
            if tta:
                probs = (probs + model(images.flip(3)).float().softmax(dim=1)) / 2
        all_scores.append(probs.cpu())
        all_targets.append(targets)
    return torch.cat(all_scores).numpy(), torch.cat(all_targets).numpy()


def evaluate(model: nn.Module, loader: DataLoader, *, device: torch.device, dtype: torch.dtype | None = None,
             channels_last: bool = False, progress: bool = False) -> EvalResult:
    """Cross-entropy, top-1, top-5 and mean per-class accuracy of ``model`` over ``loader``."""
    scores, targets = predict_scores(model, loader, device=device, dtype=dtype, channels_last=channels_last,
                                     progress=progress)
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


def start_run(cfg: TrainConfig) -> TrainConfig:
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
        raise PermissionError(f"cannot create run folder {cfg.run_dir or 'logs/<time>-<preset>'} ({err}): "
                              f"expected a writable path") from err
    claim_run_dir(run_dir)
    if (run_dir / "last.pt").exists() or (run_dir / "epochs.csv").exists():
        release_run_dir(run_dir)
        raise FileExistsError(f"run folder {run_dir} already holds a run: resume it with --resume "
                              f"{run_dir / 'last.pt'} or choose another --run-dir")
    keep_epochs_up_to(run_dir / "steps.csv", 0, STEP_FIELDS)  # rows of a run stopped in its first epoch
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    setup_logging(run_dir)
    return cfg


def checkpoint_state(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     scaler: torch.amp.GradScaler, epoch: int, cfg: TrainConfig, classes: list[str],
                     hierarchy: dict[str, list[str]], row: dict[str, float], best_top1: float) -> dict[str, Any]:
    """Everything that rebuilds the model and resumes the run after ``epoch`` finished epochs;
    ``hierarchy`` gives the family and manufacturer of each class where the dataset has them."""
    return {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
            "config": cfg.to_dict(), "classes": classes, "hierarchy": hierarchy, "metrics": row,
            "best_top1": best_top1}


def fit(cfg: TrainConfig, resume: str | Path | None = None, progress: bool = True,
        stop_after: int | None = None) -> Path:
    """Train ``cfg`` (or resume the run of checkpoint ``resume``) to the last epoch; return the run folder.

    ``stop_after`` ends this call after that many epochs (a cluster job with a time limit);
    ``fit(..., resume=run_dir / "last.pt")`` carries on from there.

    The run folder receives ``config.json``, ``train.log``, ``steps.csv``, ``epochs.csv``,
    ``last.pt`` (every epoch), ``best.pt`` (best on the eval split, only when that split is
    ``val``: choosing on ``test`` would leak it), ``curves.png``, and after the last epoch the
    full analysis of the final model in ``eval-<split>/`` (see ``fgvc.analysis``).

    The process holds the run folder while it trains: another run into it is refused. Ctrl-C
    (also Jupyter's interrupt) leaves ``last.pt`` at the last finished epoch, exact to resume,
    and is re-raised as a ``KeyboardInterrupt`` whose one-line message says how to resume.
    A NaN or infinite loss raises ``NonFiniteLossError`` before that epoch's checkpoint is written.
    """
    state = None
    if resume is not None:
        state = load_checkpoint(resume)
        cfg = TrainConfig.from_dict(state["config"])
        run_dir = Path(resume).parent
        claim_run_dir(run_dir)
        setup_logging(run_dir)
    else:
        cfg = start_run(cfg)
        run_dir = Path(cfg.run_dir)
    try:
        return _train_run(cfg, run_dir, state, resume, progress, stop_after)
    except KeyboardInterrupt:
        last = run_dir / "last.pt"
        message = (f"interrupted; {last} keeps the last finished epoch; resume with: fgvc train --resume {last}"
                   if last.is_file() else "interrupted before the first epoch finished: no checkpoint, start again")
        log.warning(message)
        raise KeyboardInterrupt(message) from None
    finally:
        release_run_dir(run_dir)


def _train_run(cfg: TrainConfig, run_dir: Path, state: dict[str, Any] | None, resume: str | Path | None,
               progress: bool, stop_after: int | None) -> Path:
    """The body of ``fit`` once the run folder is held: build, restore, train, evaluate, save."""
    device, spec = resolve_device(cfg.device), model_spec(cfg.arch)
    dtype = resolve_precision(cfg.precision, device)
    generator = torch.Generator()
    loaders = build_loaders(cfg, spec.norm, generator)
    eval_hierarchy = dataset_hierarchy(cfg, cfg.eval_split)
    hierarchy = hierarchy_names(eval_hierarchy) if eval_hierarchy else {}
    seed_everything(cfg.seed * 1000)  # the same initial weights in every process, so reruns are exact
    model = build_model(cfg.arch, len(loaders.classes), pretrained=cfg.pretrained and state is None,
                        weights=cfg.weights if state is None else None, bn_momentum=cfg.bn_momentum)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, len(loaders.train))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    start_epoch, best_top1 = 0, -1.0
    if state is not None:
        load_model_state(model, state, resume)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best_top1 = state["epoch"], state.get("best_top1", -1.0)
        for name, fields in (("steps.csv", STEP_FIELDS), ("epochs.csv", EPOCH_FIELDS)):
            keep_epochs_up_to(run_dir / name, start_epoch, fields)
        log.info("resuming %s after epoch %d of %d", run_dir, start_epoch, cfg.epochs)
    else:
        log.info("run folder %s", run_dir)
    log.info("%s on %s (%s), %d classes, %d train / %d eval images (%d bad images skipped), %s precision",
             cfg.arch, device, cfg.dataset, len(loaders.classes), len(loaders.train.dataset),
             len(loaders.eval.dataset), len(loaders.skipped), dtype or "fp32")

    def log_step(row: dict[str, float]) -> None:
        append_row(run_dir / "steps.csv", STEP_FIELDS, row)
        log.info("epoch %d step %d loss %.4f lr %.2e", row["epoch"], row["step"], row["loss"], row["lr"])

    last_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        seed_everything(cfg.seed * 1000 + epoch)
        generator.manual_seed(cfg.seed * 1000 + epoch)
        started = time.perf_counter()
        train_loss = train_one_epoch(model, loaders.train, optimizer, scheduler, criterion, device=device,
                                     dtype=dtype, scaler=scaler, epoch=epoch, log_every=cfg.log_every,
                                     log_step=log_step, channels_last=cfg.channels_last, progress=progress)
        result = evaluate(model, loaders.eval, device=device, dtype=dtype, channels_last=cfg.channels_last,
                          progress=progress)
        if not math.isfinite(result.loss):
            raise NonFiniteLossError(f"the {cfg.eval_split} loss became {result.loss} after epoch {epoch}: expected "
                                     f"a finite loss (try a lower --lr or --precision fp32); {_last_good(epoch - 1)}")
        row = {"epoch": epoch, "train_loss": train_loss, "eval_loss": result.loss, "eval_top1": result.top1,
               "eval_top5": result.top5, "eval_mean_class_acc": result.mean_class_acc,
               "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started}
        append_row(run_dir / "epochs.csv", EPOCH_FIELDS, row)
        is_best = cfg.eval_split == "val" and result.top1 > best_top1
        best_top1 = max(best_top1, result.top1)
        ckpt = checkpoint_state(model, optimizer, scheduler, scaler, epoch, cfg, loaders.classes, hierarchy, row,
                                best_top1)
        save_checkpoint(run_dir / "last.pt", ckpt)
        if is_best:
            save_checkpoint(run_dir / "best.pt", ckpt)
        curves_figure(run_dir).savefig(run_dir / "curves.png", dpi=110)
        log.info("epoch %d/%d: train loss %.4f, %s loss %.4f, top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%% "
                 "(%.0f s)", epoch, cfg.epochs, train_loss, cfg.eval_split, result.loss, 100 * result.top1,
                 100 * result.top5, 100 * result.mean_class_acc, row["seconds"])
        if epoch == cfg.epochs:
            analysis = analyse(result.scores, result.targets, loaders.classes, eval_hierarchy,
                               run_dir / f"eval-{cfg.eval_split}", cfg.seed,
                               {"checkpoint": str(run_dir / "last.pt"), "split": cfg.eval_split, "tta": False})
            log.info("final model:\n%s", format_report(analysis.report))
    return run_dir
