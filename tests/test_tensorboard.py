"""TensorBoard events say what the CSV files say: read back with TensorBoard's own ``EventAccumulator``, every
``steps.csv`` and ``epochs.csv`` value is there once, at its step, also after a resume that redoes an epoch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL, tiny_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from fgvc.runs.csvlog import EPOCH_FIELDS, STEP_FIELDS, read_rows
from fgvc.training.engine import fit

# 12 trainval images in batches of 4: 3 batches an epoch, a steps.csv row at batches 2 and 3 (the last).
LOGGED = {**SMALL, "log_every": 2}
BATCHES = 3


@pytest.fixture(scope="module")
def redone_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch run stopped after epoch 1, resumed to the end, then taken back to its epoch-1 checkpoint (as if
    killed after writing epoch 2's events but before its checkpoint) and resumed again: epoch 2 runs twice."""
    run = fit(tiny_config(tiny_root, tmp_path_factory.mktemp("runs") / "run", epochs=2, **LOGGED), progress=False,
              stop_after=1)
    shutil.copy(run / "last.pt", run / "epoch1.pt")
    fit(resume=run / "last.pt", progress=False)
    shutil.copy(run / "epoch1.pt", run / "last.pt")
    fit(resume=run / "last.pt", progress=False)
    return run


def read_events(run: Path) -> EventAccumulator:
    return EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0}).Reload()


def float32(value: float) -> float:
    """What a TensorBoard scalar event keeps of ``value``."""
    return float(np.float32(value))


def test_every_steps_csv_value_is_a_scalar_at_its_step_once(redone_run: Path) -> None:
    events, rows = read_events(redone_run), read_rows(redone_run / "steps.csv")
    assert [int(r["step"]) for r in rows] == [2, 3, 5, 6]
    for name in STEP_FIELDS[2:]:  # loss, lr, images_per_s
        assert [(e.step, e.value) for e in events.Scalars(f"steps/{name}")] == \
               [(int(r["step"]), float32(r[name])) for r in rows], name


def test_every_epochs_csv_value_is_a_scalar_at_the_last_step_of_its_epoch_once(redone_run: Path) -> None:
    events, rows = read_events(redone_run), read_rows(redone_run / "epochs.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for name in EPOCH_FIELDS[1:]:
        assert [(e.step, e.value) for e in events.Scalars(f"epochs/{name}")] == \
               [(BATCHES * int(r["epoch"]), float32(r[name])) for r in rows], name


def test_figures_are_the_run_folders_pngs(redone_run: Path) -> None:
    events = read_events(redone_run)
    for tag, png, steps in (("samples", "samples.png", [0]), ("curves", "curves.png", [BATCHES, 2 * BATCHES]),
                            ("confusion", "eval-test/confusion.png", [2 * BATCHES])):
        images = events.Images(tag)
        assert [i.step for i in images] == steps, tag
        assert images[-1].encoded_image_string == (redone_run / png).read_bytes(), tag
        assert images[-1].width > 100 and images[-1].height > 100, tag


def test_hparams_hold_the_config_and_name_the_final_metrics(redone_run: Path) -> None:
    events = read_events(redone_run)
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    config = json.loads((redone_run / "config.json").read_text())
    hparams = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG]).hparams
    assert hparams["lr"].number_value == config["lr"] and hparams["arch"].string_value == config["arch"]
    assert hparams["global_batch"].number_value == config["global_batch"] == 4
    assert hparams["weights"].string_value == "None" and hparams["tensorboard"].number_value == 1
    assert set(hparams) == set(config)
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    final = read_rows(redone_run / "epochs.csv")[-1]
    metrics = [m.name.tag for m in experiment.metric_infos]
    assert metrics == ["epochs/train_loss", "epochs/eval_loss", "epochs/eval_top1", "epochs/eval_top5",
                       "epochs/eval_mean_class_acc"]
    for tag in metrics:  # the HPARAMS tab shows each metric's latest value: the final epoch's
        assert events.Scalars(tag)[-1].value == float32(final[tag.removeprefix("epochs/")])
    assert metadata.SESSION_END_INFO_TAG in content  # finished


def test_no_events_when_turned_off(val_run: Path) -> None:
    assert json.loads((val_run / "config.json").read_text())["tensorboard"] is False
    assert [int(r["step"]) for r in read_rows(val_run / "steps.csv")] == [1]  # its one batch: the CSV files still
    assert not list(val_run.rglob("events.out.tfevents.*"))
