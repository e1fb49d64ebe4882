"""`fgvc study`: recipes trained and compared with the reference, the table and figure, and a study that
continues where it stopped; a study over seeds, and its summary across them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from readme_checks import english_documentation

from fgvc.apps.cli import main
from fgvc.core.errors import ConfigError
from fgvc.evaluation.compare import compare, compare_over_seeds
from fgvc.evaluation.statistics import mcnemar_exact, paired_over_seeds
from fgvc.studies.study import run_study
from fgvc.studies.study_file import read_study, recipe_config
from fgvc.studies.study_report import study_figure
from fgvc.training import engine

BASE = {"preset": "demo", "img_size": 32, "batch_size": 4, "workers": 0, "epochs": 1, "warmup_epochs": 0,
        "arch": "efficientnet-b0", "pretrained": False, "tensorboard": False, "train_split": "trainval",
        "eval_split": "test", "log_every": 1}


def write_study(path: Path, recipes: dict[str, dict[str, object]], seeds: object = None, **base: object) -> Path:
    study = {"base": {**BASE, **base}, "recipes": recipes, **({} if seeds is None else {"seeds": seeds})}
    path.write_text(yaml.safe_dump(study, sort_keys=False))
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
    monkeypatch.setattr("fgvc.evaluation.evaluate.evaluate_checkpoint", refuse)
    run_study(study, tiny_root, out)
    assert (out / "study.md").read_text() == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("predictions.csv")} == stamps


def test_a_study_restored_from_its_committed_records_trains_nothing_again(
        finished_study: tuple[Path, Path], tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """studies/results keeps each run's config, epochs and evaluation, not its checkpoints or steps.csv: a later
    session restores that into the study folder, and the study goes on, its speed unknown for those runs."""
    study, out = finished_study
    restored = tmp_path / "out"
    for path in out.rglob("*"):
        kept = path.suffix in (".json", ".csv") and path.name != "steps.csv"
        if path.is_file() and kept:
            (restored / path.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            (restored / path.relative_to(out)).write_bytes(path.read_bytes())
    monkeypatch.setattr(engine, "fit", lambda *a, **k: pytest.fail("a recorded recipe was trained again"))
    run_study(study, tiny_root, restored)
    rows, record = table_rows((restored / "study.md").read_text()), json.loads((restored / "study.json").read_text())
    assert rows["fast-lr"][3:5] == table_rows((out / "study.md").read_text())["fast-lr"][3:5]
    assert rows["base"][-1] == "-" and record["recipes"][0]["images_per_s"] is None


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
    """Every study file in studies/ reads, and every one that the README or docs/ cite is there."""
    repo = Path(__file__).parents[1]
    cited = {name for page in english_documentation()
             for name in re.findall(r"studies/[\w.-]+\.yaml", page.read_text())}
    files = sorted(repo.glob("studies/*.yaml"))
    assert cited and cited <= {str(path.relative_to(repo)) for path in files}
    for path in files:
        study = read_study(path)
        assert study.recipes[0].evaluates is None


# Studies over seeds.


@pytest.fixture(scope="module")
def seeded_study(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipes of ``finished_study`` over seeds 0 and 1, run through the CLI; the study folder."""
    folder = tmp_path_factory.mktemp("seeded")
    study = write_study(folder / "tiny.yaml", {"base": {}, "fast-lr": {"lr": 0.02},
                                               "base-tta": {"evaluate": "base", "tta": True}}, seeds=[0, 1])
    assert main(["study", str(study), "--data-root", str(tiny_root), "--out", str(folder / "out")]) == 0
    return folder / "out"


def top1(folder: Path) -> float:
    return json.loads((folder / "metrics.json").read_text())["top1"]


@pytest.mark.slow
def test_each_seed_runs_every_recipe_in_its_own_folder(seeded_study: Path) -> None:
    assert sorted(p.name for p in seeded_study.iterdir() if p.is_dir()) == ["seed-0", "seed-1"]
    for seed in (0, 1):
        for name in ("base", "fast-lr"):
            config = json.loads((seeded_study / f"seed-{seed}" / name / "config.json").read_text())
            assert config["seed"] == seed and (seeded_study / f"seed-{seed}" / name / "eval-test").is_dir()
        evaluated = json.loads((seeded_study / f"seed-{seed}" / "base-tta" / "metrics.json").read_text())
        assert Path(evaluated["checkpoint"]).parent.parent.name == f"seed-{seed}"  # this seed's base, again


