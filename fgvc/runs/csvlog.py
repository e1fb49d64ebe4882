"""The metrics CSV files of a run folder: ``steps.csv`` and ``epochs.csv``, their columns, rows appended and read.

    append_row(run_dir / "epochs.csv", epoch_fields(ema=False), row)   # header first if the file is new
    rows = read_rows(run_dir / "epochs.csv")                            # values as floats
    keep_epochs_up_to(run_dir / "steps.csv", 3, STEP_FIELDS)           # a resumed run drops an unfinished epoch

``steps.csv`` gets a row every ``log_every`` batches, ``epochs.csv`` one per epoch (``fgvc.runs.runlog.RunLog``
writes both, beside their TensorBoard events); the CSV files are what the notebooks read.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

STEP_FIELDS = ("epoch", "step", "loss", "lr", "images_per_s")
EVAL_FIELDS = ("eval_loss", "eval_top1", "eval_top5", "eval_mean_class_acc")
EPOCH_FIELDS = ("epoch", "train_loss", *EVAL_FIELDS, "lr", "seconds", "wall_s")  # wall_s: provenance.Clock
EMA_PREFIX = "ema_"  # epochs.csv columns of the EMA weights: ema_eval_loss, ema_eval_top1, ...


def epoch_fields(ema: bool) -> tuple[str, ...]:
    """The columns of ``epochs.csv``; with ``ema`` each eval column comes twice, the EMA weights' with ``ema_``."""
    return EPOCH_FIELDS + tuple(EMA_PREFIX + name for name in EVAL_FIELDS) if ema else EPOCH_FIELDS


def append_row(path: str | Path, fields: tuple[str, ...], row: dict[str, float]) -> None:
    """Append one row (header first if the file is new) and flush it to disk."""
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerow({k: row[k] for k in fields})
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: str | Path) -> list[dict[str, float]]:
    """Every complete row of a metrics CSV, values as floats."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for row in reader:
            try:
                rows.append({k: float(v) for k, v in row.items()})
            except (TypeError, ValueError):  # a row cut short by a crash
                continue
        return rows


def keep_epochs_up_to(path: str | Path, last_epoch: int, fields: tuple[str, ...]) -> None:
    """Rewrite ``path`` atomically with only the complete rows of epochs ``<= last_epoch``, in columns ``fields``;
    a column the file lacks (written by an older fgvc, e.g. ``wall_s``) is NaN in its rows: not measured."""
    path = Path(path)
    if not path.exists():
        return
    rows = [{k: r.get(k, math.nan) for k in fields} for r in read_rows(path)
            if r.get("epoch", 0) <= last_epoch and set(r) <= set(fields)]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (int(v) if k in ("epoch", "step") else v) for k, v in row.items()})
    os.replace(tmp, path)
