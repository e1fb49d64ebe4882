"""Evaluation math for classification runs: plain numpy functions, no torch.

Typical use, with ``scores`` (N, C) softmax probabilities and ``targets`` (N,) (the ranking metrics also take
logits; ``summarize``, ECE and the Brier score need probabilities)::

    from fgvc.evaluation import metrics
    report = metrics.summarize(scores, targets, class_names,
                               parents={"family": (family_of, family_names)})
    json.dump(report, fh)
    paired = metrics.paired_comparison(preds_a, preds_b, targets, class_names)  # is B better than A?

Accuracies are fractions in [0, 1]. Ties between scores are broken in favour of the
lower class index everywhere (``topk_hits``, and top-1 predictions via ``argmax``), so
every number here is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

CALIBRATION_BINS = 15  # equal-width bins of the top-1 probability, for ECE and the reliability diagram
PROBABILITY_ROUNDING = 1e-3  # how far rounding may take a probability out of [0, 1], a row's sum from 1 (~1e-6)

__all__ = [
    "CALIBRATION_BINS",
    "bootstrap_ci",
    "brier_scores",
    "confusion_matrix",
    "expected_calibration_error",
    "map_to_parent",
    "mcnemar_exact",
    "mean_class_accuracy",
    "most_confused_pairs",
    "paired_comparison",
    "paired_ece",
    "paired_over_seeds",
    "parent_index",
    "parent_scores",
    "per_class_accuracy",
    "reliability_bins",
    "summarize",
    "top_classes",
    "topk_hits",
]


def _labels(labels: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    """Return ``labels`` as a non-empty 1-D int64 array with values in [0, num_classes)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {labels.shape}")
    if labels.size == 0:
        raise ValueError(f"{name} is empty; expected at least one label")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name} must lie in [0, {num_classes - 1}] for {num_classes} classes, got values in [{low}, {high}]"
        )
    return labels.astype(np.int64, copy=False)


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
    targets = _labels(targets, scores.shape[1], "targets")
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


def top_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``min(k, C)`` best-scoring classes of each sample, best first: int64 (N, min(k, C)).

    Ties go to the lower class index, as in ``topk_hits``; the first column is ``scores.argmax(1)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty (N, C) matrix, got shape {scores.shape}")
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)


def confusion_matrix(preds: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts as an int64 (C, C) matrix: rows are true classes, columns predicted classes."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    preds = _labels(preds, num_classes, "preds")
    targets = _labels(targets, num_classes, "targets")
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
    targets = _labels(targets, num_classes, "targets")
    preds_a = _labels(preds_a, num_classes, "preds_a")
    preds_b = _labels(preds_b, num_classes, "preds_b")
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


def map_to_parent(labels: np.ndarray, parent_of: np.ndarray) -> np.ndarray:
    """Map class indices to their parent indices (``parent_of[c]`` is the parent of class c)."""
    parent_of = np.asarray(parent_of)
    if parent_of.ndim != 1 or parent_of.size == 0:
        raise ValueError(f"parent_of must be a non-empty 1-D array, got shape {parent_of.shape}")
    return parent_of[_labels(labels, parent_of.shape[0], "labels")]


def parent_scores(scores: np.ndarray, parent_of: np.ndarray, num_parents: int) -> np.ndarray:
    """Each parent's probability (N, ``num_parents``): the sum of its children's columns of ``scores`` (N, C).

    With softmax probabilities as ``scores`` each row still sums to 1: a confident family even where the
    variant is uncertain. A parent without children gets 0.
    """
    scores, parent_of = np.asarray(scores), np.asarray(parent_of)
    if scores.ndim != 2 or parent_of.shape != (scores.shape[1],):
        raise ValueError(f"parent_of maps {parent_of.shape} classes; expected ({scores.shape[1]},) for scores of "
                         f"shape {scores.shape}")
    return scores @ np.eye(num_parents, dtype=scores.dtype)[_labels(parent_of, num_parents, "parent_of")]


def parent_index(child_names: list[str], parent_names: list[str], pairs: Iterable[tuple[str, str]]) -> np.ndarray:
    """Build ``parent_of`` (int64, one entry per child) from (child_name, parent_name) pairs.

    Pairs may repeat (e.g. one per image). Raises ValueError naming the child when a
    child maps to two parents, has no parent, or a name is not in the given lists.
    """
    child_pos = {name: i for i, name in enumerate(child_names)}
    parent_pos = {name: i for i, name in enumerate(parent_names)}
    parent_of = np.full(len(child_names), -1, dtype=np.int64)
    for child, parent in pairs:
        if child not in child_pos:
            raise ValueError(f"child {child!r} is not one of the {len(child_names)} child names")
        if parent not in parent_pos:
            raise ValueError(f"parent {parent!r} of child {child!r} is not one of the {len(parent_names)} parent names")
        c, p = child_pos[child], parent_pos[parent]
        if parent_of[c] not in (-1, p):
            raise ValueError(f"child {child!r} maps to two parents: {parent_names[parent_of[c]]!r} and {parent!r}")
        parent_of[c] = p
    orphans = [child_names[c] for c in np.flatnonzero(parent_of < 0)]
    if orphans:
        raise ValueError(f"child {orphans[0]!r} has no parent ({len(orphans)} children without a parent)")
    return parent_of


def _optional(value: float) -> float | None:
    """A plain float, or None for NaN (JSON has no NaN)."""
    return None if np.isnan(value) else float(value)


def summarize(
    scores: np.ndarray,
    targets: np.ndarray,
    class_names: list[str],
    parents: dict[str, tuple[np.ndarray, list[str]]] | None = None,
    num_bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """A JSON-serialisable evaluation report.

    ``scores`` are probabilities (rows summing to 1). Keys: ``num_samples``; ``top1``, ``top5`` (k = min(5, C)),
    ``mean_class_acc``, ``ece`` (``expected_calibration_error`` of the top-1 guesses) and ``brier`` (the mean of
    ``brier_scores``), each with a 95 % percentile-bootstrap interval ``{name}_ci``; ``reliability_bins`` (the
    ``CALIBRATION_BINS`` bins behind ``ece``); ``per_class`` (worst first, classes without support last,
    accuracy None); ``confusions`` (``most_confused_pairs``); and per parent level (e.g.
    ``{"family": (parent_of, family_names)}``) ``{level}_top1`` (variant predictions mapped up to the level),
    ``{level}_top1_summed`` (the parent with the highest summed probability, ``parent_scores``) and
    ``{level}_errors_within`` (share of variant errors whose prediction has the right parent; None
    without errors).
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
    for level, (parent_of, parent_names) in (parents or {}).items():
        parent_of = np.asarray(parent_of)
        if parent_of.shape != (num_classes,):
            raise ValueError(f"parents[{level!r}] maps {parent_of.shape} classes; expected ({num_classes},)")
        if parent_of.min() < 0 or parent_of.max() >= len(parent_names):
            raise ValueError(
                f"parents[{level!r}] has indices in [{parent_of.min()}, {parent_of.max()}]; "
                f"expected [0, {len(parent_names) - 1}] for {len(parent_names)} names"
            )
        same_parent = map_to_parent(preds, parent_of) == map_to_parent(targets, parent_of)
        report[f"{level}_top1"] = float(same_parent.mean())
        summed = parent_scores(scores, parent_of, len(parent_names)).argmax(1)
        report[f"{level}_top1_summed"] = float((summed == map_to_parent(targets, parent_of)).mean())
        report[f"{level}_errors_within"] = float(same_parent[errors].mean()) if errors.any() else None
    return report
