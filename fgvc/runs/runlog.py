"""``RunLog``: each metric of a run written in one place, as its CSV row and the same values as TensorBoard events.

    run_log = RunLog(run_dir, tensorboard=True, done_epochs=0, batches_per_epoch=40)
    run_log.step({"epoch": 1, "step": 5, "loss": 4.6, ...})     # a steps.csv row and its TensorBoard scalars

``RunLog`` writes both the CSV files (``fgvc.runs.csvlog``) and the TensorBoard events in the run folder, so
they cannot disagree. After a crash, a resumed run's ``RunLog`` drops the rows (and hides the events) of the
epoch that did not finish, so the run continues in clean files.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from fgvc.runs.csvlog import EMA_PREFIX, STEP_FIELDS, append_row, epoch_fields, keep_epochs_up_to

EVENT_FILES = "events.out.tfevents.*"  # TensorBoard's event files (SummaryWriter names them so)


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
