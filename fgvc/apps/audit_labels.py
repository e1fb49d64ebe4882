"""Doubtful labels: confident learning (cleanlab) on the out-of-fold class probabilities of a logistic regression
on the photos' pretrained features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fgvc.apps.audit_embeddings import EMBEDDING_ARCH
from fgvc.apps.audit_photos import Photo

# inverse L2 strength of the logistic regression on standardised features: the lowest out-of-fold log loss on
# warbirds20's 3,000 photos (1.20; C = 0.01: 1.23, 0.1: 1.25, 0.3: 1.33; top-1 65 % for all four)
LOGISTIC_C = 0.03


@dataclass(frozen=True)
class Doubt:
    """A photo whose label confident learning finds doubtful: the classifier's likeliest class and the
    out-of-fold probabilities of its label and of that class; ``quality`` is cleanlab's label quality score."""

    photo: int
    suggested: str
    p_label: float
    p_suggested: float
    quality: float


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Each photo's class probabilities (N, K) from a logistic regression (standardised features, L2 strength
    ``1 / LOGISTIC_C``) fitted on the other ``folds - 1`` stratified folds: never from a model that saw its label.
    scikit-learn's lbfgs solves the convex problem exactly, with no learning rate or epochs to tune."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=LOGISTIC_C, max_iter=1000))
    return cross_val_predict(model, features, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                             method="predict_proba")


def doubtful_labels(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> list[Doubt]:
    """The photos whose label confident learning calls an issue (cleanlab's ``find_label_issues``, pruned by the
    estimated noise rates), the likeliest mislabelled first (lowest self-confidence)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(labels, probabilities, method="self_confidence")
    suggested = probabilities.argmax(axis=1)
    return [Doubt(int(i), classes[suggested[i]], float(probabilities[i, labels[i]]),
                  float(probabilities[i, suggested[i]]), float(quality[i])) for i in ranked]


def photo_classes(photos: Sequence[Photo]) -> list[str]:
    """The class names of ``photos``, sorted: the columns of the out-of-fold probabilities."""
    return sorted({photo.label for photo in photos})


def rank_labels(photos: Sequence[Photo], features: np.ndarray, folds: int) -> tuple[np.ndarray | None, list[Doubt],
                                                                                      str]:
    """Out-of-fold probabilities of every photo's class (all splits pooled), the doubtful labels, and a line
    saying how they were found; ``None`` and no doubts, with the reason, where a class has too few photos."""
    classes = photo_classes(photos)
    labels = np.array([classes.index(photo.label) for photo in photos])
    counts = np.bincount(labels, minlength=len(classes))
    if len(classes) < 2 or counts.min() < 2:
        smallest = classes[int(counts.argmin())]
        return None, [], (f"doubtful labels not ranked: class {smallest!r} has {counts.min()} photo(s), expected "
                          f"at least 2 of each of at least 2 classes")
    folds = min(folds, int(counts.min()))
    probabilities = out_of_fold_probabilities(features, labels, folds)
    note = (f"confident learning (cleanlab) on {folds}-fold out-of-fold probabilities of a logistic regression on "
            f"{EMBEDDING_ARCH} features (all splits pooled; out-of-fold top-1 "
            f"{100 * float((probabilities.argmax(axis=1) == labels).mean()):.1f} %)")
    return probabilities, doubtful_labels(labels, probabilities, classes), note


def label_probability(photos: Sequence[Photo], probabilities: np.ndarray | None, index: int) -> float:
    """The out-of-fold probability of photo ``index``'s own label (0.5 where there are none)."""
    if probabilities is None:
        return 0.5
    return float(probabilities[index, photo_classes(photos).index(photos[index].label)])
