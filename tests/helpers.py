"""Builders the test modules share: the shrunk demo config, a training loop over a plain loader, notebook
execution, and the comparison of two runs' CSV rows without their timings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import papermill
import torch
from torch.utils.data import DataLoader

from fgvc.checkpoint import TrainState
from fgvc.config import TrainConfig, make_config
from fgvc.loop import train_one_epoch
from fgvc.optim import build_optimizer, build_scheduler
from fgvc.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 6  # the classes of conftest's ``synthetic_root``
SMALL = {"img_size": 32, "batch_size": 4}  # a run whose learning does not matter: as cheap as the loop allows
MakeDataset = Callable[..., Path]  # conftest's ``make_dataset`` fixture
TIMING = ("seconds", "wall_s", "images_per_s")  # the columns of steps.csv and epochs.csv that vary run to run


def tiny_config(data_root: Path, run_dir: Path, **overrides: object) -> TrainConfig:
    """The demo preset shrunk for tests: 64-px images, in-process loading; B0 from random weights unless
    ``overrides`` say otherwise (no weights file to read; the demo fine-tunes Lite0: see test_pretrained.py)."""
    values = {"data_root": str(data_root), "run_dir": str(run_dir), "img_size": 64, "batch_size": 16,
              "workers": 0, "epochs": 2, "warmup_epochs": 0, "log_every": 5, "arch": "efficientnet-b0",
              "pretrained": False}
    return make_config("demo", **{**values, **overrides})


def learning_config(data_root: Path, run_dir: Path, **overrides: object) -> TrainConfig:
    """``tiny_config`` long enough to learn the synthetic classes: 3 epochs of what the demo trains (Lite0
    fine-tuned from its ImageNet weights) at 64 px."""
    return tiny_config(data_root, run_dir, **{"epochs": 3, "arch": "efficientnet-lite0", "pretrained": True,
                                              **overrides})


def without_timing(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """CSV rows with the columns that depend on the machine's speed left out."""
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def train(model: torch.nn.Module, cfg: TrainConfig, loader: DataLoader, accum_steps: int = 1) -> TrainState:
    """``cfg.epochs`` epochs of ``model`` on ``loader`` through the engine's own optimizer, schedule and loop,
    on the CPU; the final state."""
    runtime = Runtime(torch.device("cpu"))
    optimizer = build_optimizer(model, cfg)
    steps = len(loader) // accum_steps + (len(loader) % accum_steps > 0)
    state = TrainState(model, optimizer, build_scheduler(optimizer, cfg, steps), runtime.grad_scaler())
    for epoch in range(1, cfg.epochs + 1):
        train_one_epoch(state, loader, torch.nn.CrossEntropyLoss(), runtime, epoch=epoch, accum_steps=accum_steps)
    return state


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def execute(name: str, out: Path, parameters: dict[str, object]) -> nbformat.NotebookNode:
    """Run the project's notebook ``name`` headless with ``parameters`` into ``out``; it must raise nothing."""
    papermill.execute_notebook(str(ROOT / name), str(out), parameters=parameters, cwd=str(ROOT),
                               kernel_name="python3", progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    errors = [o for cell in code_cells(executed) for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    return executed
