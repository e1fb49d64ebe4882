"""``fgvc bench recipe``: the training step of the ``cpu`` preset's recipe at 224 px with the whole network
learning, against the recipes that make a step shorter: smaller inputs and frozen early stages
(``frozen_stages``). The step is the preset's own: its arch, optimizer and parameter groups, batch size,
precision and memory layout; only the fields a row names change."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from fgvc.apps.benchmarks import Row, measure, table
from fgvc.apps.benchmarks.train import training_step
from fgvc.core.config import make_config
from fgvc.core.runtime import Runtime, cpu_computes_bf16, resolve_device
from fgvc.models.backbones import build_model
from fgvc.training.optim import build_optimizer

BASELINE = "224 px, whole network (baseline)"
# name: the fields it changes
RECIPES: dict[str, dict[str, Any]] = {BASELINE: {}, "192 px": {"img_size": 192}, "160 px": {"img_size": 160},
                                      "224 px, frozen_stages 4": {"frozen_stages": 4},
                                      "192 px, frozen_stages 4": {"img_size": 192, "frozen_stages": 4}}
CLASSES = 20


def _row(name: str, fields: dict[str, Any], device: torch.device, batch_size: int, repeats: int,
         scale: float) -> Row:
    """The preset's training step with ``fields`` changed; ``scale`` shrinks every input size (quick runs)."""
    cfg = make_config("cpu", **{"device": device.type, "img_size": 224, **fields})
    cfg = dataclasses.replace(cfg, img_size=max(32, round(cfg.img_size * scale)))
    runtime = Runtime.create(cfg.device, cfg.precision, cfg.channels_last, training=True)
    model = runtime.prepare(build_model(cfg.arch, CLASSES, pretrained=False, frozen_stages=cfg.frozen_stages)).train()
    images = runtime.inputs(torch.randn(batch_size, 3, cfg.img_size, cfg.img_size))
    targets = torch.randint(0, CLASSES, (batch_size,), device=runtime.device)
    step = training_step(model, build_optimizer(model, cfg), runtime.grad_scaler(), runtime, images, targets)
    return measure(name, step, repeats, warmup=2, device=runtime.device, note=f"{cfg.img_size} px")


def run(*, repeats: int, device: str, img_size: int | None = None, batch_size: int | None = None,
        quick: bool = False) -> str:
    """One table: each row of ``RECIPES`` against the baseline, the median of ``repeats`` steps (``img_size``
    scales every row's input as it scales 224 px; ``quick``: tiny inputs and batches)."""
    torch_device = resolve_device(device)
    batch_size = batch_size or (2 if quick else make_config("cpu").batch_size)
    scale = (img_size or (32 if quick else 224)) / 224
    where = (torch_device.type if torch_device.type != "cpu"
             else f"cpu {'with' if cpu_computes_bf16() else 'without'} bf16 arithmetic")
    rows = [_row(name, fields, torch_device, batch_size, repeats, scale) for name, fields in RECIPES.items()]
    return table(f"Training step of the cpu preset's recipe, {make_config('cpu').arch}, batch {batch_size}, {where}",
                 rows)
