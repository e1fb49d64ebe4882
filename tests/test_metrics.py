"""Evaluation math checked against values worked out by hand, plus the confusion and reliability figures and the
figures of images."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from matplotlib.axes._secondary_axes import SecondaryAxis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from fgvc.data.hierarchy import Hierarchy, ParentLevel, parent_index
from fgvc.evaluation import metrics, statistics
from fgvc.evaluation.analysis import summarize
from fgvc.evaluation.plots import (
    cam_figure,
    confusion_figure,
    confusion_pairs_figure,
    overlays_figure,
    reliability_figure,
    samples_figure,
)
from fgvc.models.backbones import model_spec
from fgvc.models.gradcam import Explanation

# One hand example used throughout: 4 classes A, B, C, D; 9 samples.
#   true A (3 samples): predicted A, A, C  -> 2/3 correct
#   true B (2 samples): predicted A, A     -> 0/2 correct; B is never predicted
#   true C (4 samples): predicted C, C, A, D -> 2/4 correct
#   true D (0 samples): no support, but D is predicted once
NAMES = ["A", "B", "C", "D"]
TARGETS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
PREDS = np.array([0, 0, 2, 0, 0, 2, 2, 0, 3])
CONFUSION = np.array(
    [
        [2, 0, 1, 0],
        [2, 0, 0, 0],
        [1, 0, 2, 1],
        [0, 0, 0, 0],
    ]
)
# Families: X = {A, B}, Y = {C, D}.
FAMILY_OF = np.array([0, 0, 1, 1])
FAMILIES = ["X", "Y"]
HIERARCHY = Hierarchy({"family": ParentLevel(FAMILY_OF, FAMILIES)})


def _plain(value: object) -> bool:
    """True when every leaf is a JSON-native Python value (no numpy scalars, no NaN)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or type(value) in (int, str, bool)


# --- topk_hits ---------------------------------------------------------------------------


def test_topk_hits_plain_ranking() -> None:
    # Row 0: true class 2 scores 0.4; only class 1 (0.5) is higher -> rank 1: miss at k=1, hit at k=2.
    # Row 1: true class 1 scores 0.9, the highest -> rank 0: hit at k=1.
    scores = np.array([[0.1, 0.5, 0.4], [0.05, 0.9, 0.05]])
    targets = np.array([2, 1])
    assert metrics.topk_hits(scores, targets, 1).tolist() == [False, True]
    assert metrics.topk_hits(scores, targets, 2).tolist() == [True, True]


def test_topk_hits_ties_favour_lower_index() -> None:
    # Classes 0 and 1 tie at 0.3.
    # True class 0: nothing higher, no tied class with a lower index -> rank 0 -> top-1 hit.
    # True class 1: nothing higher, tied class 0 has a lower index -> rank 1 -> top-1 miss, top-2 hit.
    scores = np.array([[0.3, 0.3, 0.1], [0.3, 0.3, 0.1]])
    targets = np.array([0, 1])
    assert metrics.topk_hits(scores, targets, 1).tolist() == [True, False]
    assert metrics.topk_hits(scores, targets, 2).tolist() == [True, True]
    # Top-1 under the tie rule agrees with argmax (first maximum).
    assert (scores.argmax(1) == targets).tolist() == [True, False]


def test_topk_hits_all_tied_and_k_at_least_num_classes() -> None:
    # All four scores equal, true class 3: three tied classes have a lower index -> rank 3.
    tied = np.zeros((1, 4))
    assert metrics.topk_hits(tied, np.array([3]), 3).tolist() == [False]
    assert metrics.topk_hits(tied, np.array([3]), 4).tolist() == [True]
    # The worst-ranked class (rank C-1 = 2) still hits whenever k >= C.
    scores = np.array([[1.0, 2.0, 3.0]])
    assert metrics.topk_hits(scores, np.array([0]), 2).tolist() == [False]
    assert metrics.topk_hits(scores, np.array([0]), 3).tolist() == [True]
    assert metrics.topk_hits(scores, np.array([0]), 10).tolist() == [True]


