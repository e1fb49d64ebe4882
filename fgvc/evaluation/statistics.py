"""How sure the test images make a number: bootstrap intervals, McNemar's exact test, and two classifiers (or two
recipes over seeds) compared on the same images; plain numpy functions, no torch.

    low, high = bootstrap_ci(lambda idx: hits[idx].mean(1), len(hits))    # idx: (resamples, images)
    paired = paired_comparison(preds_a, preds_b, targets, class_names)     # is B better than A?
    seeds = paired_over_seeds(right_a, right_b)                            # (seeds, images) each

The measures compared are ``fgvc.evaluation.metrics``'.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fgvc.core.labels import class_indices
from fgvc.evaluation.metrics import (
    checked_confidences,
    confusion_matrix,
    expected_calibration_error,
    per_class_accuracy,
    resampled_calibration_errors,
    resampled_mean_class_accuracies,
)

RESAMPLED_INDICES = 1 << 22  # indices per block of resamples in ``bootstrap_ci``: 32 MiB of int64


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``n`` samples.

    ``statistic`` receives a (K, n) index array, each row a resample drawn with replacement from ``range(n)``,
    and returns the metric computed on each row, (K,): the resamples come in blocks of at most
    ``RESAMPLED_INDICES`` indices, so that numpy scores many at once in bounded memory.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    block = max(1, RESAMPLED_INDICES // n)
    values = np.concatenate([
        np.asarray(statistic(rng.integers(0, n, size=(min(block, num_samples - start), n))), dtype=np.float64)
        for start in range(0, num_samples, block)])
    if values.shape != (num_samples,):
        raise ValueError(f"statistic gave {values.size} values for {num_samples} resamples; expected one per row")
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

    everything = np.arange(targets.shape[0])[None]
    report: dict = {"num_samples": int(targets.shape[0])}
    for name, statistic in (
        ("top1", lambda right, idx: right[idx].mean(1)),
        ("mean_class_acc", lambda right, idx: resampled_mean_class_accuracies(right, targets, num_classes, idx)),
    ):
        report[f"{name}_a"] = float(statistic(right_a, everything)[0])
        report[f"{name}_b"] = float(statistic(right_b, everything)[0])
        report[f"{name}_diff"] = report[f"{name}_b"] - report[f"{name}_a"]
        report[f"{name}_diff_ci"] = list(bootstrap_ci(
            lambda idx, statistic=statistic: statistic(right_b, idx) - statistic(right_a, idx),
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
    confidence_a, right_a = checked_confidences(confidence_a, right_a)
    confidence_b, right_b = checked_confidences(confidence_b, right_b)
    if confidence_a.shape != confidence_b.shape:
        raise ValueError(f"A has {confidence_a.size} samples and B {confidence_b.size}; expected the same samples")

    def diff(idx: np.ndarray) -> np.ndarray:
        return (resampled_calibration_errors(confidence_b, right_b, idx)
                - resampled_calibration_errors(confidence_a, right_a, idx))

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
    low, high = bootstrap_ci(lambda idx: per_image[idx].mean(1) / seeds, images, num_bootstrap, 0.95, seed)
    moved = per_image[per_image != 0]
    observed, rng, as_extreme = abs(int(moved.sum())), np.random.default_rng(seed), 0
    for start in range(0, num_flips, 1000):  # 1000 sign vectors at a time: memory stays small for any N
        signs = rng.integers(0, 2, size=(min(1000, num_flips - start), moved.size), dtype=np.int64) * 2 - 1
        as_extreme += int((np.abs(signs @ moved) >= observed).sum())
    return {"num_seeds": seeds, "num_samples": images, "top1_diffs": diffs.tolist(),
            "top1_diff": float(diffs.mean()), "top1_diff_ci": [low, high],
            "p": (as_extreme + 1) / (num_flips + 1)}
