"""`fgvc study`: recipes trained and compared with the reference, the table and figure, and a study that
continues where it stopped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from fgvc import engine
from fgvc.cli import main
from fgvc.compare import compare
from fgvc.errors import ConfigError
from fgvc.study import read_study, recipe_config, run_study

BASE = {"preset": "demo", "img_size": 64, "batch_size": 4, "workers": 0, "epochs": 1, "warmup_epochs": 0,
        "arch": "efficientnet-b0", "pretrained": False, "tensorboard": False, "train_split": "trainval",
        "eval_split": "test", "log_every": 1}


def write_study(path: Path, recipes: dict[str, dict[str, object]], **base: object) -> Path:
    path.write_text(yaml.safe_dump({"base": {**BASE, **base}, "recipes": recipes}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def finished_study(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two trained recipes and an evaluation-only one, run through the CLI; (study file, study folder)."""
    folder = tmp_path_factory.mktemp("study")
    study = write_study(folder / "tiny.yaml", {"base": {}, "fast-lr": {"lr": 0.02},
                                               "base-tta": {"evaluate": "base", "tta": True}})
    assert main(["study", str(study), "--data-root", str(tiny_root), "--out", str(folder / "out")]) == 0
    return study, folder / "out"


def table_rows(markdown: str, table: int = 0) -> dict[str, list[str]]:
    """The cells of table number ``table`` of a Markdown text, by the first cell."""
    tables = [block for block in markdown.split("\n\n") if block.startswith("| ")]
    rows = [line.strip("|").split("|") for line in tables[table].splitlines()]
    return {cells[0].strip(): [c.strip() for c in cells] for cells in rows[2:]}  # after the header and its rule


def test_the_table_gives_each_recipe_its_top1_and_its_paired_comparison(finished_study: tuple[Path, Path]) -> None:
    _, out = finished_study
    rows = table_rows((out / "study.md").read_text())
    assert list(rows) == ["base", "fast-lr", "base-tta"]
    for name, evaluation in (("base", out / "base" / "eval-test"), ("fast-lr", out / "fast-lr" / "eval-test"),
                             ("base-tta", out / "base-tta")):
        report = json.loads((evaluation / "metrics.json").read_text())
        low, high = report["top1_ci"]
        assert rows[name][2] == f"{100 * report['top1']:.1f} ({100 * low:.1f}-{100 * high:.1f})"
    assert rows["base"][3] == "reference" and rows["base"][4] == ""
    for name in ("fast-lr", "base-tta"):
        comparison = compare(out / "base", out / name if name == "base-tta" else out / name / "eval-test")
        low, high = comparison["top1_diff_ci"]
        assert rows[name][3] == (f"{100 * comparison['top1_diff']:+.1f} ({100 * low:+.1f} to {100 * high:+.1f})")
        p = comparison["mcnemar_p"]
        assert rows[name][4] == (f"{p:.3f}" if p >= 0.001 else "<0.001")
        written = list((out / name).rglob("compare-vs-base-eval-test.json"))
        assert len(written) == 1 and json.loads(written[0].read_text())["top1_diff"] == comparison["top1_diff"]
    assert rows["fast-lr"][1] == "lr=0.02" and rows["base-tta"][1] == "evaluate base, tta=True"
    minutes = {r["name"]: r["minutes"] for r in json.loads((out / "study.json").read_text())["recipes"]}
    assert minutes["base-tta"] > minutes["base"] > 0  # the evaluation comes after base's training
    assert [rows[name][5] for name in rows] == [f"{minutes[name]:.1f}" for name in rows]


def test_the_report_says_what_produced_each_result(finished_study: tuple[Path, Path]) -> None:
    _, out = finished_study
    rows = table_rows((out / "study.md").read_text(), table=1)
    evaluated = json.loads((out / "base" / "eval-test" / "metrics.json").read_text())["data"]
    trained = json.loads((out / "base" / "eval-test" / "metrics.json").read_text())["trained_with"]
    assert list(rows) == ["base", "fast-lr", "base-tta"]
    for name in rows:
        assert rows[name][3] == f"{evaluated['images']} images, {evaluated['sha256'][:12]}"  # the same test images
        train_data = trained["train_data"][0]
        assert rows[name][2] == f"{train_data['images']} images, {train_data['sha256'][:12]}"
    commit = trained["code"][0]["commit"]
    assert rows["base"][1] == ("unrecorded" if commit is None else commit[:10] + (
        " (dirty)" if trained["code"][0]["dirty"] else ""))


