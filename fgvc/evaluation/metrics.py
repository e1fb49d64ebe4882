"""Evaluation math for classification runs: plain numpy functions, no torch.

Typical use, with ``scores`` (N, C) softmax probabilities and ``targets`` (N,) (the ranking metrics also take
logits; ``summarize``, ECE and the Brier score need probabilities)::

    from fgvc.evaluation import metrics
    report = metrics.summarize(scores, targets, class_names, hierarchy)   # hierarchy: fgvc.data.hierarchy
    json.dump(report, fh)
    paired = metrics.paired_comparison(preds_a, preds_b, targets, class_names)  # is B better than A?

Accuracies are fractions in [0, 1]. Ties between scores are broken in favour of the
lower class index everywhere (``topk_hits``, and top-1 predictions via ``argmax``), so
every number here is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fgvc.core.labels import class_indices
from fgvc.data.hierarchy import Hierarchy

CALIBRATION_BINS = 15  # equal-width bins of the top-1 probability, for ECE and the reliability diagram
PROBABILITY_ROUNDING = 1e-3  # how far rounding may take a probability out of [0, 1], a row's sum from 1 (~1e-6)

__all__ = [
    "CALIBRATION_BINS",
    "bootstrap_ci",
    "brier_scores",
    "confusion_matrix",
    "expected_calibration_error",
    "mcnemar_exact",
    "mean_class_accuracy",
    "most_confused_pairs",
    "paired_comparison",
    "paired_ece",
    "paired_over_seeds",
    "per_class_accuracy",
    "reliability_bins",
    "summarize",
    "topk_hits",
]


def _square(confusion: np.ndarray) -> np.ndarray:
    """Return ``confusion`` as an array, checking that it is a non-empty square matrix."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.size == 0:
        raise ValueError(f"confusion must be a non-empty square (C, C) matrix, got shape {confusion.shape}")
    return confusion


