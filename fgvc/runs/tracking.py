"""Run folders, logging, and the metrics files a run leaves behind.

    run_dir = new_run_dir("logs", "demo")      # logs/20261129-120000-demo, never shared
    setup_logging(run_dir)                     # console + run_dir/train.log
    run_log = RunLog(run_dir, tensorboard=True, done_epochs=0, batches_per_epoch=40)
    run_log.step({"epoch": 1, "step": 5, "loss": 4.6, ...})     # a steps.csv row and its TensorBoard scalars

``steps.csv`` gets a row every ``log_every`` batches, ``epochs.csv`` one per epoch, and the
TensorBoard events in the same folder the same values (``RunLog`` writes both, so they cannot
disagree; the CSV files stay what the notebooks read). After a crash, a resumed run's
``RunLog`` drops the rows (and hides the events) of the epoch that did not finish, so the run
continues in clean files. A running process holds its run folder with ``claim_run_dir``
(an ``flock`` on ``<run>/.lock``, gone with the process even after ``kill -9``), so two runs
never write into the same folder.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

from fgvc.core.config import TrainConfig, validate
from fgvc.core.errors import FolderError

try:
    import fcntl
except ImportError:  # Windows: no flock; run folders are still created atomically
    fcntl = None

STEP_FIELDS = ("epoch", "step", "loss", "lr", "images_per_s")
EVAL_FIELDS = ("eval_loss", "eval_top1", "eval_top5", "eval_mean_class_acc")
EPOCH_FIELDS = ("epoch", "train_loss", *EVAL_FIELDS, "lr", "seconds", "wall_s")  # wall_s: provenance.Clock
EMA_PREFIX = "ema_"  # epochs.csv columns of the EMA weights: ema_eval_loss, ema_eval_top1, ...
EVENT_FILES = "events.out.tfevents.*"  # TensorBoard's event files (SummaryWriter names them so)
LOGGER_NAME = "fgvc"
LOCK_FILE = ".lock"
STOP_FILE = "stopped.json"  # {"signal": "SIGUSR1"}: a stop signal ended the run's last session (see record_stop)
_HANDLER_MARK = "_fgvc_handler"
_HELD: dict[Path, IO[str]] = {}  # run folders this process holds, with their open lock files


def epoch_fields(ema: bool) -> tuple[str, ...]:
    """The columns of ``epochs.csv``; with ``ema`` each eval column comes twice, the EMA weights' with ``ema_``."""
    return EPOCH_FIELDS + tuple(EMA_PREFIX + name for name in EVAL_FIELDS) if ema else EPOCH_FIELDS