def test_the_figure_and_json_plot_top1_against_wall_clock(finished_study: tuple[Path, Path]) -> None:
    _, out = finished_study
    assert (out / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((out / "study.json").read_text())
    curves = {r["name"]: r["curve"] for r in record["recipes"]}
    assert len(curves["base"]) == 1 and len(curves["base-tta"]) == 1  # one epoch; one evaluation
    assert curves["base-tta"][0][0] > curves["base"][-1][0]
    assert record["recipes"][0]["top1"] == curves["base"][-1][1]


def test_a_second_call_trains_and_evaluates_nothing(finished_study: tuple[Path, Path], tiny_root: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    study, out = finished_study
    before = (out / "study.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("predictions.csv")}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished recipe was run again")

    monkeypatch.setattr(engine, "fit", refuse)
    monkeypatch.setattr("fgvc.evaluation.evaluate_checkpoint", refuse)
    run_study(study, tiny_root, out)
    assert (out / "study.md").read_text() == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("predictions.csv")} == stamps


def test_a_stopped_recipe_resumes_from_its_last_checkpoint(tiny_root: Path, tmp_path: Path) -> None:
    study = write_study(tmp_path / "s.yaml", {"base": {}}, epochs=2)
    cfg = recipe_config(read_study(study), read_study(study).recipes[0], tiny_root, tmp_path / "out")
    engine.fit(cfg, progress=False, stop_after=1)  # a study killed after the first epoch
    first = (tmp_path / "out" / "base" / "epochs.csv").read_text().splitlines()
    run_study(study, tiny_root, tmp_path / "out")
    rows = (tmp_path / "out" / "base" / "epochs.csv").read_text().splitlines()
    assert rows[:2] == first and len(rows) == 3  # epoch 1 kept, epoch 2 trained on
    assert "resuming" in (tmp_path / "out" / "base" / "train.log").read_text()


def test_an_edited_recipe_is_not_mixed_with_its_old_run(finished_study: tuple[Path, Path], tiny_root: Path,
                                                        tmp_path: Path) -> None:
    _, out = finished_study
    (out / "base" / "eval-test" / "predictions.csv").rename(tmp_path / "kept.csv")  # as if unfinished
    try:
        edited = write_study(tmp_path / "edited.yaml", {"base": {"lr": 0.5}})
        with pytest.raises(ConfigError, match=re.escape(str(out / "base")) + r".*\['lr'\]"):
            run_study(edited, tiny_root, out)
    finally:
        (tmp_path / "kept.csv").rename(out / "base" / "eval-test" / "predictions.csv")


@pytest.mark.parametrize(("recipes", "message"), [
    ({"base": {"lr": -1}}, r"recipe 'base': lr=-1 is invalid"),
    ({"base": {"no_such_field": 1}}, r"recipe 'base': unknown config field"),
    ({"base": {}, "tta": {"evaluate": "nothing"}}, r"`evaluate: nothing` names no trained recipe"),
    ({"base": {}, "tta": {"evaluate": "base", "lr": 0.1}}, r"may set .*not \['lr'\]"),
    ({"a/b": {}}, r"no '/'"),
    ({"base": {}, "zoom": {"evaluate": "base", "zoom": {"threshold": 2}}}, r"recipe 'zoom': zoom threshold=2"),
    ({"base": {}, "zoom": {"evaluate": "base", "zoom": {"size": 2}}}, r"recipe 'zoom': .*zoom takes true"),
])
def test_a_bad_study_file_is_refused_naming_the_recipe(tmp_path: Path, recipes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_study(write_study(tmp_path / "bad.yaml", recipes))


def test_a_study_file_without_recipes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("base: {preset: cpu}\n")
    with pytest.raises(ConfigError, match="expected a mapping with `base:`"):
        read_study(tmp_path / "empty.yaml")


def test_the_project_study_files_are_valid() -> None:
    for path in sorted(Path(__file__).parents[1].glob("studies/*.yaml")):
        study = read_study(path)
        assert study.recipes[0].evaluates is None