@pytest.mark.slow
def test_the_seeds_table_gives_the_spread_and_the_paired_differences_across_seeds(seeded_study: Path) -> None:
    markdown = (seeded_study / "study.md").read_text()
    rows = table_rows(markdown)
    assert list(rows) == ["base", "fast-lr", "base-tta"]
    folders = {name: [seeded_study / f"seed-{seed}" / name / ("" if name == "base-tta" else "eval-test")
                      for seed in (0, 1)] for name in rows}
    for name, evaluations in folders.items():
        values = [top1(folder) for folder in evaluations]
        mean, sd = np.mean(values), np.std(values, ddof=1)
        assert rows[name][2] == f"{100 * mean:.1f} ± {100 * sd:.1f} ({100 * min(values):.1f}-{100 * max(values):.1f})"
    assert rows["base"][3] == "reference" and rows["base"][5] == ""
    for name in ("fast-lr", "base-tta"):
        summary = compare_over_seeds(list(zip(folders["base"], folders[name], strict=True)))
        each = [compare(a, b)["top1_diff"] for a, b in zip(folders["base"], folders[name], strict=True)]
        assert summary["top1_diffs"] == pytest.approx(each) and summary["top1_diff"] == pytest.approx(np.mean(each))
        low, high = summary["top1_diff_ci"]
        assert rows[name][3] == f"{100 * summary['top1_diff']:+.1f} ({100 * low:+.1f} to {100 * high:+.1f})"
        assert rows[name][4] == f"{100 * min(each):+.1f} to {100 * max(each):+.1f} ({100 * np.std(each, ddof=1):.1f})"
        assert rows[name][5] == (f"{summary['p']:.3f}" if summary["p"] >= 0.001 else "<0.001")
        for seed in (0, 1):  # the per-seed tables: the same comparison as a study without seeds
            seed_rows = table_rows(markdown, table=1 + 2 * seed)  # each seed: its table, then its provenance
            comparison = compare(folders["base"][seed], folders[name][seed])
            low, high = comparison["top1_diff_ci"]
            assert seed_rows[name][3] == (f"{100 * comparison['top1_diff']:+.1f} ({100 * low:+.1f} to "
                                          f"{100 * high:+.1f})")
    assert "Seed 1 (`seed-1/`)" in markdown


@pytest.mark.slow
def test_the_seeds_json_holds_each_seed_and_the_summary(seeded_study: Path) -> None:
    record = json.loads((seeded_study / "study.json").read_text())
    assert record["seeds"] == [0, 1]
    recipes = {r["name"]: r for r in record["recipes"]}
    fast = recipes["fast-lr"]
    assert [s["seed"] for s in fast["seeds"]] == [0, 1]
    assert [s["top1"] for s in fast["seeds"]] == [top1(seeded_study / f"seed-{k}" / "fast-lr" / "eval-test")
                                                  for k in (0, 1)]
    diffs = [s["diff"] for s in fast["seeds"]]
    assert fast["diff"] == pytest.approx(np.mean(diffs))
    assert fast["diff_min"] == min(diffs) and fast["diff_max"] == max(diffs)
    assert fast["top1_min"] <= fast["top1_mean"] <= fast["top1_max"]
    assert fast["diff_ci"][0] <= fast["diff"] <= fast["diff_ci"][1] and 0 < fast["p"] <= 1
    assert recipes["base-tta"]["minutes"] > recipes["base"]["minutes"] > 0


