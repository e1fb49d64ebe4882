"""`fgvc compare`: the paired statistics on hand-worked cases, reading evaluation folders back, refusals, the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import NUM_CLASSES, MakeDataset, tiny_config

from fgvc.apps.cli import main
from fgvc.core.errors import ComparisonError
from fgvc.evaluation import metrics, statistics
from fgvc.evaluation.analysis import analyse
from fgvc.evaluation.compare import compare, default_out, evaluation_folder, format_comparison, verdict
from fgvc.evaluation.evaluate import evaluate_checkpoint

CLASSES = ["707-320", "727-200", "A300B4", "F/A-18"]  # names with a slash and a dash, as in FGVC-Aircraft

# --- McNemar's exact test ------------------------------------------------------------------


@pytest.mark.parametrize(("a_only", "b_only", "expected"), [
    (0, 0, 1.0),  # no discordant image: no evidence either way
    (0, 5, 2 / 2**5),  # 5 of 5 coins the same way: 2 * 1/32
    (0, 6, 2 / 2**6),  # 0.03125, below 0.05
    (2, 8, 2 * (1 + 10 + 45) / 2**10),  # 2 * (C(10,0) + C(10,1) + C(10,2)) / 1024 = 0.109375
    (8, 2, 0.109375),  # the test is two-sided: symmetric in A and B
    (1, 1, 1.0),  # 2 * (C(2,0) + C(2,1)) / 4 = 1.5, capped at 1
    (3, 4, 1.0),  # 2 * (1 + 7 + 21 + 35) / 128 = 1.0 exactly
])
def test_mcnemar_exact_against_hand_worked_values(a_only: int, b_only: int, expected: float) -> None:
    assert statistics.mcnemar_exact(a_only, b_only) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_stays_exact_on_a_test_set_of_thousands() -> None:
    # 1,600 against 1,700 discordant images: 2**3300 overflows a float, the integers do not. The definition, summed
    # with math.comb, gives the same float; the normal approximation with continuity correction,
    # z = (|1700 - 1600| - 1) / sqrt(3300) = 1.7234, two-sided 0.0848, is close at this size.
    p = statistics.mcnemar_exact(1600, 1700)
    assert p == min(1.0, 2 * sum(math.comb(3300, i) for i in range(1601)) / 2**3300)
    assert p == pytest.approx(math.erfc(99 / math.sqrt(3300) / math.sqrt(2)), abs=1e-3)
    assert statistics.mcnemar_exact(1700, 1600) == p and statistics.mcnemar_exact(1650, 1650) == 1.0


# --- paired comparison ---------------------------------------------------------------------


def test_identical_runs_differ_by_zero_with_p_one() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, size=60)
    preds = np.where(rng.random(60) < 0.7, targets, rng.integers(0, 4, size=60))
    paired = statistics.paired_comparison(preds, preds.copy(), targets, CLASSES)
    assert paired["top1_a"] == paired["top1_b"] == pytest.approx((preds == targets).mean())
    assert paired["top1_diff"] == paired["mean_class_acc_diff"] == 0.0
    assert paired["top1_diff_ci"] == paired["mean_class_acc_diff_ci"] == [0.0, 0.0]
    assert (paired["a_only"], paired["b_only"], paired["mcnemar_p"]) == (0, 0, 1.0)
    assert all(row["change"] == 0.0 for row in paired["per_class"])
    assert verdict(0, 0, paired["mcnemar_p"], 0.05) == "no detectable difference (p = 1, alpha 0.05)"


def test_a_run_that_fixes_exactly_six_images() -> None:
    # 40 images, 10 per class; A is wrong on 12 of them; B is A with 6 of those errors fixed, all in class 2
    # (4 images) and class 3 (2 images), and nothing else changed.
    targets = np.repeat(np.arange(4), 10)
    preds_a = targets.copy()
    wrong = [0, 1, 11, 12, 13, 14, 20, 21, 22, 23, 30, 31]
    preds_a[wrong] = (targets[wrong] + 1) % 4
    preds_b = preds_a.copy()
    fixed = [20, 21, 22, 23, 30, 31]
    preds_b[fixed] = targets[fixed]
    paired = statistics.paired_comparison(preds_a, preds_b, targets, CLASSES)
    assert paired["top1_a"] == pytest.approx(28 / 40) and paired["top1_b"] == pytest.approx(34 / 40)
    assert paired["top1_diff"] == pytest.approx(6 / 40)
    assert paired["mean_class_acc_diff"] == pytest.approx((0.4 + 0.2) / 4)  # balanced classes: same as top-1
    assert (paired["a_only"], paired["b_only"]) == (0, 6)
    assert paired["mcnemar_p"] == pytest.approx(2 / 2**6)  # 0.03125
    assert [(r["class"], r["correct_a"], r["correct_b"]) for r in paired["per_class"]] == [
        ("A300B4", 6, 10), ("F/A-18", 8, 10), ("707-320", 8, 8), ("727-200", 6, 6)]  # largest gain first
    assert paired["per_class"][0]["change"] == pytest.approx(0.4)
    assert verdict(paired["a_only"], paired["b_only"], paired["mcnemar_p"], 0.05) == "B is better (p = 0.0312)"
    swapped = statistics.paired_comparison(preds_b, preds_a, targets, CLASSES)
    assert swapped["top1_diff"] == pytest.approx(-6 / 40) and swapped["mcnemar_p"] == paired["mcnemar_p"]
    assert verdict(swapped["a_only"], swapped["b_only"], swapped["mcnemar_p"], 0.05) == "A is better (p = 0.0312)"
    assert verdict(0, 6, paired["mcnemar_p"], 0.01).startswith("no detectable difference (p = 0.0312")


def test_mean_per_class_accuracy_can_move_while_top1_stays() -> None:
    # Class 0 has 3 images, class 1 has 1. A: all of class 0 right, class 1 wrong -> top-1 3/4, mean per-class
    # (1 + 0) / 2. B: 2 of class 0 right and class 1 right -> top-1 3/4, mean per-class (2/3 + 1) / 2.
    targets = np.array([0, 0, 0, 1])
    paired = statistics.paired_comparison(np.array([0, 0, 0, 0]), np.array([0, 0, 1, 1]), targets, CLASSES[:2])
    assert paired["top1_diff"] == 0.0
    assert paired["mean_class_acc_a"] == pytest.approx(0.5) and paired["mean_class_acc_b"] == pytest.approx(5 / 6)
    assert paired["mean_class_acc_diff"] == pytest.approx(1 / 3)
    assert (paired["a_only"], paired["b_only"], paired["mcnemar_p"]) == (1, 1, 1.0)


def test_paired_interval_holds_the_estimate_and_is_narrower_than_unpaired() -> None:
    # Two strongly correlated runs: B differs from A on 16 of 400 images. Pairing removes the image-to-image
    # variance both runs share, so the interval of the difference is far narrower than the one of two
    # independent resamples (whose width is about the root of the sum of the squared widths of each run's own).
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 4, size=400)
    preds_a = np.where(rng.random(400) < 0.75, targets, (targets + 1) % 4)
    preds_b = preds_a.copy()
    changed = rng.choice(400, size=16, replace=False)
    preds_b[changed] = np.where(preds_a[changed] == targets[changed], (targets[changed] + 2) % 4, targets[changed])
    paired = statistics.paired_comparison(preds_a, preds_b, targets, CLASSES)
    for key in ("top1", "mean_class_acc"):
        low, high = paired[f"{key}_diff_ci"]
        assert low < paired[f"{key}_diff"] < high, key
    low_a, high_a = statistics.bootstrap_ci(lambda idx: (preds_a[idx] == targets[idx]).mean(1), 400)
    low_b, high_b = statistics.bootstrap_ci(lambda idx: (preds_b[idx] == targets[idx]).mean(1), 400, seed=1)
    low, high = paired["top1_diff_ci"]
    assert high - low < 0.5 * np.hypot(high_a - low_a, high_b - low_b)
    assert paired["a_only"] + paired["b_only"] == 16
    assert statistics.paired_comparison(preds_a, preds_b, targets, CLASSES) == paired  # seeded: the same every time


# --- evaluation folders ----------------------------------------------------------------------


def write_evaluation(folder: Path, ids: list[str], targets: list[int], preds: list[int], split: str = "test",
                     classes: list[str] = CLASSES, writer: str = "direct") -> Path:
    """An evaluation folder of these top-1 predictions, each given probability 0.9: written by the real writer
    (``analyse``, from scores that put ``preds`` first) or, faster, directly with just what a comparison reads
    (its metrics.json, like an older fgvc's, has no ECE or Brier score)."""
    if writer == "analyse":
        scores = np.full((len(ids), len(classes)), 0.1 / (len(classes) - 1))
        scores[np.arange(len(ids)), preds] = TOP1_PROBABILITY
        analyse(scores, np.array(targets), classes, None, folder, extra={"split": split},
                files=[f"/data/images/{image_id}.jpg" for image_id in ids])
        return folder
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"split": split}))
    confusion = metrics.confusion_matrix(np.array(preds), np.array(targets), len(classes))
    with (folder / "confusion.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["true \\ predicted", *classes], *([c, *row] for c, row in zip(classes, confusion))])
    with (folder / "predictions.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["id", "true", "predicted", "probability"],
                                 *([i, classes[t], classes[p], f"{TOP1_PROBABILITY:.6f}"]
                                   for i, t, p in zip(ids, targets, preds, strict=True))])
    return folder


