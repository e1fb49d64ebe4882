"""The training loop as plain functions, like torchvision's references: one epoch of training, one pass of
evaluation.

    loss = train_one_epoch(state, loader, criterion, runtime, epoch=1, norm=spec.norm)
    result = evaluate(model, eval_loader, runtime)          # loss, top-1, top-5, mean class accuracy, scores
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fgvc.core import distributed
from fgvc.core.errors import NonFiniteLossError
from fgvc.core.runtime import Runtime
from fgvc.data.normalization import Normalization
from fgvc.data.transforms import BatchAugment, normalize
from fgvc.evaluation import metrics
from fgvc.models.checkpoint import TrainState, unwrap
from fgvc.models.scoring import predict_scores


def last_good(epoch: int) -> str:
    """What is left after a failure once ``epoch`` epochs had finished."""
    if epoch == 0:
        return "no epoch had finished, so there is no checkpoint"
    return f"last.pt keeps epoch {epoch}, the last good one"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_one_epoch(state: TrainState, loader: DataLoader, criterion: nn.Module, runtime: Runtime, *,
                    epoch: int, log_every: int = 5, log_step: Callable[[dict[str, float]], None] | None = None,
                    accum_steps: int = 1, norm: Normalization | None = None,
                    batch_augment: BatchAugment | None = None, on_batch: Callable[[int], None] | None = None) -> float:
    """Train ``state`` one pass over ``loader``; every ``log_every`` batches call ``log_step`` with the mean loss,
    and after every batch ``on_batch`` with its step (batches over the whole run).

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
    for batch, (images, targets) in enumerate(loader, start=1):
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
        step = (epoch - 1) * steps + batch
        if on_batch is not None:
            on_batch(step)
        if batch % log_every == 0 or batch == steps:
            window_loss = distributed.mean(window_loss, runtime.ranks)
            mean_loss = window_loss.item() / window_batches
            if not math.isfinite(mean_loss):
                raise NonFiniteLossError(f"the training loss became {mean_loss} in epoch {epoch} at step {step}: "
                                         f"expected a finite loss (try a lower --lr or --precision fp32); "
                                         f"{last_good(epoch - 1)}")
            epoch_loss += window_loss.item()
            row = {"epoch": epoch, "step": step, "loss": mean_loss, "lr": scheduler.get_last_lr()[0],
                   "images_per_s": window_images / (time.perf_counter() - window_start)}
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


def eval_columns(result: EvalResult, prefix: str = "") -> dict[str, float]:
    """The ``epochs.csv`` columns of one evaluation (``prefix``: ``ema_`` for the EMA weights')."""
    return {f"{prefix}eval_loss": result.loss, f"{prefix}eval_top1": result.top1, f"{prefix}eval_top5": result.top5,
            f"{prefix}eval_mean_class_acc": result.mean_class_acc}


def format_duration(seconds: float) -> str:
    """``2.5 days``, ``1 h 05 min``, ``12 min``, ``40 s``: a projected duration as a person reads it."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{round(seconds / 60)} min" if seconds >= 60 else f"{round(seconds)} s"


class RunProgress:
    """The whole session's progress: a bar over every training batch it has left, and the projected time to its
    end from the pace so far (the evaluations between epochs included once one has run). The clock starts when
    it is made: just before the first batch.

    ``move(step)`` and ``step(row)`` take the run's step (batches over the whole run): after any batch, and
    with the loop's logged rows."""

    def __init__(self, first_step: int, last_step: int, show: bool) -> None:
        self.first_step, self.last_step, self.show, self.started = first_step, last_step, show, time.perf_counter()
        self.done = 0  # batches trained in this session
        self.bar = tqdm(total=last_step - first_step, desc="run", unit="batch", disable=not show)

    def seconds_per_batch(self) -> float:
        """This session's seconds per training batch so far."""
        return (time.perf_counter() - self.started) / max(1, self.done)

    def move(self, step: int) -> float:
        """Move the bar to ``step`` and return the seconds projected for the rest of this session."""
        done = step - self.first_step
        self.bar.update(done - self.done)
        self.done = done
        return self.seconds_per_batch() * (self.last_step - step)

    def retarget(self, last_step: int) -> None:
        """End the session at ``last_step`` instead (a run that fitted its length again)."""
        if last_step != self.last_step:
            self.last_step, self.bar.total = last_step, last_step - self.first_step
            self.bar.refresh()

    def step(self, row: dict[str, float]) -> float:
        """Move the bar to ``row``, show its epoch and loss, and return the seconds projected for the rest of
        this session."""
        self.bar.set_postfix(epoch=int(row["epoch"]), loss=f"{row['loss']:.3f}")
        return self.move(int(row["step"]))

    def close(self) -> None:
        self.bar.close()
