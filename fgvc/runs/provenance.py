"""What produced a run: the code, the libraries, the machine, the command, the times and the data.

    clock = start_clock()                                          # first thing in ``fit``
    record = open_record(run_dir, checkpoint, clock, run_data(cfg, loaders))   # writes provenance.json
    write_record(run_dir, update_record(record, clock))            # after each epoch; ended=True at the end

A run's record, ``provenance.json`` in its run folder and the ``provenance`` key of each checkpoint
(``checkpoint.PROVENANCE_KEY``), is one entry per session (a resumed run has several), in order, and
their total ``wall_s``::

    {"sessions": [{"start": "2026-11-29T12:00:00+01:00", "end": ... (None until it ends),
                   "wall_s": seconds from the start of ``fit`` to its end (or to its last epoch so far),
                   "argv": sys.argv, "code": {"commit", "dirty", "diff_sha256"}, "versions": {...},
                   "machine": {"python", "platform", "cpu", "cores", "gpus", "gpu_count"},
                   "data": {"train": fingerprint, "eval": fingerprint}}, ...],
     "wall_s": the sessions' wall_s summed}

A data fingerprint (``fingerprint``) is a split's image count, class count and a sha256 over its sorted
(path relative to the data root, class name) pairs: the same data gives the same fingerprint wherever it
lies, and moving one image to another class changes it. An imagefolder read through a split file, or a split
with photos left out by an exclusion list, adds the sha256 of that file (``split_file_sha256``,
``exclude_sha256``): a changed split or list shows even where this split's images stay the same.
``evaluation_facts`` is what an evaluation folder's ``metrics.json`` records of this, so that ``fgvc compare``
can check that two evaluations are comparable.
Nothing here raises for a missing git, a folder outside a checkout or an absent library: the fact is None.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

import fgvc
from fgvc.core.config import TrainConfig
from fgvc.core.errors import FolderError
from fgvc.data.datasets import dataset_labels, dataset_sources, image_files
from fgvc.data.loaders import Loaders
from fgvc.models.checkpoint import PROVENANCE_KEY, load_checkpoint

PROVENANCE_FILE = "provenance.json"
LIBRARIES = ("torch", "torchvision", "efficientnet_pytorch", "efficientnet-lite-pytorch")  # distribution names
GIT_TIMEOUT_S = 5.0


def now() -> str:
    """The local time with its UTC offset, to the second (ISO 8601)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class Clock:
    """When a session began: as a time of day, and on the monotonic clock that measures its length; and the
    run's wall seconds before it (``resumed_wall_s``)."""

    start: str = field(default_factory=now)
    counter: float = field(default_factory=time.perf_counter)
    before_s: float = 0.0

    def seconds(self) -> float:
        """Wall seconds since the session began."""
        return time.perf_counter() - self.counter

    def run_wall_s(self) -> float:
        """Wall seconds of the run so far: its earlier sessions' (up to the resumed epoch) and this one's."""
        return self.before_s + self.seconds()


def start_clock() -> Clock:
    """Start timing a session now."""
    return Clock()


def _git(args: list[str], folder: Path) -> bytes | None:
    """The output of ``git -C folder args``, or None when git is missing, slow or fails."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, timeout=GIT_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(package_dir: str | Path | None = None) -> dict[str, Any]:
    """The git ``commit`` of the checkout holding ``package_dir`` (default: the fgvc package), whether its
    tracked files differ from it (``dirty``), and a sha256 of that difference (``diff_sha256``, None when clean).

    All None when the package is not a tracked part of a git checkout (an installed copy, or no git)."""
    folder = Path(package_dir) if package_dir is not None else Path(fgvc.__file__).parent
    unknown = {"commit": None, "dirty": None, "diff_sha256": None}
    if _git(["ls-files", "--error-unmatch", "--", "__init__.py"], folder) is None:  # not fgvc's own checkout
        return unknown
    commit, status = _git(["rev-parse", "HEAD"], folder), _git(["status", "--porcelain", "--untracked-files=no"],
                                                               folder)
    if commit is None or status is None:
        return unknown
    diff = _git(["diff", "HEAD", "--binary"], folder) if status.strip() else None
    return {"commit": commit.decode().strip(), "dirty": bool(status.strip()),
            "diff_sha256": None if diff is None else hashlib.sha256(diff).hexdigest()}


def library_versions() -> dict[str, str | None]:
    """The version of fgvc and of each of ``LIBRARIES`` (None when it is not installed)."""
    versions: dict[str, str | None] = {"fgvc": fgvc.__version__}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_name() -> str | None:
    """The CPU's model name (Linux: ``/proc/cpuinfo``; elsewhere what ``platform`` knows), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    """Python's version, the platform, the CPU (model name, logical cores) and the CUDA GPUs (names, count)."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(),
            "cores": os.cpu_count(), "gpus": gpus, "gpu_count": len(gpus)}