TOP1_PROBABILITY = 0.9
IDS = [f"{i:07d}" for i in (34309, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]  # leading zeros, as in FGVC-Aircraft
TARGETS = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
PREDS_A = [0, 0, 1, 1, 0, 0, 2, 3, 3, 3, 0, 0]  # 5 of 12 right
PREDS_B = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 0]  # A's 5 right plus 6 more: 11 of 12


def test_predictions_csv_carries_the_id_and_the_top_classes(tmp_path: Path) -> None:
    folder = write_evaluation(tmp_path / "eval", IDS, TARGETS, PREDS_A, writer="analyse")
    with (folder / "predictions.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    # 4 classes: the top 4, not 5.
    assert reader.fieldnames == ["id", "file", "true", "predicted", "probability", "predicted_2", "probability_2",
                                 "predicted_3", "probability_3", "predicted_4", "probability_4"]
    assert [row["id"] for row in rows] == IDS and rows[0]["id"] == "0034309"
    assert [row["predicted"] for row in rows] == [CLASSES[p] for p in PREDS_A]
    # The other three tie at 0.1/3: lower class index first.
    assert [rows[0][f"predicted_{r}"] for r in (2, 3, 4)] == ["727-200", "A300B4", "F/A-18"]
    assert float(rows[0]["probability"]) == pytest.approx(0.9) and float(rows[0]["probability_4"]) == \
        pytest.approx(0.1 / 3, abs=1e-6)


def test_compare_reads_folders_in_any_row_order_and_writes_the_report(tmp_path: Path) -> None:
    a = write_evaluation(tmp_path / "run-a" / "eval-test", IDS, TARGETS, PREDS_A, writer="analyse")
    order = np.random.default_rng(0).permutation(len(IDS))  # B lists the same images in another order
    b = write_evaluation(tmp_path / "run-b" / "eval-test", [IDS[i] for i in order], [TARGETS[i] for i in order],
                         [PREDS_B[i] for i in order], writer="analyse")
    comparison = compare(a, b)
    assert comparison["top1_a"] == pytest.approx(5 / 12) and comparison["top1_b"] == pytest.approx(11 / 12)
    assert (comparison["a_only"], comparison["b_only"]) == (0, 6)
    assert comparison["verdict"] == "B is better (p = 0.0312)"
    text = format_comparison(comparison, top=2)
    assert "top-1             41.67%   91.67%   +50.00" in text
    assert "0 right for A alone, 6 right for B alone: p = 0.0312" in text
    assert "classes that lost most (B - A):\n  none" in text and text.endswith("verdict: B is better (p = 0.0312)")
    assert text.count("points  ") == 2  # --top 2 gained, none lost
    assert default_out(comparison) == b / "compare-vs-run-a-eval-test.json"


def test_compare_reports_the_calibration_difference(tmp_path: Path) -> None:
    # Every guess is given 0.9 (one bin). A is right on 5 of 12: ECE |5/12 - 0.9| = 0.48333; B on 11 of 12:
    # |11/12 - 0.9| = 0.01667. Brier (4 classes, the other three at 0.1/3): a right image 0.1^2 + 3 (0.1/3)^2 =
    # 0.0133333, a wrong one 0.9^2 + (1 - 0.1/3)^2 + 2 (0.1/3)^2 = 1.7466667; B turns 6 wrong images right:
    # B - A = 6 (0.0133333 - 1.7466667) / 12 = -0.8666667.
    a = write_evaluation(tmp_path / "run-a" / "eval-test", IDS, TARGETS, PREDS_A, writer="analyse")
    b = write_evaluation(tmp_path / "run-b" / "eval-test", IDS, TARGETS, PREDS_B, writer="analyse")
    comparison = compare(a, b)
    assert comparison["ece_a"] == pytest.approx(0.9 - 5 / 12, abs=1e-6)
    assert comparison["ece_b"] == pytest.approx(11 / 12 - 0.9, abs=1e-6)
    assert comparison["ece_diff"] == pytest.approx(11 / 12 + 5 / 12 - 1.8, abs=1e-6)  # -0.46667
    low, high = comparison["ece_diff_ci"]
    assert low <= comparison["ece_diff"] <= high < 0
    assert comparison["brier_diff"] == pytest.approx(-0.8666667, abs=1e-6)
    assert comparison["brier_a"] == pytest.approx((5 * 0.0133333 + 7 * 1.7466667) / 12, abs=1e-6)
    text = format_comparison(comparison)
    assert "ECE               48.33%    1.67%   -46.67  (" in text
    assert "Brier score       1.0244   0.1578  -0.8667  (no interval" in text
    json.dumps(comparison, allow_nan=False)


def test_an_evaluation_without_calibration_in_its_metrics_json_still_compares(tmp_path: Path) -> None:
    # The direct writer's metrics.json has no ece or brier, as an older fgvc wrote it; predictions.csv still gives
    # each image's top-1 probability, so ECE is compared, the Brier score is not.
    old = write_evaluation(tmp_path / "old", IDS, TARGETS, PREDS_A)
    new = write_evaluation(tmp_path / "new", IDS, TARGETS, PREDS_B, writer="analyse")
    assert "ece" not in json.loads((old / "metrics.json").read_text())
    for comparison in (compare(old, new), compare(new, old)):
        assert abs(comparison["ece_diff"]) == pytest.approx(0.9 - 5 / 12 - (11 / 12 - 0.9), abs=1e-6)
        assert comparison["brier_a"] is comparison["brier_b"] is comparison["brier_diff"] is None
        assert comparison["verdict"].endswith("(p = 0.0312)")
        assert "Brier score      not compared: a metrics.json without it" in format_comparison(comparison)


def test_a_run_folder_stands_for_its_evaluation_split(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_evaluation(run / "eval-val", IDS, TARGETS, PREDS_A, split="val")
    (run / "config.json").write_text(json.dumps({"eval_split": "val"}))
    assert evaluation_folder(run) == run / "eval-val" and evaluation_folder(run / "eval-val") == run / "eval-val"
    (run / "config.json").write_text(json.dumps({"eval_split": "test"}))
    with pytest.raises(ComparisonError, match=r"eval-test/predictions.csv not found.*fgvc evaluate --checkpoint"):
        evaluation_folder(run)
    with pytest.raises(ComparisonError, match="neither an evaluation folder"):
        evaluation_folder(tmp_path)


def test_different_images_splits_or_classes_are_refused_naming_both_folders(tmp_path: Path) -> None:
    a = write_evaluation(tmp_path / "a", IDS, TARGETS, PREDS_A)
    fewer = write_evaluation(tmp_path / "fewer", [*IDS[2:], "9999999"], [*TARGETS[2:], 0], [*PREDS_B[2:], 0])
    with pytest.raises(ComparisonError) as refused:
        compare(a, fewer)
    message = str(refused.value)
    assert str(a) in message and str(fewer) in message
    assert "2 images of A are not in B, first: 0034309; 1 image of B is not in A, first: 9999999" in message
    relabelled = write_evaluation(tmp_path / "relabelled", IDS, [1, *TARGETS[1:]], PREDS_A)
    with pytest.raises(ComparisonError, match="1 image of A is not in B, first: 0034309"):
        compare(a, relabelled)  # the same file with another true class is another image
    with pytest.raises(ComparisonError, match="evaluate different splits: 'test' and 'val'"):
        compare(a, write_evaluation(tmp_path / "val", IDS, TARGETS, PREDS_A, split="val"))
    renamed = write_evaluation(tmp_path / "renamed", IDS, TARGETS, PREDS_A, classes=[*CLASSES[:3], "Tornado"])
    with pytest.raises(ComparisonError, match="different class lists: 1 class of A is not in B, first: 'F/A-18'"):
        compare(a, renamed)


def test_a_predictions_file_from_an_older_fgvc_is_refused(tmp_path: Path) -> None:
    a = write_evaluation(tmp_path / "a", IDS, TARGETS, PREDS_A)
    old = write_evaluation(tmp_path / "old", IDS, TARGETS, PREDS_A)
    (old / "predictions.csv").write_text("file,true,predicted,probability\n/data/images/0034309.jpg,707-320,"
                                         "707-320,0.900000\n")
    with pytest.raises(ComparisonError, match=r"old/predictions.csv has no column id: .*older fgvc"):
        compare(a, old)


def test_cli_prints_writes_and_refuses_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_evaluation(tmp_path / "run-a" / "eval-test", IDS, TARGETS, PREDS_A)
    b = write_evaluation(tmp_path / "run-b" / "eval-test", IDS, TARGETS, PREDS_B)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    written = b / "compare-vs-run-a-eval-test.json"
    assert "verdict: B is better (p = 0.0312)" in out and f"written to {written}" in out
    assert json.loads(written.read_text())["b_only"] == 6
    assert written.with_suffix(".txt").read_text() in out
    assert main(["compare", str(b), str(a), "--alpha", "0.01", "--out", str(tmp_path / "ba.json")]) == 0
    assert "verdict: no detectable difference (p = 0.0312, alpha 0.01)" in capsys.readouterr().out
    assert json.loads((tmp_path / "ba.json").read_text())["a_only"] == 6
    assert main(["compare", str(a), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgvc: error: ") and str(tmp_path) in err and "Traceback" not in err
    assert main(["compare", str(a), str(b), "--alpha", "5"]) == 2
    assert "alpha must be in (0, 1), got 5.0" in capsys.readouterr().err
    (b / "confusion.csv").unlink()  # a folder of records that kept metrics.json and predictions.csv alone
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert f"{b / 'confusion.csv'} not found" in err and "Traceback" not in err


# --- a real run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(make_dataset: MakeDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run on a tiny 6-class synthetic dataset (5 images a class, 32 px): real files, written in seconds."""
    from fgvc.training.engine import fit

    root = make_dataset(NUM_CLASSES, 5, size=(48, 68))
    run_dir = tmp_path_factory.mktemp("runs") / "small"
    return fit(tiny_config(root, run_dir, epochs=1, img_size=32, batch_size=8), progress=False)


def test_a_real_evaluation_writes_the_top5_and_compares_equal_to_the_run(small_run: Path, tmp_path: Path) -> None:
    analysis = evaluate_checkpoint(small_run / "last.pt", "test", device="cpu", out=tmp_path / "again")
    with (tmp_path / "again" / "predictions.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames[:5] == ["id", "file", "true", "predicted", "probability"]
    assert reader.fieldnames[-6:] == ["predicted_5", "probability_5",  # 6 classes: the top 5, then the hierarchy
                                      "top_family", "top_family_probability", "top_manufacturer",
                                      "top_manufacturer_probability"]
    assert all(row["id"] == Path(row["file"]).stem and len(row["id"]) == 7 for row in rows)
    for row in rows:
        top = [row["predicted"], *(row[f"predicted_{r}"] for r in range(2, 6))]
        probabilities = [float(row["probability"]), *(float(row[f"probability_{r}"]) for r in range(2, 6))]
        assert len(set(top)) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert np.mean([row["predicted"] == row["true"] for row in rows]) == pytest.approx(analysis.report["top1"])
    comparison = compare(small_run, tmp_path / "again")  # the run's own eval-test/ against a fresh evaluation
    assert comparison["a"] == str(small_run / "eval-test") and comparison["num_samples"] == len(rows)
    assert comparison["top1_a"] == pytest.approx(analysis.report["top1"])
    assert comparison["top1_diff"] == 0.0 and comparison["mcnemar_p"] == 1.0
    assert comparison["verdict"].startswith("no detectable difference")


# --- provenance: is the comparison fair? -------------------------------------------------------


def fingerprint(split: str, digest: str) -> dict:
    return {"split": split, "images": len(IDS), "classes": len(CLASSES), "sha256": digest * 64}


COMMIT = "1234567890abcdef" * 2 + "12345678"


def with_facts(folder: Path, data: dict | None = None, code: list[dict] | None = None,
               train_data: list[dict] | None = None) -> Path:
    """Add to an evaluation folder's metrics.json what ``provenance.evaluation_facts`` records: by default
    test data "a", one session at COMMIT (clean) trained on trainval data "t"."""
    report = json.loads((folder / "metrics.json").read_text())
    report["data"] = data or fingerprint("test", "a")
    report["trained_with"] = {"code": code or [{"commit": COMMIT, "dirty": False, "diff_sha256": None}],
                              "train_data": train_data or [fingerprint("trainval", "t")]}
    (folder / "metrics.json").write_text(json.dumps(report))
    return folder


def test_compare_warns_when_data_or_code_differ_and_says_what_it_cannot_check(tmp_path: Path) -> None:
    def evaluation(name: str, **facts: object) -> Path:
        return with_facts(write_evaluation(tmp_path / name, IDS, TARGETS, PREDS_B), **facts)

    a = evaluation("a")
    assert compare(a, evaluation("same"))["warnings"] == []
    assert compare(a, evaluation("other-data", data=fingerprint("test", "b")))["warnings"] == [
        f"A and B were evaluated on different data: test {'a' * 12} (12 images) and test {'b' * 12} (12 images)"]
    assert compare(a, evaluation("other-training", train_data=[fingerprint("trainval", "u")]))["warnings"] == [
        f"A and B were trained on different data: A on trainval {'t' * 12} (12 images), "
        f"B on trainval {'u' * 12} (12 images)"]
    dirty = [{"commit": COMMIT, "dirty": True, "diff_sha256": "d" * 64}]
    assert compare(a, evaluation("dirty", code=dirty))["warnings"] == [
        f"A and B were trained by different code: A at {COMMIT[:10]}, B at {COMMIT[:10]} with uncommitted "
        f"changes {'d' * 12}"]
    other_changes = evaluation("other-changes", code=[{**dirty[0], "diff_sha256": "e" * 64}])
    assert compare(evaluation("dirty-too", code=dirty), other_changes)["warnings"][0].startswith(
        "A and B were trained by different code")  # the same commit, other uncommitted changes
    resumed = [{"commit": COMMIT, "dirty": False, "diff_sha256": None}, {"commit": "f" * 40, "dirty": False,
                                                                         "diff_sha256": None}]
    assert compare(a, evaluation("resumed", code=resumed))["warnings"] == [
        f"A and B were trained by different code: A at {COMMIT[:10]}, B at {COMMIT[:10]} then {'f' * 10}"]
    outside = [{"commit": None, "dirty": None, "diff_sha256": None}]
    assert compare(evaluation("outside", code=outside), a)["warnings"] == [
        "cannot check that A and B were trained by the same code: A was trained outside a git checkout"]

    older = write_evaluation(tmp_path / "older", IDS, TARGETS, PREDS_A)  # metrics.json of an older fgvc
    comparison = compare(older, a)
    assert comparison["warnings"] == [
        "cannot check that A and B were evaluated on the same data: A has no data fingerprint (evaluated by an "
        "older fgvc)",
        "cannot check that A and B were trained on the same data by the same code: A's checkpoint has no record "
        "of them (an older run or an ONNX model)"]
    assert comparison["verdict"] == "B is better (p = 0.0312)"  # a caveat, not an error


def test_the_warnings_are_in_the_text_and_the_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = with_facts(write_evaluation(tmp_path / "run-a" / "eval-test", IDS, TARGETS, PREDS_A))
    b = with_facts(write_evaluation(tmp_path / "run-b" / "eval-test", IDS, TARGETS, PREDS_B),
                   data=fingerprint("test", "b"))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    warning = f"A and B were evaluated on different data: test {'a' * 12} (12 images) and test {'b' * 12} (12 images)"
    assert f"B: {b}\nwarning: {warning}\n" in out
    written = json.loads((b / "compare-vs-run-a-eval-test.json").read_text())
    assert written["warnings"] == [warning]
    assert f"warning: {warning}" in (b / "compare-vs-run-a-eval-test.txt").read_text()