def claim_run_dir(run_dir: str | Path) -> None:
    """Hold ``run_dir`` for this process until ``release_run_dir`` (claiming it again is harmless).

    Raises ``FolderError`` naming the process that holds it, or saying that the folder cannot be written.
    """
    run_dir = Path(run_dir).resolve()
    if run_dir in _HELD:
        return
    try:
        handle = (run_dir / LOCK_FILE).open("a+")
    except OSError as err:
        raise FolderError(f"cannot write in run folder {run_dir} ({err}): expected a writable folder") from err
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise FolderError(f"run folder {run_dir} is in use by {holder}: two runs never share a folder; "
                                  f"wait for it to end, or choose another --run-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _HELD[run_dir] = handle


def release_run_dir(run_dir: str | Path) -> None:
    """Let other processes use ``run_dir`` again (closing the lock file drops the lock)."""
    handle = _HELD.pop(Path(run_dir).resolve(), None)
    if handle is not None:
        handle.close()


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
    raise FolderError(f"could not create a new run folder under {base}")


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


def record_stop(run_dir: str | Path, signal_name: str) -> None:
    """Record in ``run_dir`` that ``signal_name`` stopped the run's session (rank 0 does, when ``fit`` is
    preempted), atomically: ``fgvc status`` then asks for a requeue, whichever process the signal reached."""
    path = Path(run_dir) / STOP_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        f.write(json.dumps({"signal": signal_name}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def clear_stop(run_dir: str | Path) -> None:
    """Forget how the run's last session ended: a new session starts, and only its own end will count."""
    (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


def stop_signal(run_dir: str | Path) -> str | None:
    """The signal that stopped the run's last session (``record_stop``), or None when it ended otherwise (it
    finished, failed or was interrupted with Ctrl-C) or is still running."""
    path = Path(run_dir) / STOP_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["signal"])
    except (ValueError, KeyError, TypeError) as err:
        raise FolderError(f"{path} is not the stop record fgvc writes ({err!r}): expected {{\"signal\": "
                          f"\"SIGUSR1\"}}; delete it if no signal stopped the run") from None


def run_status(run_dir: str | Path) -> tuple[bool, str]:
    """Whether the run in ``run_dir`` has finished (``last.pt`` at the last epoch of ``config.json``, which a
    resume rewrites, and the final analysis written), with one line saying where it stands.

    Raises ``FolderError`` when ``run_dir`` holds no run, and when its last epoch is trained but its final
    analysis is missing: resuming would not write it, so the run needs ``fgvc evaluate`` rather than a requeue.
    """
    from fgvc.models.checkpoint import load_checkpoint  # here: the other readers of a run folder need no torch

    run_dir = Path(run_dir)
    config_file = run_dir / "config.json"
    try:
        config = json.loads(config_file.read_text())
        # epochs is None until a run whose length follows the data has chosen it (fgvc.training.schedule)
        epochs, split = None if config["epochs"] is None else int(config["epochs"]), str(config["eval_split"])
    except (OSError, ValueError, KeyError) as err:
        raise FolderError(f"{run_dir} holds no run that fgvc can read ({config_file}: {err}): expected the "
                          f"--run-dir of an fgvc train run") from None
    last = run_dir / "last.pt"
    done = int(load_checkpoint(last)["epoch"]) if last.is_file() else 0
    if epochs is None or done < epochs:
        resume = f"resume with: fgvc train --resume {last}" if done else "no epoch has finished: start it again"
        return False, f"unfinished: {done} of {epochs or 'its'} epochs trained; {resume}"
    report = run_dir / f"eval-{split}" / "metrics.json"
    if not report.is_file():
        raise FolderError(f"{run_dir} has trained its {epochs} epochs but its final analysis {report} is missing: "
                          f"write it with fgvc evaluate --checkpoint {last} --split {split}")
    return True, f"finished: {epochs} of {epochs} epochs trained; final analysis in {report.parent}"


class RunLog:
    """The metrics of a run, each written in one place: its CSV row and, unless ``tensorboard`` is off, the same
    values as TensorBoard events in the run folder (one run folder, one TensorBoard run). Rank 0 alone makes one.

    Events carry the batch step of ``steps.csv``: ``steps/<column>`` at each logged step, ``epochs/<column>`` at
    the last step of its epoch; with ``ema``, ``epochs.csv`` has the EMA weights' columns too. Opening the log of
    a run resumed after ``done_epochs`` epochs cuts both CSV files back to those epochs and hides the events
    written after them (``SummaryWriter``'s ``purge_step``); opening it for a new run (``done_epochs=0``) starts
    both afresh.
    """

    def __init__(self, run_dir: str | Path, *, tensorboard: bool, done_epochs: int, batches_per_epoch: int,
                 ema: bool = False) -> None:
        self.run_dir, self.epoch_fields = Path(run_dir), epoch_fields(ema)
        for name, fields in (("steps.csv", STEP_FIELDS), ("epochs.csv", self.epoch_fields)):
            keep_epochs_up_to(self.run_dir / name, done_epochs, fields)
        if done_epochs == 0:  # events of an attempt that stopped in its first epoch
            for stale in self.run_dir.glob(EVENT_FILES):
                stale.unlink()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # here: inference never loads TensorBoard

            self.writer = SummaryWriter(str(self.run_dir),
                                        purge_step=done_epochs * batches_per_epoch + 1 if done_epochs else None)

    def step(self, row: dict[str, float]) -> None:
        """A ``steps.csv`` row, and each of its values as scalar ``steps/<column>`` at its step."""
        append_row(self.run_dir / "steps.csv", STEP_FIELDS, row)
        self._scalars("steps", STEP_FIELDS, row, int(row["step"]))

    def epoch(self, row: dict[str, float], step: int) -> None:
        """An ``epochs.csv`` row, and each of its values as scalar ``epochs/<column>`` at ``step``; flushed."""
        append_row(self.run_dir / "epochs.csv", self.epoch_fields, row)
        self._scalars("epochs", self.epoch_fields, row, step)
        if self.writer is not None:
            self.writer.flush()

    def _scalars(self, group: str, fields: tuple[str, ...], row: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name in fields:
                if name not in ("epoch", "step"):
                    self.writer.add_scalar(f"{group}/{name}", row[name], step)

    def image(self, tag: str, png: str | Path, step: int) -> None:
        """The PNG file ``png`` (a figure the run folder holds) as TensorBoard image ``tag``, its bytes unchanged."""
        if self.writer is None:
            return
        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary

        data = Path(png).read_bytes()
        with Image.open(io.BytesIO(data)) as picture:
            (width, height), channels = picture.size, len(picture.getbands())
        image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=data)
        self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def start_session(self, config: dict[str, Any]) -> None:
        """``config`` as the run's hparams; its metrics are the ``epochs/`` scalars of training and evaluation,
        which TensorBoard's HPARAMS tab shows at their latest (after the last epoch: final) values."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in config.items()}
        metrics = {f"epochs/{name}": None for name in self.epoch_fields
                   if name.startswith(("train_", "eval_", EMA_PREFIX))}
        experiment, start, _ = hparams(values, metrics)
        for summary in (experiment, start):
            self.writer.file_writer.add_summary(summary)

    def end_session(self, step: int) -> None:
        """Mark the run finished at ``step`` in TensorBoard's HPARAMS tab (status: success)."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        self.writer.file_writer.add_summary(hparams({}, {})[2], step)
        self.writer.flush()

    def close(self) -> None:
        """Write out what is pending and close the event file."""
        if self.writer is not None:
            self.writer.close()


def start_run(cfg: TrainConfig, processes: int = 1) -> TrainConfig:
    """Validate ``cfg``, claim its run folder, write ``config.json`` (for ``processes`` training processes) and
    log to ``train.log``.

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
    clear_stop(run_dir)  # of an attempt stopped before its first epoch finished
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    write_config(cfg, processes)
    setup_logging(run_dir)
    return cfg


def run_record(cfg: TrainConfig, processes: int) -> dict[str, Any]:
    """The config, the number of processes and the global batch they make."""
    facts = {"processes": processes, "global_batch": processes * cfg.batch_size * cfg.accum_steps}
    return {**cfg.to_dict(), **facts}


def write_config(cfg: TrainConfig, processes: int) -> None:
    """``config.json``: the run record."""
    (Path(cfg.run_dir) / "config.json").write_text(json.dumps(run_record(cfg, processes), indent=2) + "\n")


def hold_for_resume(run_dir: Path, cfg: TrainConfig, processes: int) -> None:
    """Hold a resumed run's folder, forget how its last session ended (``clear_stop``), record how it now runs in
    ``config.json`` (``processes`` training processes), and log into its ``train.log``."""
    claim_run_dir(run_dir)
    clear_stop(run_dir)
    write_config(cfg, processes)
    setup_logging(run_dir)
