"""Class labels as numpy arrays: checked class indices, and classes ranked by score with the one tie rule that
every report and prediction shares: a tie goes to the lower index.

    top = top_classes(probabilities, 5)          # (N, 5) class indices, best first
    labels = class_indices(targets, 100, "targets")
"""

from __future__ import annotations

import numpy as np


def class_indices(labels: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    """``labels`` as a non-empty 1-D int64 array with values in [0, num_classes); a ``ValueError`` names ``name``."""
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


def top_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``min(k, C)`` best-scoring classes of each sample, best first: int64 (N, min(k, C)).

    Ties go to the lower class index; the first column is ``scores.argmax(1)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty (N, C) matrix, got shape {scores.shape}")
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)
