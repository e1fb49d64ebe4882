"""Run folders, logging, and the metrics files a run leaves behind.

    run_dir = new_run_dir("logs", "demo")      # logs/20261129-120000-demo, never shared
    setup_logging(run_dir)                     # console + run_dir/train.log
    append_row(run_dir / "steps.csv", STEP_FIELDS, {...})

``steps.csv`` gets a row every ``log_every`` batches, ``epochs.csv`` one per epoch. After a
crash, ``keep_epochs_up_to`` drops the rows of the epoch that did not finish, so a resumed
run appends to clean files.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
from pathlib import Path

STEP_FIELDS = ("epoch", "step", "loss", "lr", "images_per_s")
EPOCH_FIELDS = ("epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "eval_mean_class_acc", "lr", "seconds")
LOGGER_NAME = "fgvc"
_HANDLER_MARK = "_fgvc_handler"


def new_run_dir(base: str | Path, name: str) -> Path:
    """Create and return ``base/<time>-<name>``; a folder another run took gets a ``-2``, ``-3``... suffix."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    for attempt in range(1, 1000):
        candidate = base / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            candidate.mkdir()  # atomic: two runs cannot both create the same folder
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a new run folder under {base}")


def setup_logging(run_dir: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to the console and to ``run_dir/train.log``; calling again replaces the previous handlers."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if run_dir is not None:
        handlers.append(logging.FileHandler(Path(run_dir) / "train.log"))
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


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
    """Rewrite ``path`` atomically with only the complete rows of epochs ``<= last_epoch``."""
    path = Path(path)
    if not path.exists():
        return
    rows = [r for r in read_rows(path) if r.get("epoch", 0) <= last_epoch and len(r) == len(fields)]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (int(v) if k in ("epoch", "step") else v) for k, v in row.items()})
    os.replace(tmp, path)
