"""Run folders: a new one created, held by one process at a time, and its ``config.json``.

    run_dir = new_run_dir("logs", "demo")      # logs/20261129-120000-demo, never shared
    cfg = start_run(cfg)                       # claim it, write config.json, log into its train.log

A running process holds its run folder with ``claim_run_dir`` (an ``flock`` on ``<run>/.lock``, gone with the
process even after ``kill -9``), so two runs never write into the same folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from fgvc.core.config import TrainConfig
from fgvc.core.errors import FolderError
from fgvc.runs.logs import setup_logging
from fgvc.runs.status import clear_stop

try:
    import fcntl
except ImportError:  # Windows: no flock; run folders are still created atomically
    fcntl = None

LOCK_FILE = ".lock"
_HELD: dict[Path, IO[str]] = {}  # run folders this process holds, with their open lock files


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


def start_run(cfg: TrainConfig, processes: int = 1) -> TrainConfig:
    """Claim the run folder of ``cfg`` (valid: a ``TrainConfig`` validates itself when made), write ``config.json`` (for
    ``processes`` training processes) and log to ``train.log``.

    The folder is ``cfg.run_dir``, or a new ``logs/<time>-<preset>``; a folder that already
    holds a trained epoch is refused (resume it instead), and so is one that another process
    holds (``claim_run_dir``). Returns ``cfg`` with ``run_dir`` set. Calling it again
    on the returned config is harmless, so a notebook can start logging before ``fit``.
    """
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
