"""One base exception for every deliberate message, and the kinds derived from it.

The command line catches ``FgvcError`` alone and prints it on one line (exit status 2);
anything else is a bug and keeps its traceback. Each kind also derives from the built-in
exception it used to be, so ``except FileNotFoundError`` around a missing dataset still works.
"""

from __future__ import annotations

from pathlib import Path


class FgvcError(Exception):
    """Something the user can fix: the message names the file, flag or value and what was expected."""


class ConfigError(FgvcError, ValueError):
    """A configuration value is out of range, of the wrong kind, or cannot change on resume."""


class DatasetError(FgvcError, FileNotFoundError):
    """The dataset on disk is missing, incomplete or inconsistent."""


class BadImageError(FgvcError, ValueError):
    """An image file that cannot be used: missing, empty, not an image, damaged or too large."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class CheckpointError(FgvcError, RuntimeError):
    """A checkpoint file is missing, unreadable, untrusted or does not fit."""


class WeightsError(FgvcError, RuntimeError):
    """Pretrained weights could not be fetched or do not fit the architecture."""


class NonFiniteLossError(FgvcError, RuntimeError):
    """The training (or evaluation) loss became NaN or infinite; ``last.pt`` keeps the last good epoch."""


class FolderError(FgvcError, FileExistsError):
    """A folder to write into already holds something, is held by another process, or cannot be written."""


class Preempted(KeyboardInterrupt):
    """A scheduler asked the run to stop (SIGTERM, or SLURM's SIGUSR1): it ends like Ctrl-C, and the job
    should be requeued to resume from ``last.pt``. ``signal_name`` is the signal's, e.g. ``"SIGUSR1"``."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


class DeviceError(FgvcError, RuntimeError):
    """The requested device is not available on this machine."""


class ComparisonError(FgvcError, ValueError):
    """Two evaluations cannot be compared: a folder without predictions, or different splits, classes or images."""


class NotEnoughMemoryError(FgvcError, RuntimeError):
    """A training step needs more memory than the device has free (estimated before training, or an
    out-of-memory error during it): the message names the batch and image size and what fits."""
