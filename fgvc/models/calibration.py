"""How sure is it? A temperature that makes the probabilities mean what they say, and a threshold below which a
photo is "none of the types I know". Both are fitted on ``val`` by ``fgvc calibrate`` (``fgvc.calibrate``), kept
in the checkpoint and applied by ``fgvc.models.predictor.Predictor``, so every inference path uses them.

    log_probs = log_probabilities(logits)             # logits (V, N, C): each view's (V = 2 with mirror TTA)
    T = fit_temperature(log_probs, targets)            # minimises the NLL of softmax(log p / T)
    probs = calibrated(log_probs, T)                   # one view: softmax(logits / T)
    known = known_scores("energy", logits, T)          # higher: more like the training classes
    threshold = keep_threshold(known, keep=0.95)       # 95 % of these photos score at or above it

Temperature scaling (Guo et al., 2017): one number T divides every logit before the softmax; it is chosen to
minimise the negative log-likelihood of the true classes. T > 1 softens over-confident probabilities, T < 1
sharpens under-confident ones; dividing by a positive number never changes which class is largest. Where
inference averages several views' probabilities (mirror TTA), T divides the log of that average, which is the
same for one view and keeps the top-1 class for any number.

Unknown-type scores, each "higher = more like a training class" (a photo is unknown below the threshold):

- ``msp``: the maximum softmax probability (Hendrycks and Gimpel, 2017), after the temperature;
- ``energy``: minus the energy of Liu et al. (2020), T * logsumexp(logits / T), averaged over the views;
- ``mahalanobis``: minus the smallest squared Mahalanobis distance of the pooled features of the whole view to a
  class mean, with one covariance shared by the classes (Lee et al., 2018), both fitted on the training split.

A checkpoint keeps one ``Calibration`` per inference setting (``setting_name``: the weights, view, size, mirror TTA
and zoom change the logits), under ``CALIBRATION_KEY``; a checkpoint without one predicts as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fgvc.core.defaults import UNKNOWN_KEEP, UNKNOWN_SCORES

CALIBRATION_KEY = "calibration"  # in a checkpoint: {setting_name: Calibration.to_record()}
LOG_T_RANGE = (-5.0, 5.0)  # T is searched in [e^-5, e^5]: 0.007 to 148
NEVER_FITTED_ON = "test"


@dataclass(frozen=True)
class Mahalanobis:
    """Class means and the shared precision (inverse covariance) of the pooled features of a training split."""

    means: torch.Tensor  # (C, D) float32
    precision: torch.Tensor  # (D, D) float32


@dataclass(frozen=True)
class Calibration:
    """What ``fgvc calibrate`` fitted for one inference setting."""

    temperature: float = 1.0
    score: str | None = None  # the unknown-type score of the threshold (``UNKNOWN_SCORES``), or None: no threshold
    threshold: float | None = None  # photos whose score is below it are "unknown"
    keep: float | None = None  # the share of the fitting split's photos at or above the threshold
    facts: dict[str, Any] = field(default_factory=dict)  # split, images, NLL and ECE before and after (JSON-able)
    mahalanobis: Mahalanobis | None = None  # with score "mahalanobis"

    def to_record(self) -> dict[str, Any]:
        """The checkpoint's form: plain values and tensors (read back with ``weights_only=True``)."""
        record: dict[str, Any] = {"temperature": self.temperature, "score": self.score, "threshold": self.threshold,
                                  "keep": self.keep, "facts": self.facts}
        if self.mahalanobis is not None:
            record["mahalanobis"] = {"means": self.mahalanobis.means, "precision": self.mahalanobis.precision}
        return record

    def summary(self) -> dict[str, Any]:
        """The record without the tensors: for JSON files and ONNX metadata."""
        return {key: value for key, value in self.to_record().items() if key != "mahalanobis"}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Calibration:
        stats = record.get("mahalanobis")
        return cls(float(record["temperature"]), record.get("score"), record.get("threshold"), record.get("keep"),
                   dict(record.get("facts", {})),
                   None if stats is None else Mahalanobis(stats["means"].float(), stats["precision"].float()))


def setting_name(weights: str, view: str, img_size: int, tta: bool, zoom: str | None) -> str:
    """The inference setting a calibration belongs to, e.g. ``ema squash 256px`` or ``raw squash 256px tta zoom``
    (``zoom``: ``fgvc.models.zoom.Zoom.name``, or None)."""
    return " ".join([weights, view, f"{img_size}px", *(["tta"] if tta else []), *([zoom] if zoom else [])])


def read_calibrations(state: dict[str, Any]) -> dict[str, Calibration]:
    """The calibrations of a checkpoint's ``state`` by setting ({} for a checkpoint never calibrated)."""
    return {name: Calibration.from_record(record) for name, record in state.get(CALIBRATION_KEY, {}).items()}


