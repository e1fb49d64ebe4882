"""fgvc learning-curve: one recipe on N photos per class for a few N, as a study; its table and figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from fgvc.apps.cli import main
from fgvc.core.errors import ConfigError
from fgvc.studies.learning_curve import CurvePoint, curve_study, format_curve

TINY = ["--img-size", "32", "--batch-size", "4", "--workers", "0", "--epochs", "1", "--warmup-epochs", "0",
        "--arch", "efficientnet-b0", "--no-pretrained", "--no-tensorboard"]


def test_the_curve_is_a_study_whose_smallest_point_is_the_reference() -> None:
    study = curve_study({"preset": "cpu"}, [50, 10, 25], seeds=[0, 1, 2])
    assert list(study["recipes"]) == ["per-class-10", "per-class-25", "per-class-50", "all"]
    assert study["recipes"]["per-class-25"] == {"train_per_class": 25} and study["recipes"]["all"] == {}
    assert study["seeds"] == [0, 1, 2] and "seed" not in study["base"]
    assert curve_study({"preset": "cpu"}, [10], seeds=[3])["base"] == {"preset": "cpu", "seed": 3}


@pytest.mark.parametrize("base, per_class", [({"train_per_class": 5}, [10]), ({}, []), ({}, [0, 10]),
                                             ({}, [10, 10])])
def test_a_curve_that_cannot_be_drawn_is_refused(base: dict, per_class: list[int]) -> None:
    with pytest.raises(ConfigError, match=r"per-class|train_per_class"):
        curve_study(base, per_class, seeds=[])


def test_the_table_reads_each_point_against_the_smallest() -> None:
    points = [CurvePoint("per-class-10", 10, [0.5, 0.6], 0.0, (0.0, 0.0), 1.0),
              CurvePoint("all", 100, [0.8, 0.9], 0.3, (0.25, 0.35), 0.0001)]
    table = format_curve(points, "val")
    assert "| 10 | 55.0 (50.0-60.0) | reference |  |" in table
    assert "| 100 (all) | 85.0 (80.0-90.0) | +30.0 (+25.0 to +35.0) | <0.001 |" in table


@pytest.mark.slow
def test_the_command_trains_each_point_on_its_photos_and_continues_after_a_stop(tiny_root: Path, tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "curve"
    command = ["learning-curve", "--preset", "demo", "--data-root", str(tiny_root), "--per-class", "2", "--out",
               str(out), *TINY]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "| 2 | " in printed and "| 4 (all) | " in printed  # tiny_root: 4 trainval photos of each class
    assert (out / "learning_curve.png").stat().st_size > 0 and (out / "curve.yaml").is_file()
    trained = {point: (out / point / "last.pt").stat().st_mtime_ns for point in ("per-class-2", "all")}
    assert main(command) == 0
    assert {point: (out / point / "last.pt").stat().st_mtime_ns for point in trained} == trained
