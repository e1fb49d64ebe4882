"""Builders the test modules share: the shrunk demo config, a training loop over a plain loader, notebook
execution, the comparison of two runs' CSV rows without their timings, and of two inference paths' answers
within a stated tolerance."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from fgvc.core.config import TrainConfig, make_config
from fgvc.core.runtime import Runtime
from fgvc.models.checkpoint import TrainState
from fgvc.training.loop import train_one_epoch
from fgvc.training.optim import build_optimizer, build_scheduler

if TYPE_CHECKING:  # nbformat and papermill take seconds to import: only the notebook tests load them
    import nbformat

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 6  # the classes of conftest's ``synthetic_root``
SMALL = {"img_size": 32, "batch_size": 4}  # a run whose learning does not matter: as cheap as the loop allows
MakeDataset = Callable[..., Path]  # conftest's ``make_dataset`` fixture
TIMING = ("seconds", "wall_s", "images_per_s")  # the columns of steps.csv and epochs.csv that vary run to run
# Two inference paths (batch sizes, thread counts, other CPUs' SIMD kernels, ONNX Runtime) give a class probabilities
# that differ by about 1e-6, never bit for bit: they must agree within 100 times that. A wrong normalisation moves
# the short run's probabilities by 0.15 (median of each photo's largest change), bf16 autocast by 0.05.
PROBABILITY_TOLERANCE = 1e-4
LOGIT_TOLERANCE = 1e-4  # the same for two computations of fp32 logits, relative to their scale (at least 1)
PRINTED = 1e-4  # two probabilities printed as percentages with 2 decimals: rounded by up to 0.5e-4 each
PERCENT, RANK = re.compile(r" +(\d+\.\d+)%"), re.compile(r"^  \d+\. ")  # in fgvc predict's text output
Ranked = list[tuple[str, tuple[float, ...]]]  # what ``agree`` compares: names and their probabilities, best first


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


def ranked(probabilities: Mapping[str, float]) -> Ranked:
    """Names and their probabilities, best first, as ``agree`` compares them."""
    return [(name, (probability,)) for name, probability in probabilities.items()]


def read_printout(text: str) -> Ranked:
    """``fgvc predict``'s text output as ``agree`` compares it: each line, under its file's line, with its guess
    rank and its percentages taken out, and the percentages as probabilities."""
    pairs, file = [], ""
    for line in text.splitlines():
        file = file if line.startswith(" ") else line
        pairs.append((f"{file}\n{PERCENT.sub(' %', RANK.sub('  ', line))}",
                      tuple(float(percent) / 100 for percent in PERCENT.findall(line))))
    return pairs


def agree(a: Ranked, b: Ranked, slack: float = 0.0) -> bool:
    """Two inference paths' answers agree: the same names, each name's probabilities within
    ``PROBABILITY_TOLERANCE`` (plus ``slack``) of the other path's, and the probabilities rank by rank too, so that
    two names swap places only where their probabilities are that close (a tie)."""
    def close(x: tuple[float, ...], y: tuple[float, ...]) -> bool:
        return len(x) == len(y) and all(abs(p - q) <= PROBABILITY_TOLERANCE + slack for p, q in zip(x, y))

    other = dict(b)
    return (len(a) == len(b) and dict(a).keys() == other.keys() and all(close(p, other[name]) for name, p in a)
            and close(tuple(p for _, ps in a for p in ps), tuple(p for _, ps in b for p in ps)))


def same_top1(a: Mapping[str, tuple[str, float]], b: Mapping[str, tuple[str, float]]) -> bool:
    """Two paths' top class and its probability of each file (``{file: (class, probability)}``) agree: the same
    files and classes, the probabilities within ``PROBABILITY_TOLERANCE``."""
    return a.keys() == b.keys() and all(a[file][0] == b[file][0] and
                                        abs(a[file][1] - b[file][1]) <= PROBABILITY_TOLERANCE for file in a)


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
    import nbformat
    import papermill

    papermill.execute_notebook(str(ROOT / name), str(out), parameters=parameters, cwd=str(ROOT),
                               kernel_name="python3", progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    errors = [o for cell in code_cells(executed) for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    return executed
