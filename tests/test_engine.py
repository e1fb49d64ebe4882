"""The training loop: it learns, it logs on schedule, a run folder is never shared (resume exactness: the
kill -9 test in test_reliability.py)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from helpers import NUM_CLASSES, SMALL, tiny_config

from fgvc.core.errors import FolderError
from fgvc.models.checkpoint import load_checkpoint
from fgvc.runs.csvlog import read_rows
from fgvc.training import loop
from fgvc.training.engine import fit
from fgvc.training.loop import RunProgress
from fgvc.training.optim import lr_factor


@pytest.mark.slow
def test_it_learns_well_above_chance(trained_run: Path) -> None:
    final = read_rows(trained_run / "epochs.csv")[-1]
    chance = 1 / NUM_CLASSES
    print(f"\nfinal test top-1 {final['eval_top1']:.3f} = {final['eval_top1'] / chance:.1f}x chance ({chance:.3f})")
    assert final["eval_top1"] >= 2 * chance
    assert final["eval_mean_class_acc"] >= 2 * chance


def test_run_folder_has_every_file(short_run: Path) -> None:
    for name in ("train.log", "config.json", "steps.csv", "epochs.csv", "last.pt", "curves.png"):
        assert (short_run / name).stat().st_size > 0, name
    assert not (short_run / "best.pt").exists()  # eval split is test: choosing a best would leak it
    cfg = json.loads((short_run / "config.json").read_text())
    assert cfg["run_dir"] == str(short_run)
    assert f"epoch {cfg['epochs']}/{cfg['epochs']}" in (short_run / "train.log").read_text()


def test_steps_every_five_batches_and_epochs_every_epoch(short_run: Path) -> None:
    cfg = json.loads((short_run / "config.json").read_text())
    steps, epochs = read_rows(short_run / "steps.csv"), read_rows(short_run / "epochs.csv")
    per_epoch = int(max(r["step"] for r in steps) / cfg["epochs"])
    expected = [e * per_epoch + b for e in range(cfg["epochs"]) for b in range(1, per_epoch + 1)
                if b % 5 == 0 or b == per_epoch]
    assert [int(r["step"]) for r in steps] == expected
    assert [int(r["epoch"]) for r in epochs] == list(range(1, cfg["epochs"] + 1))
    assert all(0 <= r[k] <= 1 for r in epochs for k in ("eval_top1", "eval_top5", "eval_mean_class_acc"))


def test_best_checkpoint_only_when_selecting_on_val(val_run: Path) -> None:
    assert (val_run / "best.pt").exists()


def test_a_run_folder_is_never_shared(val_run: Path, tiny_root: Path, tmp_path: Path) -> None:
    shutil.copytree(val_run, tmp_path / "run")  # a finished run
    with pytest.raises(FolderError, match="--resume"):
        fit(tiny_config(tiny_root, tmp_path / "run", epochs=1, **SMALL), progress=False)


def test_warmup_then_cosine() -> None:
    factors = [lr_factor(s, warmup_steps=10, total_steps=110) for s in range(110)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.5) and factors[-1] < 0.001
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))


@pytest.fixture(scope="module")
def on_the_callers_loaders(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs of 2 batches (of 6 images) at 32 px with the demo preset, trained on loaders built before ``fit``,
    as the notebook builds them to show them: ``fit`` may not build its own (it would decode every image again).
    Its folder."""
    from fgvc.data import build_loaders
    from fgvc.training import engine

    cfg = tiny_config(tiny_root, tmp_path_factory.mktemp("runs") / "notebook", epochs=2, batch_size=6, img_size=32)
    loaders = build_loaders(cfg)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fit built its own loaders")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "build_loaders", refuse)
        return fit(cfg, loaders=loaders, progress=False)


def test_fit_trains_on_the_loaders_the_caller_built(on_the_callers_loaders: Path) -> None:
    assert load_checkpoint(on_the_callers_loaders / "last.pt")["epoch"] == 2


def test_a_gpu_preset_on_the_cpu_is_named_and_the_log_projects_the_whole_run(tiny_root: Path, tmp_path: Path) -> None:
    """`make run` on a machine without a GPU must say so before training, then project the run's length."""
    import dataclasses

    cfg = dataclasses.replace(tiny_config(tiny_root, tmp_path / "run", epochs=2, log_every=1, **SMALL),
                              preset="b4", device="cpu")
    log = (fit(cfg, progress=False) / "train.log").read_text()
    warning = log.index("preset 'b4' is made for a GPU, and this run trains on the CPU")
    assert warning < log.index("epoch 1 step 1 ") and "--preset cpu" in log
    assert "this session's 5 more batches take about" in log  # 2 epochs x 3 batches, one done
    lefts = [line.rsplit("(run: about ", 1)[1] for line in log.splitlines() if "(run: about " in line]
    assert len(lefts) == 6 and lefts[-1] == "0 s left)"


def test_a_cpu_preset_on_the_cpu_gets_no_warning_and_one_first_projection(on_the_callers_loaders: Path) -> None:
    """2 batches an epoch, logged every 5: the projection comes after the first batch, before the first logged
    step (the second batch), and the first logged step of epoch 2 is not the session's first."""
    text = (on_the_callers_loaders / "train.log").read_text()
    assert "is made for a GPU" not in text
    assert text.count("the first batch took") == 1
    assert text.index("the first batch took") < text.index("epoch 1 step 2 ")
    assert "this session's 3 more batches take about" in text  # 2 epochs x 2 batches, one done


@pytest.mark.parametrize("show", [True, False])
def test_the_run_projects_its_end_from_the_pace_with_or_without_a_bar(show: bool,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(loop.time, "perf_counter", lambda: now[0])
    progress = RunProgress(first_step=20, last_step=120, show=show)  # a resumed session: 100 batches left
    now[0] += 5.0
    left = progress.step({"epoch": 3, "step": 30, "loss": 1.0})  # 10 batches in 5 s
    assert progress.seconds_per_batch() == pytest.approx(0.5) and left == pytest.approx(0.5 * 90)
    assert progress.done == 10
    progress.close()
