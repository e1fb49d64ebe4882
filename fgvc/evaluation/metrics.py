"""The measures of a classifier's answers: accuracy, confusion and calibration; plain numpy functions, no torch.

Typical use, with ``scores`` (N, C) softmax probabilities and ``targets`` (N,) (the ranking metrics also take
logits; ECE and the Brier score need probabilities)::

    from fgvc.evaluation import metrics
    hits = metrics.topk_hits(scores, targets, 5)
    confusion = metrics.confusion_matrix(scores.argmax(1), targets, num_classes)
    ece = metrics.expected_calibration_error(scores.max(1), hits)

Their intervals and paired comparisons are ``fgvc.evaluation.statistics``'; the report of one evaluation,
``fgvc.evaluation.analysis.summarize``. Accuracies are fractions in [0, 1]. Ties between scores are broken in
favour of the lower class index everywhere (``topk_hits``, and top-1 predictions via ``argmax``), so every number
here is deterministic.
"""

from __future__ import annotations

import numpy as np

from fgvc.core.labels import class_indices

CALIBRATION_BINS = 15  # equal-width bins of the top-1 probability, for ECE and the reliability diagram
PROBABILITY_ROUNDING = 1e-3  # how far rounding may take a probability out of [0, 1], a row's sum from 1 (~1e-6)

__all__ = [
    "CALIBRATION_BINS",
    "brier_scores",
    "checked_confidences",
    "checked_scores",
    "confusion_matrix",
    "expected_calibration_error",
    "mean_class_accuracy",
    "most_confused_pairs",
    "per_class_accuracy",
    "reliability_bins",
    "resampled_calibration_errors",
    "resampled_mean_class_accuracies",
    "topk_hits",
]


def _square(confusion: np.ndarray) -> np.ndarray:
    """Return ``confusion`` as an array, checking that it is a non-empty square matrix."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.size == 0:
        raise ValueError(f"confusion must be a non-empty square (C, C) matrix, got shape {confusion.shape}")
    return confusion


def checked_scores(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An (N, C) score matrix and its (N,) targets, checked; a ``ValueError`` says what is wrong."""
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
    scores, targets = checked_scores(scores, targets)
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


def resampled_mean_class_accuracies(correct: np.ndarray, targets: np.ndarray, num_classes: int,
                                    resamples: np.ndarray) -> np.ndarray:
    """``mean_class_accuracy`` of each resample, float64 (K,): ``correct`` (N,) says which images are right,
    ``targets`` (N,) their classes, and each row of ``resamples`` (K, M) indexes the images of one resample."""
    rows = np.arange(resamples.shape[0])[:, None] * num_classes
    cells = (rows + targets[resamples]).ravel()
    size = resamples.shape[0] * num_classes
    support = np.bincount(cells, minlength=size).reshape(-1, num_classes)
    right = np.bincount(cells, weights=correct[resamples].ravel().astype(np.float64), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(support > 0, right.reshape(-1, num_classes) / support, np.nan), axis=1)


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


def checked_confidences(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image's top-1 probability (N,) in [0, 1] and whether that guess is right (N,), checked."""
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
    confidence, correct = checked_confidences(confidence, correct)
    return float(resampled_calibration_errors(confidence, correct, np.arange(confidence.size)[None], num_bins)[0])


def resampled_calibration_errors(confidence: np.ndarray, correct: np.ndarray, resamples: np.ndarray,
                                 num_bins: int = CALIBRATION_BINS) -> np.ndarray:
    """``expected_calibration_error`` of each resample, float64 (K,): each row of ``resamples`` (K, M) indexes
    the images of one resample (``confidence`` and ``correct`` as checked by ``checked_confidences``)."""
    bins = _confidence_bins(confidence, num_bins)[resamples] + np.arange(resamples.shape[0])[:, None] * num_bins
    gaps = (correct - confidence)[resamples]
    gap_sums = np.bincount(bins.ravel(), weights=gaps.ravel(), minlength=resamples.shape[0] * num_bins)
    return np.abs(gap_sums.reshape(-1, num_bins)).sum(1) / resamples.shape[1]


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, num_bins: int = CALIBRATION_BINS) -> list[dict]:
    """The bins of ``expected_calibration_error``, each a dict (JSON-serialisable): ``low``, ``high`` (its
    edges), ``images``, and the ``accuracy`` and mean ``confidence`` of its images (None for an empty bin)."""
    confidence, correct = checked_confidences(confidence, correct)
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
    probabilities, targets = checked_scores(probabilities, targets)
    one_hot = np.eye(probabilities.shape[1])[targets]
    return ((_probabilities(probabilities).astype(np.float64) - one_hot) ** 2).sum(1)


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
