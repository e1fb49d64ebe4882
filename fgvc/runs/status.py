"""Where a run stands: finished or not (``run_status``, what ``fgvc status`` says), and the record of the stop
signal that ended its last session (``record_stop``), which asks the SLURM job script for a requeue.

    finished, line = run_status("logs/<run>")  # (False, "unfinished: 3 of 40 epochs trained; resume with: ...")
    record_stop(run_dir, "SIGUSR1")            # <run>/stopped.json; stop_signal(run_dir) == "SIGUSR1"
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fgvc.core.errors import FolderError

STOP_FILE = "stopped.json"  # {"signal": "SIGUSR1"}: a stop signal ended the run's last session (see record_stop)


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