def _scores_and_targets(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (N, C) score matrix and its (N,) targets."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (N, C) matrix, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"scores contain {int(np.isnan(scores).sum())} NaN values; expected finite scores")
    targets = class_indices(targets, scores.shape[1], "targets")
    if targets.shape[0] != scores.shape[0]:
        raise ValueError(
            f"targets has {targets.shape[0]} entries but scores has {scores.shape[0]} rows; expected equal"
        )
    return scores, targets


def topk_hits(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Whether each sample's true class is among its top ``k`` scores: bool array (N,).

    Ties are deterministic: the rank of the true class is the number of classes with a
    strictly higher score plus the number of classes with an equal score and a lower
    class index; a sample is a hit when that rank is below ``k``. Hence ``k >= C``
    always hits, and top-1 agrees with ``scores.argmax(1)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores, targets = _scores_and_targets(scores, targets)
    rows = np.arange(scores.shape[0])
    true_score = scores[rows, targets][:, None]
    lower_index = np.arange(scores.shape[1])[None, :] < targets[:, None]
    rank = (scores > true_score).sum(1) + ((scores == true_score) & lower_index).sum(1)
    return rank < k


def confusion_matrix(preds: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts as an int64 (C, C) matrix: rows are true classes, columns predicted classes."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    preds = class_indices(preds, num_classes, "preds")
    targets = class_indices(targets, num_classes, "targets")
    if preds.shape != targets.shape:
        raise ValueError(f"preds has {preds.shape[0]} entries but targets has {targets.shape[0]}; expected equal")
    counts = np.bincount(targets * num_classes + preds, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each true class, float (C,); NaN for classes without true samples."""
    confusion = _square(confusion)
    support = confusion.sum(1)
    correct = np.diag(confusion).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, correct / support, np.nan)


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """Mean per-class accuracy over classes present in the targets (FGVC-Aircraft's metric).

    A class that occurs in the targets but is never predicted counts as 0.
    """
    accuracy = per_class_accuracy(confusion)
    present = ~np.isnan(accuracy)
    if not present.any():
        raise ValueError("confusion has no samples; expected at least one true label")
    return float(accuracy[present].mean())


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """``scores`` checked to be probabilities: each entry in [0, 1], each row summing to 1."""
    low, high = float(scores.min()), float(scores.max())
    sums = scores.sum(1, dtype=np.float64)
    worst = int(np.abs(sums - 1.0).argmax())
    outside = low < -PROBABILITY_ROUNDING or high > 1.0 + PROBABILITY_ROUNDING
    if outside or abs(sums[worst] - 1.0) > PROBABILITY_ROUNDING:
        raise ValueError(f"scores must be probabilities (entries in [0, 1], rows summing to 1 within "
                         f"{PROBABILITY_ROUNDING:g}), got entries in [{low:.4g}, {high:.4g}] and row {worst} summing "
                         f"to {sums[worst]:.4g}: pass the softmax of the logits")
    return scores


def _confidences(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate each image's top-1 probability (N,) in [0, 1] and whether that guess is right (N,)."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct)
    if confidence.ndim != 1 or confidence.size == 0 or correct.shape != confidence.shape:
        raise ValueError(f"confidence and correct have shapes {confidence.shape} and {correct.shape}; expected the "
                         f"same non-empty (N,)")
    if confidence.min() < -PROBABILITY_ROUNDING or confidence.max() > 1.0 + PROBABILITY_ROUNDING:
        raise ValueError(f"confidence must lie in [0, 1], got values in [{confidence.min()}, {confidence.max()}]")
    if correct.dtype != bool:
        raise ValueError(f"correct must be booleans, got dtype {correct.dtype}")
    return confidence, correct


def _confidence_bins(confidence: np.ndarray, num_bins: int) -> np.ndarray:
    """The bin of each confidence: bin b holds (b / num_bins, (b + 1) / num_bins], bin 0 also 0 (and a rounding
    below it), the last bin also a rounding above 1."""
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    return np.digitize(confidence, np.linspace(0.0, 1.0, num_bins + 1)[1:-1], right=True)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               num_bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error of top-1 guesses: how far, on average, the probability a guess is given lies
    from how often such guesses are right.

    ``confidence`` is each image's top-1 probability and ``correct`` whether that guess is right. The images
    fall into ``num_bins`` equal-width bins of confidence ((0, 1/15], (1/15, 2/15], ..., (14/15, 1] by default;
    a confidence of 0 goes to the first); ECE is the sum over bins of |accuracy - mean confidence| of the bin,
    weighted by the share of images in it. 0 is perfectly calibrated; an overconfident model has a large ECE.
    """
    confidence, correct = _confidences(confidence, correct)
    bins = _confidence_bins(confidence, num_bins)
    gap_sums = np.bincount(bins, weights=correct - confidence, minlength=num_bins)
    return float(np.abs(gap_sums).sum() / confidence.size)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, num_bins: int = CALIBRATION_BINS) -> list[dict]:
    """The bins of ``expected_calibration_error``, each a dict (JSON-serialisable): ``low``, ``high`` (its
    edges), ``images``, and the ``accuracy`` and mean ``confidence`` of its images (None for an empty bin)."""
    confidence, correct = _confidences(confidence, correct)
    bins = _confidence_bins(confidence, num_bins)
    images = np.bincount(bins, minlength=num_bins)
    right = np.bincount(bins, weights=correct.astype(np.float64), minlength=num_bins)
    sure = np.bincount(bins, weights=confidence, minlength=num_bins)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    return [{"low": float(edges[b]), "high": float(edges[b + 1]), "images": int(images[b]),
             "accuracy": float(right[b] / images[b]) if images[b] else None,
             "confidence": float(sure[b] / images[b]) if images[b] else None} for b in range(num_bins)]


def brier_scores(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each image's multi-class Brier score, float64 (N,): the sum over classes of (p_k - y_k)^2, with y the
    one-hot true class. 0 for a sure right guess, 2 for a sure wrong one, 1 - 1/C for uniform probabilities;
    the Brier score of a set of images is the mean."""
    probabilities, targets = _scores_and_targets(probabilities, targets)
    one_hot = np.eye(probabilities.shape[1])[targets]
    return ((_probabilities(probabilities).astype(np.float64) - one_hot) ** 2).sum(1)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``n`` samples.

    ``statistic`` receives an index array drawn with replacement from ``range(n)`` and
    returns the metric computed on that resample.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(num_samples)], dtype=np.float64)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs of two classifiers on the same samples.

    ``a_only`` samples are right for A alone and ``b_only`` for B alone. Under "no difference" each
    discordant sample is a fair coin, so the p-value is twice the smaller binomial tail of
    Binomial(a_only + b_only, 1/2), capped at 1; computed with exact integers.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got a_only={a_only}, b_only={b_only}")
    n = a_only + b_only
    term = tail = 1  # C(n, 0); then C(n, i + 1) = C(n, i) * (n - i) / (i + 1), exactly in integers
    for i in range(min(a_only, b_only)):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**n)


def paired_comparison(
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    targets: np.ndarray,
    class_names: list[str],
    num_bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Two classifiers' top-1 predictions on the same samples, compared pair by pair (JSON-serialisable).

    Keys: ``num_samples``; ``top1_a``, ``top1_b``, ``mean_class_acc_a``, ``mean_class_acc_b``; the differences
    ``top1_diff`` and ``mean_class_acc_diff`` (B - A), each with a 95 % paired-bootstrap interval ``{name}_ci``
    (every resample draws the samples once and scores both classifiers on it; same resamples as ``summarize``
    with the same seed); ``a_only`` / ``b_only`` (samples right for that classifier alone) and ``mcnemar_p``
    (``mcnemar_exact``); ``per_class`` for every class with samples: ``class``, ``support``, ``correct_a``,
    ``correct_b``, ``accuracy_a``, ``accuracy_b``, ``change`` (B - A), largest gain first, ties by class index.
    """
    num_classes = len(class_names)
    targets = class_indices(targets, num_classes, "targets")
    preds_a = class_indices(preds_a, num_classes, "preds_a")
    preds_b = class_indices(preds_b, num_classes, "preds_b")
    if not preds_a.shape == preds_b.shape == targets.shape:
        raise ValueError(f"preds_a, preds_b and targets have {preds_a.shape[0]}, {preds_b.shape[0]} and "
                         f"{targets.shape[0]} entries; expected equal")
    right_a, right_b = preds_a == targets, preds_b == targets

    def mca(preds: np.ndarray, idx: np.ndarray) -> float:
        return mean_class_accuracy(confusion_matrix(preds[idx], targets[idx], num_classes))

    everything = np.arange(targets.shape[0])
    report: dict = {"num_samples": int(targets.shape[0])}
    for name, statistic in (
        ("top1", lambda preds, idx: float((preds[idx] == targets[idx]).mean())),
        ("mean_class_acc", mca),
    ):
        report[f"{name}_a"] = statistic(preds_a, everything)
        report[f"{name}_b"] = statistic(preds_b, everything)
        report[f"{name}_diff"] = report[f"{name}_b"] - report[f"{name}_a"]
        report[f"{name}_diff_ci"] = list(bootstrap_ci(
            lambda idx, statistic=statistic: statistic(preds_b, idx) - statistic(preds_a, idx),
            targets.shape[0], num_bootstrap, 0.95, seed))
    report["a_only"] = int((right_a & ~right_b).sum())
    report["b_only"] = int((right_b & ~right_a).sum())
    report["mcnemar_p"] = mcnemar_exact(report["a_only"], report["b_only"])

    confusion_a = confusion_matrix(preds_a, targets, num_classes)
    confusion_b = confusion_matrix(preds_b, targets, num_classes)
    accuracy_a, accuracy_b = per_class_accuracy(confusion_a), per_class_accuracy(confusion_b)
    support = confusion_a.sum(1)
    present = np.flatnonzero(support > 0)
    change = (np.diag(confusion_b) - np.diag(confusion_a)) / np.maximum(support, 1)  # exact ties stay ties
    report["per_class"] = [
        {"class": class_names[c], "support": int(support[c]), "correct_a": int(confusion_a[c, c]),
         "correct_b": int(confusion_b[c, c]), "accuracy_a": float(accuracy_a[c]),
         "accuracy_b": float(accuracy_b[c]), "change": float(change[c])}
        for c in sorted(present, key=lambda c: (-change[c], c))
    ]
    return report


def paired_ece(confidence_a: np.ndarray, right_a: np.ndarray, confidence_b: np.ndarray, right_b: np.ndarray,
               num_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Two classifiers' calibration on the same samples: ``expected_calibration_error`` of each from its top-1
    probabilities and whether those guesses are right (each (N,), in one sample order), and B - A.

    Keys (JSON-serialisable): ``ece_a``, ``ece_b``, ``ece_diff`` and its 95 % paired-bootstrap interval
    ``ece_diff_ci`` (the same resamples as ``paired_comparison`` with the same seed and samples).
    """
    confidence_a, right_a = _confidences(confidence_a, right_a)
    confidence_b, right_b = _confidences(confidence_b, right_b)
    if confidence_a.shape != confidence_b.shape:
        raise ValueError(f"A has {confidence_a.size} samples and B {confidence_b.size}; expected the same samples")

    def diff(idx: np.ndarray) -> float:
        return (expected_calibration_error(confidence_b[idx], right_b[idx])
                - expected_calibration_error(confidence_a[idx], right_a[idx]))

    ece_a, ece_b = expected_calibration_error(confidence_a, right_a), expected_calibration_error(confidence_b, right_b)
    return {"ece_a": ece_a, "ece_b": ece_b, "ece_diff": ece_b - ece_a,
            "ece_diff_ci": list(bootstrap_ci(diff, confidence_a.size, num_bootstrap, 0.95, seed))}


def paired_over_seeds(right_a: np.ndarray, right_b: np.ndarray, num_bootstrap: int = 1000,
                      num_flips: int = 10_000, seed: int = 0) -> dict:
    """Two recipes trained once per seed, each pair evaluated on the same images: B - A in top-1, across seeds.

    ``right_a`` and ``right_b`` are (S, N) booleans: row k says which of the N images (in one order for every
    row) the seed-k run of A (of B) gets right. Keys (JSON-serialisable): ``num_seeds``, ``num_samples``,
    ``top1_diffs`` (each seed's B - A), ``top1_diff`` (their mean), ``top1_diff_ci`` (95 % paired bootstrap
    over images: each resample draws the same images for every seed and averages the seeds' differences, so
    an image that is hard for every seed counts once, not once per seed) and ``p`` (two-sided randomisation
    test with the image as the unit: each image's difference summed over the seeds gets a random sign,
    ``num_flips`` times; with one seed this is McNemar's test, in Monte Carlo). Both take the trained runs as
    given: they measure how sure the test images make the difference between these runs, not what another
    seed would give (``top1_diffs``' spread shows that).
    """
    right_a, right_b = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    if right_a.ndim != 2 or right_a.shape != right_b.shape or right_a.size == 0:
        raise ValueError(f"right_a and right_b have shapes {right_a.shape} and {right_b.shape}; expected the same "
                         f"non-empty (seeds, images)")
    if num_flips < 1:
        raise ValueError(f"num_flips must be >= 1, got {num_flips}")
    diffs = right_b.mean(1) - right_a.mean(1)
    per_image = right_b.sum(0, dtype=np.int64) - right_a.sum(0, dtype=np.int64)  # (N,) integers: exact sums
    seeds, images = right_a.shape
    low, high = bootstrap_ci(lambda idx: float(per_image[idx].mean()) / seeds, images, num_bootstrap, 0.95, seed)
    moved = per_image[per_image != 0]
    observed, rng, as_extreme = abs(int(moved.sum())), np.random.default_rng(seed), 0
    for start in range(0, num_flips, 1000):  # 1000 sign vectors at a time: memory stays small for any N
        signs = rng.integers(0, 2, size=(min(1000, num_flips - start), moved.size), dtype=np.int64) * 2 - 1
        as_extreme += int((np.abs(signs @ moved) >= observed).sum())
    return {"num_seeds": seeds, "num_samples": images, "top1_diffs": diffs.tolist(),
            "top1_diff": float(diffs.mean()), "top1_diff_ci": [low, high],
            "p": (as_extreme + 1) / (num_flips + 1)}


def most_confused_pairs(confusion: np.ndarray, class_names: list[str], top: int = 20) -> list[dict]:
    """The ``top`` largest off-diagonal cells (count > 0), largest first.

    Ties are ordered by true then predicted class index. Each entry has ``true``,
    ``predicted`` (class names), ``count`` and ``share`` (count / samples of the true class).
    """
    confusion = _square(confusion)
    if len(class_names) != confusion.shape[0]:
        raise ValueError(f"class_names has {len(class_names)} names; expected {confusion.shape[0]} (one per class)")
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    true, pred = np.nonzero(off > 0)
    counts = off[true, pred]
    order = np.lexsort((pred, true, -counts))[:top]
    support = confusion.sum(1)
    return [
        {
            "true": class_names[true[i]],
            "predicted": class_names[pred[i]],
            "count": int(counts[i]),
            "share": float(counts[i] / support[true[i]]),
        }
        for i in order
    ]


def _optional(value: float) -> float | None:
    """A plain float, or None for NaN (JSON has no NaN)."""
    return None if np.isnan(value) else float(value)


def summarize(
    scores: np.ndarray,
    targets: np.ndarray,
    class_names: list[str],
    hierarchy: Hierarchy | None = None,
    num_bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """A JSON-serialisable evaluation report.

    ``scores`` are probabilities (rows summing to 1). Keys: ``num_samples``; ``top1``, ``top5`` (k = min(5, C)),
    ``mean_class_acc``, ``ece`` (``expected_calibration_error`` of the top-1 guesses) and ``brier`` (the mean of
    ``brier_scores``), each with a 95 % percentile-bootstrap interval ``{name}_ci``; ``reliability_bins`` (the
    ``CALIBRATION_BINS`` bins behind ``ece``); ``per_class`` (worst first, classes without support last,
    accuracy None); ``confusions`` (``most_confused_pairs``); and per level of ``hierarchy`` ``{level}_top1``
    (variant predictions mapped up to the level), ``{level}_top1_summed`` (the parent with the highest summed
    probability, ``Hierarchy.top_parents``) and ``{level}_errors_within`` (share of variant errors whose
    prediction has the right parent; None without errors).
    """
    scores, targets = _scores_and_targets(scores, targets)
    num_samples, num_classes = scores.shape
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names; expected {num_classes} (one per score column)")
    preds = scores.argmax(1)
    hits1 = topk_hits(scores, targets, 1)
    hits5 = topk_hits(scores, targets, min(5, num_classes))
    confidence, brier = scores.max(1), brier_scores(scores, targets)
    confusion = confusion_matrix(preds, targets, num_classes)

    def resampled_mca(idx: np.ndarray) -> float:
        return mean_class_accuracy(confusion_matrix(preds[idx], targets[idx], num_classes))

    report: dict = {"num_samples": int(num_samples)}
    for name, value, statistic in (
        ("top1", hits1.mean(), lambda idx: hits1[idx].mean()),
        ("top5", hits5.mean(), lambda idx: hits5[idx].mean()),
        ("mean_class_acc", mean_class_accuracy(confusion), resampled_mca),
        ("ece", expected_calibration_error(confidence, hits1),
         lambda idx: expected_calibration_error(confidence[idx], hits1[idx])),
        ("brier", brier.mean(), lambda idx: brier[idx].mean()),
    ):
        report[name] = float(value)
        report[f"{name}_ci"] = list(bootstrap_ci(statistic, num_samples, num_bootstrap, 0.95, seed))
    report["reliability_bins"] = reliability_bins(confidence, hits1)

    accuracy = per_class_accuracy(confusion)
    support = confusion.sum(1)
    order = sorted(range(num_classes), key=lambda c: (support[c] == 0, np.nan_to_num(accuracy[c]), c))
    report["per_class"] = [
        {"class": class_names[c], "accuracy": _optional(accuracy[c]), "support": int(support[c])} for c in order
    ]
    report["confusions"] = most_confused_pairs(confusion, class_names)

    errors = preds != targets
    for level, (parent_of, _) in (hierarchy or {}).items():
        if parent_of.shape != (num_classes,):
            raise ValueError(f"the hierarchy's {level} level maps {parent_of.shape} classes; expected ({num_classes},)")
        true_parents = hierarchy.parents(targets, level)
        same_parent = hierarchy.parents(preds, level) == true_parents
        report[f"{level}_top1"] = float(same_parent.mean())
        report[f"{level}_top1_summed"] = float((hierarchy.top_parents(scores, level)[0] == true_parents).mean())
        report[f"{level}_errors_within"] = float(same_parent[errors].mean()) if errors.any() else None
    return report