def test_topk_hits_accepts_negative_logits() -> None:
    # Logits: true class 0 at -1.0 is below class 2 (-0.5) only -> rank 1.
    scores = np.array([[-1.0, -3.0, -0.5]])
    assert metrics.topk_hits(scores, np.array([0]), 1).tolist() == [False]
    assert metrics.topk_hits(scores, np.array([0]), 2).tolist() == [True]


# --- confusion matrix and per-class accuracy ---------------------------------------------


def test_confusion_matrix_hand_example() -> None:
    confusion = metrics.confusion_matrix(PREDS, TARGETS, 4)
    assert confusion.dtype == np.int64
    np.testing.assert_array_equal(confusion, CONFUSION)
    assert confusion.sum() == 9


def test_per_class_accuracy_never_predicted_and_no_support() -> None:
    # A: 2/3, B: 0/2 (never predicted -> 0, not NaN), C: 2/4, D: no support -> NaN.
    accuracy = metrics.per_class_accuracy(CONFUSION)
    np.testing.assert_allclose(accuracy[:3], [2 / 3, 0.0, 0.5])
    assert np.isnan(accuracy[3])


def test_mean_class_accuracy_skips_unsupported_counts_unpredicted() -> None:
    # Mean over the classes present in the targets (A, B, C): (2/3 + 0 + 1/2) / 3 = 7/18.
    assert metrics.mean_class_accuracy(CONFUSION) == pytest.approx(7 / 18)
    # Overall accuracy differs: 4 correct of 9.
    assert np.trace(CONFUSION) / CONFUSION.sum() == pytest.approx(4 / 9)


# --- bootstrap -----------------------------------------------------------------------------


def _hits(n: int, rate: float) -> np.ndarray:
    hits = np.zeros(n, dtype=bool)
    hits[: round(n * rate)] = True
    return hits


def test_bootstrap_ci_contains_estimate_and_narrows_with_n() -> None:
    small, large = _hits(50, 0.8), _hits(5000, 0.8)  # the same hit rate, 0.8
    lo_s, hi_s = statistics.bootstrap_ci(lambda idx: small[idx].mean(1), 50)
    lo_l, hi_l = statistics.bootstrap_ci(lambda idx: large[idx].mean(1), 5000)
    assert lo_s <= 0.8 <= hi_s
    assert lo_l <= 0.8 <= hi_l
    # Standard error sqrt(0.8 * 0.2 / n): 0.057 at n=50, 0.0057 at n=5000, so a 95 % interval
    # is about 0.22 wide at n=50 and 0.022 at n=5000.
    assert 0.15 < hi_s - lo_s < 0.3
    assert 0.015 < hi_l - lo_l < 0.03
    assert type(lo_s) is float and type(hi_s) is float


def test_bootstrap_ci_passes_blocks_of_resampled_indices_and_is_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []

    def record(idx: np.ndarray) -> np.ndarray:
        seen.append(idx)
        return np.ones(idx.shape[0])

    monkeypatch.setattr(statistics, "RESAMPLED_INDICES", 7 * 8)  # blocks of 8 resamples of 7
    # A constant statistic has a zero-width interval.
    assert statistics.bootstrap_ci(record, 7, num_samples=20) == (1.0, 1.0)
    assert [idx.shape for idx in seen] == [(8, 7), (8, 7), (4, 7)]
    drawn = np.concatenate(seen)
    assert drawn.min() >= 0 and drawn.max() < 7 and len({row.tobytes() for row in drawn}) > 10  # rows differ
    values = np.arange(30.0)
    first = statistics.bootstrap_ci(lambda idx: values[idx].mean(1), 30, seed=3)
    assert first == statistics.bootstrap_ci(lambda idx: values[idx].mean(1), 30, seed=3)
    assert first != statistics.bootstrap_ci(lambda idx: values[idx].mean(1), 30, seed=4)
    with pytest.raises(ValueError, match="statistic gave 3 values for 20 resamples; expected one per row"):
        statistics.bootstrap_ci(lambda idx: np.ones(1), 7, num_samples=20)  # one value for each block of 8


