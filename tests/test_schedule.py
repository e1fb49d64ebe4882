"""A run's length: epochs chosen from the data (the schedule rule), shortened to a time budget, recorded, and kept
by a resume; and the seeded, stratified training subset (``train_per_class``) that small-data studies use."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from helpers import SMALL, tiny_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from fgvc.core.config import make_config
from fgvc.core.errors import ConfigError
from fgvc.core.presets import PRESETS
from fgvc.data.datasets import per_class_subset
from fgvc.data.kinds import training_split
from fgvc.models.checkpoint import load_checkpoint
from fgvc.runs import provenance
from fgvc.runs.csvlog import read_rows
from fgvc.runs.status import run_status
from fgvc.training import schedule
from fgvc.training.engine import fit
from fgvc.training.schedule import SCHEDULE_FILE, Pace, choose_schedule, fit_budget, rule_epochs


def rule_config(**overrides: object):
    return make_config("cpu", fields={"epochs": None}, **overrides)


def test_the_rule_trains_about_the_same_steps_on_any_size_of_data_within_its_epoch_bounds() -> None:
    cfg = rule_config(schedule_steps=400, schedule_min_epochs=5, schedule_max_epochs=40)
    epochs = {steps: rule_epochs(cfg, steps)[0] for steps in (6, 9, 15, 62, 93, 200)}
    assert epochs == {6: 40, 9: 40, 15: 27, 62: 7, 93: 5, 200: 5}  # ceil(400 / steps), held to [5, 40]
    assert rule_epochs(cfg, 15) == rule_epochs(cfg, 15)
    assert "400 / 15" in rule_epochs(cfg, 15)[1] and "held" in rule_epochs(cfg, 6)[1]
    assert rule_epochs(make_config("cpu", epochs=12), 15) == (12, "--epochs 12 (pinned)")


def test_the_cpu_preset_follows_the_data_and_a_budget() -> None:
    cfg = make_config("cpu")
    assert cfg.epochs is None and cfg.time_budget > 0
    assert PRESETS["b4"] == {} and make_config("b4").epochs == 50  # the GPU recipe keeps its fixed schedule


def test_the_budget_keeps_the_epochs_that_fit() -> None:
    pace = Pace(train_batch_s=2.0, eval_batch_s=1.0, train_batches=15, eval_batches=10, evaluations=2)
    assert pace.epoch_s() == pytest.approx(50.0)
    assert fit_budget(27, pace, budget_minutes=15) == 18  # 900 s / 50 s an epoch
    assert fit_budget(10, pace, budget_minutes=15) == 10
    assert fit_budget(27, pace, budget_minutes=0.1) == 1  # a run trains at least one epoch
    started = dataclasses.replace(pace, before_s=60.0, final_passes=3)  # a minute gone, 3 passes of 10 s to come
    assert started.run_s(16) == pytest.approx(60 + 16 * 50 + 30)
    assert fit_budget(27, started, budget_minutes=15) == 16  # (900 - 60 - 30) s / 50 s an epoch


def test_a_schedule_without_a_budget_measures_nothing(caplog: pytest.LogCaptureFixture) -> None:
    def measure() -> Pace:
        raise AssertionError("no budget: nothing to time")

    caplog.set_level(logging.INFO, logger="fgvc")
    cfg, record = choose_schedule(rule_config(time_budget=0.0, schedule_steps=100), 10, measure)
    assert cfg.epochs == 10 and record["epochs"] == 10 and not record["shortened"]
    assert "--epochs 10 reproduces" in caplog.text


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"time_budget": -1.0}, {"train_per_class": 0},
                                 {"schedule_min_epochs": 50, "schedule_max_epochs": 40}])
def test_bad_schedule_values_are_refused_by_name(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        make_config("cpu", **bad)


def test_a_tiny_budget_shortens_the_run_says_so_and_records_it(tiny_root: Path, tmp_path: Path) -> None:
    # 12 trainval images in batches of 4: 3 steps an epoch; 9 steps make 3 epochs, and no machine trains one in
    # the budget of 6 microseconds
    cfg = dataclasses.replace(tiny_config(tiny_root, tmp_path / "run", **SMALL, schedule_steps=9,
                                          schedule_min_epochs=1, time_budget=1e-7), epochs=None)
    run_dir = fit(cfg, progress=False)
    said = (run_dir / "train.log").read_text()
    assert "over the time budget of 1e-07 min: training 1 epochs instead. --epochs 1 reproduces this run" in said
    assert said.index("training 1 epochs instead") < said.index("epoch 1 step")  # before the schedule starts
    schedule = json.loads((run_dir / SCHEDULE_FILE).read_text())
    assert schedule["rule_epochs"] == 3 and schedule["epochs"] == 1 and schedule["shortened"]
    assert schedule["projected_minutes"] > 1e-7 and schedule["pace"]["train_batches"] == 3
    assert 0 < schedule["pace"]["before_s"] < 60 * schedule["projected_minutes"]  # the time before the probe counts
    assert schedule["pace"]["final_passes"] == 0  # this run evaluates on test: nothing to calibrate after it
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 1
    assert load_checkpoint(run_dir / "last.pt")["config"]["epochs"] == 1
    assert [row["epoch"] for row in read_rows(run_dir / "epochs.csv")] == [1]
    assert run_status(run_dir)[0]


def test_the_rule_is_recorded_and_a_stopped_run_resumes_to_the_epochs_it_chose(
        tiny_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny_config(tiny_root, tmp_path / "run", **SMALL, schedule_steps=5,
                                          schedule_min_epochs=1, warmup_epochs=1), epochs=None)
    run_dir = fit(cfg, progress=False, stop_after=1)  # ceil(5 / 3 steps) = 2 epochs; this call trains 1
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 2
    assert run_status(run_dir) == (False, f"unfinished: 1 of 2 epochs trained; resume with: fgvc train --resume "
                                          f"{run_dir / 'last.pt'}")
    chosen = (run_dir / SCHEDULE_FILE).read_text()
    fit(resume=run_dir / "last.pt", progress=False)
    assert [row["epoch"] for row in read_rows(run_dir / "epochs.csv")] == [1, 2]
    assert (run_dir / SCHEDULE_FILE).read_text() == chosen  # a resume chooses nothing again
    assert run_status(run_dir)[0]


def test_after_its_first_epoch_a_run_fits_its_length_to_the_budget_again(caplog: pytest.LogCaptureFixture) -> None:
    # the probe: 40 s an epoch, 60 s gone before it and one final pass of 10 s; the rule wants 27 epochs
    pace = Pace(train_batch_s=2.0, eval_batch_s=1.0, train_batches=15, eval_batches=10, before_s=60.0, final_passes=1)
    cfg, record = choose_schedule(rule_config(time_budget=15.0, warmup_epochs=1), 15, lambda: pace)
    assert cfg.epochs == 20 and schedule.can_refit(cfg, record)  # (900 - 70) s / 40 s
    caplog.set_level(logging.INFO, logger="fgvc")
    faster, refit = schedule.refit_schedule(cfg, record, first_epoch_s=32.0, elapsed_s=100.0)
    assert faster.epochs == refit["epochs"] == 25  # 1 + (900 - 100 - 10) s / 32 s
    assert refit["refit"] == {"first_epoch_s": 32.0, "elapsed_s": 100.0, "epochs_before": 20} and refit["shortened"]
    assert "not the 20 the probe projected: training 25. --epochs 25 reproduces this run" in caplog.text
    assert schedule.refit_schedule(cfg, record, 60.0, 130.0)[0].epochs == 13  # slower: 1 + 760 s / 60 s
    assert schedule.refit_schedule(cfg, record, 10.0, 70.0)[0].epochs == 27  # never past the rule
    assert schedule.refit_schedule(cfg, record, 2000.0, 2060.0)[0].epochs == 1  # the epoch trained stays
    assert not schedule.can_refit(cfg, None)  # a resumed run keeps its epochs
    assert not schedule.can_refit(cfg, choose_schedule(rule_config(time_budget=0.0), 15, lambda: pace)[1])
    assert not schedule.can_refit(dataclasses.replace(cfg, warmup_epochs=0), record)  # its cosine has begun


@pytest.mark.slow  # three sessions of training: the refit itself is the test above
def test_a_run_its_probe_underrated_trains_what_its_first_epoch_shows_fits_and_resumes_to_it(
        tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe that made each batch last 1000 s fits 1 epoch of the rule's 3 in 10 minutes; the first epoch takes
    about a second, and the run trains all 3, as ``--epochs 3`` would: the same learning rates, step by step."""
    monkeypatch.setattr(schedule, "_seconds_per_batch", lambda loader, work, batches: 1000.0)
    cfg = dataclasses.replace(tiny_config(tiny_root, tmp_path / "run", **SMALL, schedule_steps=9, log_every=1,
                                          schedule_min_epochs=1, warmup_epochs=1, time_budget=10.0), epochs=None)
    run_dir = fit(cfg, progress=False, stop_after=1)
    record = json.loads((run_dir / SCHEDULE_FILE).read_text())
    assert record["refit"]["epochs_before"] == 1 and record["epochs"] == 3 and not record["shortened"]
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 3
    assert load_checkpoint(run_dir / "last.pt")["config"]["epochs"] == 3
    said = (run_dir / "train.log").read_text()
    assert "training 1 epochs instead" in said and "not the 1 the probe projected: training 3" in said
    hparams = EventAccumulator(str(run_dir)).Reload().PluginTagToContent(metadata.PLUGIN_NAME)
    session = metadata.parse_session_start_info_plugin_data(hparams[metadata.SESSION_START_INFO_TAG])
    assert session.hparams["epochs"].number_value == 3  # TensorBoard keeps a run's first hparams: the refitted
    fit(resume=run_dir / "last.pt", progress=False)
    pinned = fit(dataclasses.replace(cfg, run_dir=str(tmp_path / "pinned"), epochs=3, time_budget=0.0), progress=False)
    for name in ("epochs.csv", "steps.csv"):
        refitted, reference = read_rows(run_dir / name), read_rows(pinned / name)
        assert [row["epoch"] for row in refitted] == [row["epoch"] for row in reference]
        assert [row["lr"] for row in refitted] == pytest.approx([row["lr"] for row in reference], rel=1e-6)
    assert [row["epoch"] for row in read_rows(run_dir / "epochs.csv")] == [1, 2, 3]