def fingerprint(root: str | Path, files: list[str], labels: list[str]) -> dict[str, Any]:
    """The fingerprint of images ``files`` (under ``root``) labelled ``labels``: ``images``, ``classes`` (distinct
    labels) and ``sha256`` over the sorted (path relative to ``root``, label) pairs."""
    base = os.path.abspath(root)
    pairs = sorted((Path(os.path.relpath(os.path.abspath(file), base)).as_posix(), label)
                   for file, label in zip(files, labels, strict=True))
    digest = hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()
    return {"images": len(pairs), "classes": len(set(labels)), "sha256": digest}


def split_fingerprint(dataset: Dataset, classes: list[str], root: str | Path, split: str) -> dict[str, Any]:
    """``fingerprint`` of a dataset of ``fgvc.data`` whose labels index ``classes``, with its ``split``'s name and
    the sha256 of its split file and exclusion list (``dataset_sources``), where it has them."""
    labels = [classes[label] for label in dataset_labels(dataset)]
    return {"split": split, **fingerprint(root, image_files(dataset), labels), **dataset_sources(dataset)}


def run_data(cfg: TrainConfig, loaders: Loaders) -> dict[str, dict[str, Any]]:
    """The fingerprints of the images a run trains and evaluates on (bad images it skipped left out)."""
    return {"train": split_fingerprint(loaders.train.dataset, loaders.classes, cfg.data_root, cfg.train_split),
            "eval": split_fingerprint(loaders.eval.dataset, loaders.classes, cfg.data_root, cfg.eval_split)}


def new_session(clock: Clock, data: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The entry of the session that ``clock`` times, on ``data``: it has not ended yet."""
    return {"start": clock.start, "end": None, "wall_s": clock.seconds(), "argv": list(sys.argv),
            "code": code_version(), "versions": library_versions(), "machine": machine(), "data": data}


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's ``provenance.json``, or None when it has none (a run of an older fgvc)."""
    path = Path(run_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FolderError(f"{path} is not valid JSON ({err}): expected the provenance record fgvc writes; "
                          f"move it away to start the record afresh") from err


def write_record(run_dir: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` to the run folder's ``provenance.json`` atomically."""
    path = Path(run_dir) / PROVENANCE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def update_record(record: dict[str, Any], clock: Clock, ended: bool = False) -> dict[str, Any]:
    """``record`` with its last session's ``wall_s`` measured by ``clock`` now (and its ``end``, when ``ended``),
    and the total ``wall_s``; changed in place and returned."""
    session = record["sessions"][-1]
    session["wall_s"] = clock.seconds()
    if ended:
        session["end"] = now()
    record["wall_s"] = sum(entry["wall_s"] for entry in record["sessions"])
    return record


def open_record(run_dir: str | Path, checkpoint: dict[str, Any] | None, clock: Clock,
                data: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Start this session's entry in the run's record and write it: after the earlier sessions of
    ``provenance.json`` (or, without that file, of the resumed ``checkpoint``), or as the first."""
    earlier = read_record(run_dir) if checkpoint is not None else None
    if earlier is None and checkpoint is not None:
        earlier = checkpoint.get(PROVENANCE_KEY)
    record = update_record({"sessions": [*(earlier or {}).get("sessions", []), new_session(clock, data)]}, clock)
    write_record(run_dir, record)
    return record


def checkpoint_record(path: str | Path) -> dict[str, Any] | None:
    """The run's record in checkpoint ``path``; None for an ``.onnx`` file (``fgvc export``) or a checkpoint
    of an older fgvc."""
    return None if Path(path).suffix == ".onnx" else load_checkpoint(path).get(PROVENANCE_KEY)


def resumed_wall_s(checkpoint: dict[str, Any] | None) -> float:
    """The run's wall seconds up to the epoch ``checkpoint`` holds (0 for a new run; NaN, unknown, for a
    checkpoint of an older fgvc that did not count them)."""
    if checkpoint is None:
        return 0.0
    return float(checkpoint.get("metrics", {}).get("wall_s", math.nan))


def _distinct(values: list[Any]) -> list[Any]:
    """``values`` without repeats, in order of first appearance."""
    kept: list[Any] = []
    for value in values:
        if value not in kept:
            kept.append(value)
    return kept


def evaluation_facts(record: dict[str, Any] | None, data: dict[str, Any]) -> dict[str, Any]:
    """What an evaluation's ``metrics.json`` records: the evaluated split's fingerprint ``data``, and in
    ``trained_with`` the distinct code versions (``code``) and training-data fingerprints (``train_data``) of the
    checkpoint's sessions, from its ``record`` (None: a checkpoint of an older fgvc, or an ONNX file)."""
    trained_with = None if record is None else {
        "code": _distinct([session["code"] for session in record["sessions"]]),
        "train_data": _distinct([session["data"]["train"] for session in record["sessions"]])}
    return {"data": data, "trained_with": trained_with}