def test_resampled_metrics_equal_the_metric_of_each_resample() -> None:
    rng = np.random.default_rng(0)
    targets, preds = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
    confidence, right = rng.uniform(0.2, 1.0, 40), preds == targets
    resamples = rng.integers(0, 40, size=(6, 40))
    resamples[0, :] = 3  # one class only: the mean is over the classes present
    expected_mca = [metrics.mean_class_accuracy(metrics.confusion_matrix(preds[i], targets[i], 5)) for i in resamples]
    expected_ece = [metrics.expected_calibration_error(confidence[i], right[i]) for i in resamples]
    assert metrics.resampled_mean_class_accuracies(right, targets, 5, resamples) == pytest.approx(expected_mca)
    assert metrics.resampled_calibration_errors(confidence, right, resamples) == pytest.approx(expected_ece)


# --- most confused pairs -------------------------------------------------------------------


def test_most_confused_pairs_order_and_share() -> None:
    # Off-diagonal cells: B->A 2, A->C 1, C->A 1, C->D 1.
    # B->A first (count 2; share 2 of B's 2 samples = 1.0); the count-1 ties follow in
    # true-then-predicted index order: A->C (1/3), C->A (1/4), C->D (1/4).
    pairs = metrics.most_confused_pairs(CONFUSION, NAMES)
    assert pairs == [
        {"true": "B", "predicted": "A", "count": 2, "share": 1.0},
        {"true": "A", "predicted": "C", "count": 1, "share": pytest.approx(1 / 3)},
        {"true": "C", "predicted": "A", "count": 1, "share": 0.25},
        {"true": "C", "predicted": "D", "count": 1, "share": 0.25},
    ]
    assert [p["true"] + p["predicted"] for p in metrics.most_confused_pairs(CONFUSION, NAMES, top=2)] == ["BA", "AC"]
    assert metrics.most_confused_pairs(np.diag([3, 4]), ["A", "B"]) == []


# --- hierarchy -----------------------------------------------------------------------------


def test_parents_of_labels() -> None:
    # C -> Y (1), A -> X (0), B -> X (0).
    assert HIERARCHY.parents(np.array([2, 0, 1]), "family").tolist() == [1, 0, 0]