def log_probabilities(logits: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The log of what inference outputs (float64, (N, C)) from view logits (V, N, C): the mean over the views
    of their softmax (one view: its log-softmax)."""
    logits = torch.as_tensor(logits)
    if logits.ndim != 3:
        raise ValueError(f"logits have shape {tuple(logits.shape)}; expected (views, images, classes)")
    return torch.logsumexp(logits.double().log_softmax(dim=2), dim=0) - math.log(logits.shape[0])


def calibrated(log_probs: torch.Tensor, temperature: float) -> np.ndarray:
    """softmax(log p / T), float32 (N, C): for one view exactly softmax(logits / T); for several (mirror TTA) the
    averaged probabilities sharpened or softened the same way. Dividing by T > 0 keeps every image's ranking of
    the classes, so the top-1 class never changes."""
    return (log_probs / temperature).softmax(dim=1).float().numpy()


def _nll(log_probs: torch.Tensor, targets: torch.Tensor, temperature: float) -> float:
    return float(-(log_probs / temperature).log_softmax(dim=1).gather(1, targets[:, None]).mean())


def _checked(log_probs: torch.Tensor, targets: np.ndarray) -> torch.Tensor:
    labels = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    if log_probs.ndim != 2 or labels.shape != (log_probs.shape[0],) or not len(labels):
        raise ValueError(f"log_probs {tuple(log_probs.shape)} and targets {tuple(labels.shape)}; expected (N, C) "
                         f"and (N,) with N > 0")
    return labels


def negative_log_likelihood(log_probs: torch.Tensor, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``targets`` (N,) under ``calibrated(log_probs, temperature)``."""
    return _nll(log_probs.double(), _checked(log_probs, targets), temperature)


def fit_temperature(log_probs: torch.Tensor, targets: np.ndarray) -> float:
    """The temperature T that minimises ``negative_log_likelihood``: a golden-section search over log T in
    ``LOG_T_RANGE`` (the NLL is convex in 1 / T), deterministic, to about 1e-6 in log T."""
    labels, log_probs = _checked(log_probs, targets), log_probs.double()
    low, high = LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = _nll(log_probs, labels, math.exp(a)), _nll(log_probs, labels, math.exp(b))
    while high - low > 1e-6:
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = _nll(log_probs, labels, math.exp(a))
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = _nll(log_probs, labels, math.exp(b))
    return math.exp((low + high) / 2)


def fit_mahalanobis(features: np.ndarray, targets: np.ndarray, num_classes: int) -> Mahalanobis:
    """Class means of ``features`` (N, D) and the pseudo-inverse of their pooled within-class covariance."""
    features, targets = np.asarray(features, dtype=np.float64), np.asarray(targets)
    missing = sorted(set(range(num_classes)) - set(targets.tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no training features; expected every one of {num_classes}")
    means = np.stack([features[targets == k].mean(axis=0) for k in range(num_classes)])
    centred = features - means[targets]
    covariance = centred.T @ centred / len(features)
    precision = np.linalg.pinv(covariance, hermitian=True)
    return Mahalanobis(torch.from_numpy(means).float(), torch.from_numpy(precision).float())


def known_scores(score: str, logits: np.ndarray | torch.Tensor, temperature: float = 1.0,
                 features: np.ndarray | torch.Tensor | None = None, stats: Mahalanobis | None = None) -> np.ndarray:
    """Each photo's ``score`` (``UNKNOWN_SCORES``; higher = more like a training class), float64 (N,), from its
    view logits (V, N, C) and, for ``mahalanobis``, its pooled ``features`` (N, D) and the training ``stats``."""
    if score == "msp":
        return calibrated(log_probabilities(logits), temperature).max(axis=1).astype(np.float64)
    if score == "energy":
        views = torch.as_tensor(logits).double()
        return (temperature * torch.logsumexp(views / temperature, dim=2)).mean(dim=0).numpy()
    if score == "mahalanobis":
        if features is None or stats is None:
            raise ValueError("the mahalanobis score needs the pooled features and the training split's statistics")
        centred = torch.as_tensor(features, dtype=torch.float64)[:, None, :] - stats.means.double()[None]
        distances = torch.einsum("nkd,de,nke->nk", centred, stats.precision.double(), centred)
        return (-distances.min(dim=1).values).numpy()
    raise ValueError(f"score={score!r} is invalid: expected one of {UNKNOWN_SCORES}")


def keep_threshold(scores: np.ndarray, keep: float = UNKNOWN_KEEP) -> float:
    """The highest threshold that keeps at least a share ``keep`` of ``scores`` (in-distribution photos) at or
    above it: the ceil(keep x N)-th highest score."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep!r} is invalid: expected a share of photos in (0, 1], e.g. 0.95")
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    kept = math.ceil(round(keep * len(ordered), 9))  # round: 0.95 x 100 is 95.00000000000001 in floats
    return float(ordered[len(ordered) - kept])


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """The probability that a random in-distribution photo scores above a random unknown one (ties count half):
    1 separates perfectly, 0.5 is chance."""
    known, unknown = np.asarray(known, dtype=np.float64), np.sort(np.asarray(unknown, dtype=np.float64))
    below = np.searchsorted(unknown, known, side="left")
    ties = np.searchsorted(unknown, known, side="right") - below
    return float((below + ties / 2).sum() / (len(known) * len(unknown)))


def false_positive_rate(known: np.ndarray, unknown: np.ndarray, recall: float = UNKNOWN_KEEP) -> float:
    """The share of unknown photos kept as known when the threshold keeps a share ``recall`` of the known ones
    (FPR at 95 % TPR)."""
    return float((np.asarray(unknown) >= keep_threshold(known, recall)).mean())
