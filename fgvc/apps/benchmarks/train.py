"""``fgvc bench train``: one optimisation step (forward, backward, SGD step) on random images.

For efficientnet_pytorch and torchvision's EfficientNet at B0 and B4, the baseline is fp32 in the
NCHW layout; then each speed-up alone and all together: autocast (bf16, or fp16 on GPUs without
bf16), channels_last, ``torch.compile``. A compiled row notes how long compiling took and after
how many steps it has paid for itself, against an FGVC-Aircraft trainval epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from fgvc.apps.benchmarks import Row, measure, table
from fgvc.core.runtime import Runtime, cpu_computes_bf16, resolve_device, resolve_precision
from fgvc.models.backbones import build_model

ARCHS = ("efficientnet-b0", "efficientnet-b4", "tv_efficientnet_b0", "tv_efficientnet_b4")
TRAINVAL_IMAGES = 6667  # FGVC-Aircraft's trainval split: one epoch
# name: (autocast, channels_last, torch.compile)
SPEEDUPS = {"fp32 NCHW (baseline)": (False, False, False), "autocast": (True, False, False),
            "channels_last": (False, True, False), "autocast + channels_last": (True, True, False),
            "torch.compile": (False, False, True), "autocast + channels_last + compile": (True, True, True)}


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  runtime: Runtime, images: torch.Tensor, targets: torch.Tensor) -> Callable[[], int]:
    """One forward, backward and optimizer step on the same batch each call; returns the batch size."""
    def step() -> int:
        with runtime.autocast():
            loss = nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return images.shape[0]
    return step


def _row(name: str, arch: str, speedups: tuple[bool, bool, bool], device: torch.device, img_size: int,
         batch_size: int, repeats: int) -> Row:
    """Build ``arch`` with ``speedups`` and measure its training step."""
    autocast, channels_last, compiled = speedups
    runtime = Runtime(device, resolve_precision("auto", device) or torch.bfloat16 if autocast else None,
                      channels_last)
    model = runtime.prepare(build_model(arch, 100, pretrained=False)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = runtime.inputs(torch.randn(batch_size, 3, img_size, img_size))
    targets = torch.randint(0, 100, (batch_size,), device=device)
    note = ""
    if compiled:
        model = torch.compile(model)
    step = training_step(model, optimizer, runtime.grad_scaler(), runtime, images, targets)
    if compiled:
        started = time.perf_counter()
        step()
        note = f"compiling: {time.perf_counter() - started:.0f} s"
    row = measure(name, step, repeats, warmup=1, device=device, note=note)
    return row


def _payback(rows: list[Row], batch_size: int) -> list[Row]:
    """Notes on the compiled rows: after how many steps compiling pays for itself, against an epoch."""
    by_name = {row.name: row for row in rows}
    pairs = {"torch.compile": "fp32 NCHW (baseline)", "autocast + channels_last + compile": "autocast + channels_last"}
    epoch_steps = math.ceil(TRAINVAL_IMAGES / batch_size)
    out = []
    for row in rows:
        if row.name in pairs and row.note:
            compile_s = float(row.note.split()[1])
            saved = batch_size / by_name[pairs[row.name]].images_per_s - batch_size / row.images_per_s
            verdict = (f"pays for itself after {compile_s / saved:.0f} steps (an epoch: {epoch_steps})"
                       if saved > 0 else "never pays for itself: no faster per step")
            row = Row(row.name, row.images_per_s, row.peak_mb, f"{row.note}; {verdict}")
        out.append(row)
    return out


def run(*, repeats: int, device: str, img_size: int | None = None, batch_size: int | None = None,
        archs: Sequence[str] | None = None, with_compile: bool | None = None, quick: bool = False) -> str:
    """A table per architecture (default ``ARCHS``): each speed-up against fp32 NCHW, the median of ``repeats``
    steps. ``with_compile`` also measures ``torch.compile`` (default: on GPUs only); ``quick``: tiny inputs."""
    torch_device = resolve_device(device)
    gpu = torch_device.type == "cuda"
    img_size = img_size or (32 if quick else 448 if gpu else 224)
    batch_size = batch_size or (2 if quick else 32 if gpu else 8)
    archs = archs or (("efficientnet-b0",) if quick else ARCHS)
    with_compile = gpu if with_compile is None else with_compile
    speedups = {k: v for k, v in SPEEDUPS.items() if (with_compile and not quick) or not v[2]}
    where = (torch_device.type if torch_device.type != "cpu"
             else f"cpu {'with' if cpu_computes_bf16() else 'without'} bf16 arithmetic")
    reports = []
    for arch in archs:
        rows = [_row(name, arch, flags, torch_device, img_size, batch_size, repeats)
                for name, flags in speedups.items()]
        reports.append(table(f"Training step, {arch}, {img_size} px, batch {batch_size}, {where}",
                             _payback(rows, batch_size)))
    return "\n\n".join(reports)