def test_parent_index_from_pairs() -> None:
    # Pairs repeat once per image; A and B belong to X, C and D to Y.
    pairs = [("A", "X"), ("C", "Y"), ("B", "X"), ("A", "X"), ("D", "Y")]
    parent_of = parent_index(NAMES, FAMILIES, pairs)
    assert parent_of.dtype == np.int64
    assert parent_of.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("A", "X"), ("B", "X"), ("C", "Y"), ("D", "Y"), ("A", "Y")], "child 'A' maps to two parents"),
        ([("A", "X"), ("B", "X"), ("D", "Y")], "child 'C' has no parent"),
        ([("A", "X"), ("E", "X")], "child 'E' is not one of"),
        ([("A", "Z")], "parent 'Z' of child 'A'"),
    ],
)
def test_parent_index_errors_name_the_child(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parent_index(NAMES, FAMILIES, pairs)


# --- summarize -----------------------------------------------------------------------------


def test_summarize_hand_example() -> None:
    scores = np.eye(4)[PREDS]  # one-hot: argmax is exactly PREDS
    report = summarize(scores, TARGETS, NAMES, hierarchy=HIERARCHY, num_bootstrap=200)
    json.dumps(report, allow_nan=False)
    assert _plain(report)
    assert report["num_samples"] == 9
    assert report["top1"] == pytest.approx(4 / 9)  # 2 (A) + 0 (B) + 2 (C) correct of 9
    # top5 uses k = min(5, 4) = 4 = C, so every sample hits.
    assert report["top5"] == 1.0
    assert report["mean_class_acc"] == pytest.approx(7 / 18)
    for name in ("top1", "top5", "mean_class_acc"):
        lo, hi = report[f"{name}_ci"]
        assert lo <= report[name] <= hi
    # Worst first (B 0.0, C 0.5, A 0.667), D without support last.
    assert report["per_class"] == [
        {"class": "B", "accuracy": 0.0, "support": 2},
        {"class": "C", "accuracy": 0.5, "support": 4},
        {"class": "A", "accuracy": pytest.approx(2 / 3), "support": 3},
        {"class": "D", "accuracy": None, "support": 0},
    ]
    assert report["confusions"] == metrics.most_confused_pairs(CONFUSION, NAMES)
    # Families of predictions: [X X Y X X Y Y X Y]; of targets: [X X X X X Y Y Y Y].
    # They agree on 7 of 9 samples (all but A->C and C->A).
    assert report["family_top1"] == pytest.approx(7 / 9)
    # 5 variant errors (A->C, B->A, B->A, C->A, C->D); 3 stay in the family (B->A twice, C->D).
    assert report["family_errors_within"] == pytest.approx(3 / 5)


def test_summarize_without_errors_reports_none_within() -> None:
    scores = np.eye(4)[TARGETS]
    report = summarize(scores, TARGETS, NAMES, hierarchy=HIERARCHY, num_bootstrap=50)
    assert report["top1"] == 1.0
    assert report["family_top1"] == 1.0
    assert report["family_errors_within"] is None
    assert report["confusions"] == []
    assert "family_top1" not in summarize(scores, TARGETS, NAMES, num_bootstrap=10)
    json.dumps(report, allow_nan=False)


# --- calibration: ECE and Brier score ------------------------------------------------------


def top1_scores(confidence: list[float], predicted: list[int], num_classes: int = 4) -> np.ndarray:
    """Probability rows whose top class is ``predicted`` with probability ``confidence``; the rest share what is left
    equally (every confidence here is above 1/num_classes, so the top class is the predicted one)."""
    scores = np.repeat((1.0 - np.array(confidence))[:, None] / (num_classes - 1), num_classes, axis=1)
    scores[np.arange(len(confidence)), predicted] = confidence
    return scores


# 10 images, all guessed class 0. 4 at probability 0.95, 2 of them right (bin (14/15, 1]: accuracy 0.5, gap 0.45);
# 6 at 0.75, 3 of them right (bin (11/15, 12/15]: accuracy 0.5, gap 0.25). ECE = 0.4 * 0.45 + 0.6 * 0.25 = 0.33.
OVERCONFIDENT = top1_scores([0.95] * 4 + [0.75] * 6, [0] * 10)
OVERCONFIDENT_TARGETS = np.array([0, 0, 1, 2, 0, 0, 0, 1, 2, 3])


def test_ece_of_an_overconfident_model_matches_the_hand_computed_value() -> None:
    report = summarize(OVERCONFIDENT, OVERCONFIDENT_TARGETS, NAMES, num_bootstrap=200)
    assert report["ece"] == pytest.approx(0.33, abs=1e-9)
    filled = [b for b in report["reliability_bins"] if b["images"]]
    assert [(b["low"], b["high"], b["images"]) for b in filled] == [
        (pytest.approx(11 / 15), pytest.approx(12 / 15), 6), (pytest.approx(14 / 15), 1.0, 4)]
    assert [(b["accuracy"], b["confidence"]) for b in filled] == [(0.5, pytest.approx(0.75)),
                                                                    (0.5, pytest.approx(0.95))]
    assert len(report["reliability_bins"]) == metrics.CALIBRATION_BINS == 15
    assert all(b["accuracy"] is None for b in report["reliability_bins"] if not b["images"])
    low, high = report["ece_ci"]
    assert 0.0 <= low <= high <= 1.0 and low < 0.33 < high
    json.dumps(report, allow_nan=False)


def test_ece_of_calibrated_predictions_is_about_zero() -> None:
    # Exactly calibrated: in each bin the share of right guesses equals the probability given to them.
    # 10 images at 0.8 with 8 right, 4 at 0.5 with 2 right.
    right = [True] * 8 + [False] * 2 + [True] * 2 + [False] * 2
    assert metrics.expected_calibration_error(np.array([0.8] * 10 + [0.5] * 4), np.array(right)) == pytest.approx(
        0.0, abs=1e-12)
    # Calibrated in expectation: a two-class model whose top-1 probability c in [0.5, 1] is right with probability c.
    # 60,000 images, about 4,000 a bin: each bin's accuracy is off by sampling noise alone (about 0.006).
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 60_000)
    targets = (rng.random(60_000) >= confidence).astype(np.int64)  # class 0 (the guess) with probability c
    scores = np.stack([confidence, 1.0 - confidence], axis=1)
    calibrated = summarize(scores, targets, NAMES[:2], num_bootstrap=20)
    assert calibrated["ece"] < 0.01
    # The same guesses, each claimed 0.2 surer than it is (capped at 1): ECE near 0.2.
    sure = np.minimum(confidence + 0.2, 1.0)
    overconfident = metrics.expected_calibration_error(sure, targets == 0)
    assert overconfident == pytest.approx(np.mean(sure - confidence), abs=0.01)