def test_the_subset_is_seeded_stratified_and_nested() -> None:
    targets = [label for label in range(4) for _ in range(30)] + [4] * 7  # class 4 has fewer than asked
    kept = per_class_subset(targets, 10, seed=0)
    assert Counter(targets[i] for i in kept) == {0: 10, 1: 10, 2: 10, 3: 10, 4: 7}
    assert kept == sorted(kept) and kept == per_class_subset(targets, 10, seed=0)
    assert kept != per_class_subset(targets, 10, seed=1)
    assert set(per_class_subset(targets, 5, seed=0)) < set(kept)  # a learning curve's points are nested


def test_the_subset_cuts_the_training_split_alone_and_changes_its_fingerprint(make_dataset) -> None:
    root = make_dataset(3, 10)
    whole = training_split(tiny_config(root, Path("unused")))
    cut = training_split(tiny_config(root, Path("unused"), train_per_class=4))
    assert Counter(cut.targets) == {0: 4, 1: 4, 2: 4} and min(Counter(whole.targets).values()) > 4
    assert {path for path, _ in cut.samples} < {path for path, _ in whole.samples}

    def digest(split):
        return provenance.split_fingerprint(split, split.classes, root, "trainval")["sha256"]

    assert digest(cut) != digest(whole)
    assert digest(cut) == digest(training_split(tiny_config(root, Path("unused"), train_per_class=4)))


@pytest.mark.parametrize(("seconds", "expected"), [([5, 4, 3, 2, 2, 9, 2, 2], 2), ([5, 3], 3), ([4], 4)])
def test_the_probe_leaves_out_the_warm_up_and_a_stall(seconds: list[float], expected: float,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(itertools.accumulate([0, *seconds]))  # the probe's clock: one reading before, one after each batch
    monkeypatch.setattr(schedule.time, "perf_counter", lambda: next(clock))
    assert schedule._seconds_per_batch(range(len(seconds)), lambda _batch: None, schedule.PROBE_BATCHES) == expected