@pytest.mark.slow
def test_the_seeds_figure_draws_each_seed_and_their_mean(seeded_study: Path, tiny_root: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert (seeded_study / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished seed was run again")

    monkeypatch.setattr(engine, "fit", refuse)
    monkeypatch.setattr("fgvc.evaluation.evaluate.evaluate_checkpoint", refuse)
    rows = run_study(seeded_study.parent / "tiny.yaml", tiny_root, seeded_study)
    axes = study_figure([row.runs for row in rows], "seeds").axes[0]
    assert len(axes.lines) == 3 * 3  # each recipe: a line (or marker) per seed and their mean
    labels = [line.get_label() for line in axes.lines if not line.get_label().startswith("_")]
    assert len(labels) == 3 and all(label.endswith("2 seeds)") for label in labels)
    mean_line = next(line for line in axes.lines if line.get_label().startswith("base ("))
    seed_values = [100 * run.curve[-1][1] for run in rows[0].runs]
    assert mean_line.get_ydata()[-1] == pytest.approx(np.mean(seed_values))


@pytest.mark.slow
def test_a_stopped_study_over_seeds_resumes_only_the_unfinished_run(tiny_root: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    study, out = write_study(tmp_path / "s.yaml", {"base": {}}, seeds=[0, 1], epochs=2), tmp_path / "out"
    fit = engine.fit

    def killed_in_seed_1(cfg: object = None, **kwargs: object) -> Path:
        if cfg is not None and cfg.seed == 1:
            fit(cfg, progress=False, stop_after=1)
            raise KeyboardInterrupt  # the study stopped after seed 1's first epoch
        return fit(cfg, progress=False, **kwargs)

    monkeypatch.setattr(engine, "fit", killed_in_seed_1)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, tiny_root, out)
    done = (out / "seed-0" / "base" / "eval-test" / "predictions.csv").stat().st_mtime_ns
    calls = []

    def counted(cfg: object = None, **kwargs: object) -> Path:
        calls.append(kwargs.get("resume") or cfg)
        return fit(cfg, progress=False, **kwargs)

    monkeypatch.setattr(engine, "fit", counted)
    run_study(study, tiny_root, out)
    assert calls == [out / "seed-1" / "base" / "last.pt"]  # seed 0 skipped, seed 1 resumed
    assert len((out / "seed-1" / "base" / "epochs.csv").read_text().splitlines()) == 3  # 2 epochs, not 1 + 2
    assert (out / "seed-0" / "base" / "eval-test" / "predictions.csv").stat().st_mtime_ns == done
    assert list(table_rows((out / "study.md").read_text())) == ["base"]


@pytest.mark.parametrize(("seeds", "base", "recipes", "message"), [
    ([0, 1], {}, {"base": {}, "other": {"seed": 3}}, r"recipe 'other': sets seed=3 and the study runs `seeds: \["
                                                      r"0, 1\]`"),
    ([0, 1], {"seed": 3}, {"base": {}}, r"base sets seed=3 and the study runs `seeds: \[0, 1\]`"),
    ([0], {}, {"base": {}}, r"seeds=\[0\]: expected a list of two or more different integers >= 0"),
    ([0, 0], {}, {"base": {}}, r"seeds=\[0, 0\]: expected a list of two or more"),
    ([0, "1"], {}, {"base": {}}, r"seeds=\[0, '1'\]: expected"),
    ([-1, 1], {}, {"base": {}}, r"seeds=\[-1, 1\]: expected"),
    (3, {}, {"base": {}}, r"seeds=3: expected"),
])
def test_bad_seeds_are_refused(tmp_path: Path, seeds: object, base: dict, recipes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_study(write_study(tmp_path / "bad.yaml", recipes, seeds=seeds, **base))


def test_a_seeded_recipe_runs_with_its_seed_in_its_seed_folder(tmp_path: Path) -> None:
    study = read_study(write_study(tmp_path / "s.yaml", {"base": {}}, seeds=[3, 7]))
    assert study.seeds == (3, 7)
    cfg = recipe_config(study, study.recipes[0], tmp_path, tmp_path / "out", seed=7)
    assert cfg.seed == 7 and Path(cfg.run_dir) == tmp_path / "out" / "seed-7" / "base"
    assert read_study(write_study(tmp_path / "plain.yaml", {"base": {}})).seeds == ()


def test_the_summary_across_seeds_counts_each_image_once() -> None:
    """B gains the same 10 images (of 200) over A in both seeds, and loses one in seed 1: McNemar on the pairs of
    both seeds pooled (19 against 1) would count each image twice; the image-level test sees 10 images and one."""
    right_a = np.zeros((2, 200), dtype=bool)
    right_a[:, :100] = True
    right_b = right_a.copy()
    right_b[:, 100:110] = True
    right_b[1, 0] = False
    summary = paired_over_seeds(right_a, right_b)
    assert summary["top1_diffs"] == pytest.approx([10 / 200, 9 / 200])
    assert summary["top1_diff"] == pytest.approx(19 / 400)
    low, high = summary["top1_diff_ci"]
    assert 0 < low < summary["top1_diff"] < high
    assert 0.001 < summary["p"] < 0.004  # exactly 2 / 2**10: only the 10 images all on one side are as extreme
    assert summary["p"] > 10 * mcnemar_exact(1, 19)


def test_the_summary_across_seeds_finds_no_difference_where_there_is_none() -> None:
    right_a = np.zeros((3, 50), dtype=bool)
    right_a[:, :20] = True
    right_b = np.zeros((3, 50), dtype=bool)
    right_b[:, 5:25] = True  # as many right, on other images
    summary = paired_over_seeds(right_a, right_b)
    assert summary["top1_diffs"] == pytest.approx([0, 0, 0]) and summary["p"] == 1.0
    assert summary["top1_diff_ci"][0] < 0 < summary["top1_diff_ci"][1]


def test_the_summary_over_one_seed_is_mcnemars_test() -> None:
    rng = np.random.default_rng(0)
    right_a = rng.random((1, 60)) < 0.5
    right_b = right_a.copy()
    right_b[0, :15] = [True] * 12 + [False] * 3
    right_a[0, :15] = [False] * 12 + [True] * 3
    assert paired_over_seeds(right_a, right_b)["p"] == pytest.approx(mcnemar_exact(3, 12), abs=0.01)


def test_the_summary_across_seeds_refuses_mismatched_runs() -> None:
    with pytest.raises(ValueError, match=r"shapes \(2, 5\) and \(2, 4\)"):
        paired_over_seeds(np.ones((2, 5), dtype=bool), np.ones((2, 4), dtype=bool))