def test_calibration_bins_close_on_the_right_and_hold_zero_and_one() -> None:
    # Bin b holds (b/15, (b+1)/15]: 1/15 itself is in bin 0, a hair above it in bin 1; 0 is in bin 0, 1 in bin 14.
    bins = metrics.reliability_bins(np.array([0.0, 1 / 15, 1 / 15 + 1e-9, 1.0]), np.array([False, True, True, True]))
    assert [b["images"] for b in bins] == [2, 1] + [0] * 12 + [1]
    assert bins[0]["accuracy"] == 0.5 and bins[0]["confidence"] == pytest.approx(1 / 30)


@pytest.mark.parametrize("num_classes", [2, 4, 100])
def test_brier_score_of_sure_right_uniform_and_sure_wrong_predictions(num_classes: int) -> None:
    targets = np.arange(12) % num_classes
    assert metrics.brier_scores(np.eye(num_classes)[targets], targets) == pytest.approx(np.zeros(12), abs=1e-12)
    uniform = np.full((12, num_classes), 1.0 / num_classes)
    # (1 - 1/K)^2 for the true class plus (K - 1) * (1/K)^2 for the others = 1 - 1/K.
    assert metrics.brier_scores(uniform, targets) == pytest.approx(np.full(12, 1.0 - 1.0 / num_classes), abs=1e-12)
    wrong = np.eye(num_classes)[(targets + 1) % num_classes]
    assert metrics.brier_scores(wrong, targets) == pytest.approx(np.full(12, 2.0), abs=1e-12)


def test_summarize_reports_the_brier_score_with_its_interval() -> None:
    # OVERCONFIDENT by hand: a right image at 0.95 scores 0.05^2 + 3 (0.05/3)^2 = 0.0025 + 0.0008333 = 0.0033333;
    # a wrong one 0.95^2 + (1 - 0.05/3)^2 + 2 (0.05/3)^2 = 0.9025 + 0.9669444 + 0.0005556 = 1.87. At 0.75: right
    # 0.0625 + 0.0208333 = 0.0833333; wrong 0.5625 + 0.8402778 + 0.0138889 = 1.4166667.
    # Mean: (2 * 0.0033333 + 2 * 1.87 + 3 * 0.0833333 + 3 * 1.4166667) / 10 = 8.2466667 / 10 = 0.8246667.
    report = summarize(OVERCONFIDENT, OVERCONFIDENT_TARGETS, NAMES, num_bootstrap=200)
    assert report["brier"] == pytest.approx(0.8246667, abs=1e-6)
    low, high = report["brier_ci"]
    assert low < report["brier"] < high


