"""Stopping cleanly when a scheduler preempts the job: SIGTERM and SIGUSR1 become ``Preempted`` (a
``KeyboardInterrupt``, so a run stops as it does on Ctrl-C), except inside the sections that must finish.

    with preemption_signals():          # around the whole run
        ...
        with uninterrupted():           # an epoch's records and checkpoints: never cut in half
            ...
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from fgvc.core.errors import Preempted


@dataclass
class _Stop:
    """A stop signal seen by this process, and how many ``uninterrupted`` sections it is waiting for."""

    signal: signal.Signals | None = None
    deferring: int = 0


_STOP = _Stop()


@contextlib.contextmanager
def preemption_signals() -> Iterator[None]:
    """Turn SIGTERM (what schedulers send before they kill a job) and SIGUSR1 (SLURM's ``--signal``) into
    ``Preempted``, so a preempted run stops like Ctrl-C: ``last.pt`` keeps the last finished epoch.

    Python runs the handler between bytecodes, so the stop waits for the operation in progress (a forward or
    backward pass at most); inside ``uninterrupted`` it waits for the section to end. Only the first signal
    counts: under SLURM a rank can get the same signal twice (from srun's step and from torchrun, which
    forwards it), and a second one must not cut the first one's clean-up. Outside the main thread (where
    signals cannot be handled) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        if _STOP.signal is not None:
            return
        _STOP.signal = signal.Signals(signum)
        if not _STOP.deferring:
            raise _preempted(_STOP.signal)

    wanted = [signal.SIGTERM] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
    _STOP.signal = None
    previous = {sig: signal.signal(sig, stop) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A section that a stop signal never cuts (rank 0 writing an epoch's records and checkpoints, the final
    analysis): a signal that arrives meanwhile raises ``Preempted`` once the section has ended."""
    _STOP.deferring += 1
    try:
        yield
    finally:
        _STOP.deferring -= 1
    if not _STOP.deferring and _STOP.signal is not None:
        raise _preempted(_STOP.signal)


def _preempted(sig: signal.Signals) -> Preempted:
    """The stop that ``sig`` asks for."""
    return Preempted(f"preempted by {sig.name}", sig.name)