def test_reliability_figure_shows_the_bins_and_the_ece(tmp_path) -> None:
    report = summarize(OVERCONFIDENT, OVERCONFIDENT_TARGETS, NAMES, num_bootstrap=10)
    fig = reliability_figure(report["reliability_bins"], report["ece"])
    accuracy_ax, count_ax = fig.axes
    assert "ECE 33.00%" in accuracy_ax.get_title()
    assert [bar.get_height() for bar in accuracy_ax.patches] == [0.5, 0.5]  # one bar per bin with images
    assert [bar.get_height() for bar in count_ax.patches] == [6, 4]
    assert [text.get_text() for text in count_ax.texts] == ["6", "4"]
    path = tmp_path / "reliability.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- input validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.topk_hits(np.zeros((2, 3)), np.array([0, 1]), 0), "k must be >= 1, got 0"),
        (
            lambda: metrics.topk_hits(np.zeros(3), np.array([0]), 1),
            r"scores must be a non-empty \(N, C\) matrix, got shape \(3,\)",
        ),
        (lambda: metrics.topk_hits(np.zeros((0, 3)), np.array([], dtype=int), 1), r"got shape \(0, 3\)"),
        (
            lambda: metrics.topk_hits(np.zeros((2, 3)), np.array([0, 1, 2]), 1),
            "targets has 3 entries but scores has 2 rows",
        ),
        (
            lambda: metrics.topk_hits(np.zeros((2, 3)), np.array([0, 3]), 1),
            r"targets must lie in \[0, 2\] for 3 classes, got values in \[0, 3\]",
        ),
        (
            lambda: metrics.topk_hits(np.zeros((2, 3)), np.array([0.0, 1.0]), 1),
            "targets must hold integer class indices, got dtype float64",
        ),
        (lambda: metrics.topk_hits(np.full((1, 2), np.nan), np.array([0]), 1), "scores contain 2 NaN values"),
        (lambda: metrics.confusion_matrix(np.array([0, 1]), np.array([0]), 2), "preds has 2 entries but targets has 1"),
        (lambda: metrics.confusion_matrix(np.array([], dtype=int), np.array([], dtype=int), 2), "preds is empty"),
        (lambda: metrics.confusion_matrix(np.array([0]), np.array([0]), 0), "num_classes must be >= 1, got 0"),
        (lambda: metrics.per_class_accuracy(np.zeros((2, 3))), r"square \(C, C\) matrix, got shape \(2, 3\)"),
        (lambda: metrics.mean_class_accuracy(np.zeros((2, 2))), "confusion has no samples"),
        (lambda: statistics.bootstrap_ci(lambda idx: idx.mean(1), 0), "n must be >= 1, got 0"),
        (lambda: statistics.bootstrap_ci(lambda idx: idx.mean(1), 5, confidence=95),
         r"confidence must be in \(0, 1\), got 95"),
        (lambda: metrics.most_confused_pairs(CONFUSION, ["A"]), "class_names has 1 names; expected 4"),
        (lambda: HIERARCHY.parents(np.array([4]), "family"), r"labels must lie in \[0, 3\]"),
        (lambda: summarize(np.eye(4), np.arange(4), NAMES[:3]), "class_names has 3 names; expected 4"),
        (
            lambda: summarize(np.eye(4), np.arange(4), NAMES,
                                      hierarchy=Hierarchy({"family": ParentLevel(FAMILY_OF[:3], FAMILIES)})),
            r"the hierarchy's family level maps \(3,\) classes; expected \(4,\)",
        ),
        (
            lambda: Hierarchy({"family": ParentLevel(FAMILY_OF, ["X"])}),
            r"the family of each class must lie in \[0, 0\] for 1 classes",
        ),
        (lambda: Hierarchy({"family": ParentLevel(FAMILY_OF, ["Y", "X"])}), "family names must be distinct and sorted"),
        (
            lambda: summarize(np.array([[2.0, -1.0], [0.5, 0.3]]), np.array([0, 1]), NAMES[:2]),
            r"scores must be probabilities .* got entries in \[-1, 2\] and row 1 summing to 0.8: pass the softmax",
        ),
        (lambda: metrics.expected_calibration_error(np.array([1.5]), np.array([True])), r"must lie in \[0, 1\]"),
        (
            lambda: metrics.expected_calibration_error(np.array([0.5, 0.5]), np.array([True])),
            r"confidence and correct have shapes \(2,\) and \(1,\)",
        ),
        (lambda: metrics.expected_calibration_error(np.array([0.5]), np.array([1])), "correct must be booleans"),
        (lambda: metrics.reliability_bins(np.array([0.5]), np.array([True]), 0), "num_bins must be >= 1, got 0"),
    ],
)
def test_invalid_inputs_raise_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# --- confusion figure ----------------------------------------------------------------------


def _synthetic(num_classes: int, num_groups: int) -> tuple[np.ndarray, list[str], list[str]]:
    """A noisy confusion matrix; class c belongs to group c % num_groups (groups interleaved)."""
    rng = np.random.default_rng(0)
    targets = rng.integers(0, num_classes, 30 * num_classes)
    preds = np.where(rng.random(targets.size) < 0.85, targets, rng.integers(0, num_classes, targets.size))
    group_of = [f"Maker {c % num_groups}" for c in range(num_classes)]
    names = [f"M{c % num_groups} {c:03d}-{'XL' if c % 3 else 'F/A-18'}" for c in range(num_classes)]
    return metrics.confusion_matrix(preds, targets, num_classes), names, group_of


def test_confusion_figure_groups_normalises_and_saves(tmp_path) -> None:
    confusion, names, group_of = _synthetic(30, 10)
    fig = confusion_figure(confusion, names, group_of)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    # Groups are made adjacent: the first three rows are group 0 (classes 0, 10 and 20).
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:3] == [names[c] for c in range(0, 30, 10)]
    # Rows are shares of the true class.
    shown = np.ma.filled(ax.images[0].get_array(), 0.0)
    np.testing.assert_allclose(shown.sum(1), 1.0)
    path = tmp_path / "confusion_30.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_figure_size_grows_with_classes() -> None:
    widths = [confusion_figure(*_synthetic(c, 5)).get_size_inches()[0] for c in (10, 50, 100)]
    assert widths[0] >= 6
    assert widths[0] < widths[1] < widths[2]
    counts = confusion_figure(*_synthetic(10, 5), normalize=False)
    assert np.ma.filled(counts.axes[0].images[0].get_array(), 0.0).sum() == 300


@pytest.mark.parametrize(("num_classes", "normalize"), [(3, True), (30, False), (100, True)])
def test_confusion_figure_labels_lie_inside_it_and_clear_of_each_other(num_classes: int, normalize: bool) -> None:
    """The margins come from the labels' widths in the font: every label is drawn whole, inside the figure, and
    the groups named on the right stay left of the colour bar."""
    confusion, names, group_of = _synthetic(num_classes, 5)
    names[0] = "Messerschmitt Bf 109 G-6 with a long name"
    fig = confusion_figure(confusion, names, group_of, normalize=normalize)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    inside = fig.bbox
    texts = [text for ax in fig.axes for text in ax.findobj(Text) if text.get_text() and text.get_visible()]
    assert len(texts) > 2 * num_classes and all(text.get_fontsize() >= 5 for text in texts)  # readable at 100
    for text in texts:
        box = text.get_window_extent(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1, text
    matrix, colour_bar = fig.axes[0], fig.axes[1]
    groups_right = [child for child in matrix.get_children() if isinstance(child, SecondaryAxis)][-1]
    right_edge = max(label.get_window_extent(renderer).x1 for label in groups_right.get_yticklabels())
    assert right_edge < colour_bar.get_window_extent(renderer).x0


def test_confusion_figure_validates_shapes() -> None:
    with pytest.raises(ValueError, match=r"confusion has shape \(4, 4\); expected \(3, 3\)"):
        confusion_figure(CONFUSION, NAMES[:3])
    with pytest.raises(ValueError, match="group_of has 2 entries; expected 4"):
        confusion_figure(CONFUSION, NAMES, group_of=["X", "Y"])


def test_figures_of_images_show_bare_panels() -> None:
    """No frame and no ticks: ticks left hidden would still be made and laid out at every save."""
    samples = [(torch.rand(3, 8, 8), label) for label in (0, 1, 0, 1)]
    seen = Explanation(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), 0, 1, 0.6)
    for fig in (samples_figure(samples, ["a", "b"], model_spec("efficientnet-b0").norm, count=4),
                cam_figure([seen], ["a", "b"], [0]), overlays_figure({"x": seen, "y": seen}, "title"),
                confusion_pairs_figure([(seen, seen)], ["a", "b"])):
        assert fig.axes and all(ax.images for ax in fig.axes)
        assert all(not ax.axison and len(ax.get_xticks()) == len(ax.get_yticks()) == 0 for ax in fig.axes)
