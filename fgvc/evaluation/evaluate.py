"""Evaluate a trained checkpoint on a whole split and write the report.

    analysis = evaluate_checkpoint("logs/<run>/last.pt", split="test")   # writes logs/<run>/eval-test/
    analysis = evaluate_checkpoint("logs/<run>/last.pt", weights="raw")  # not the EMA: eval-test-raw/
    analysis = evaluate_checkpoint("logs/<run>/last.pt", zoom=Zoom())    # a second, zoomed look: eval-test-zoom/
    setting, fitted = calibrate_checkpoint("logs/<run>/last.pt")          # temperature + unknown threshold on val
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fgvc.core.config import TrainConfig
from fgvc.core.defaults import UNKNOWN_KEEP, UNKNOWN_SCORE, UNKNOWN_SCORES
from fgvc.core.errors import ConfigError, DatasetError
from fgvc.data.datasets import image_files, keep_samples, per_class_subset
from fgvc.data.hierarchy import Hierarchy
from fgvc.data.kinds import build_split, dataset_hierarchy
from fgvc.evaluation import metrics
from fgvc.evaluation.analysis import Analysis, analyse
from fgvc.models.calibration import (
    CALIBRATION_KEY,
    NEVER_FITTED_ON,
    Calibration,
    calibrated,
    fit_mahalanobis,
    fit_temperature,
    keep_threshold,
    known_scores,
    log_probabilities,
    negative_log_likelihood,
    read_calibrations,
)
from fgvc.models.checkpoint import load_checkpoint, save_checkpoint
from fgvc.models.predictor import Predictor
from fgvc.models.zoom import Zoom
from fgvc.runs import provenance


def evaluate_checkpoint(checkpoint: str | Path, split: str = "test", data_root: str | Path | None = None,
                        device: str = "auto", out: str | Path | None = None, tta: bool = False,
                        view: str | None = None, progress: bool = False, weights: str | None = None,
                        img_size: int | None = None, zoom: Zoom | bool | None = None, calibrated: bool | None = None,
                        unknown: bool | None = None) -> Analysis:
    """Evaluate a checkpoint on ``split`` (with the run's view and evaluation size unless ``view`` or
    ``img_size`` is given, with its EMA weights when it has them unless ``weights`` says ``raw``, with the
    zoomed second look of ``fgvc.models.zoom`` as ``zoom`` or else the run's ``eval_zoom`` says) and write the analysis
    to ``out`` (default: ``eval-<split>/`` beside the checkpoint; ``-tta``, ``-<view>``, ``-<weights>``,
    ``-<img_size>px``, ``-zoom`` (``Zoom.name``) or ``-nozoom``, and ``-uncalibrated`` added when set).
    ``calibrated`` and ``unknown`` as ``Predictor.from_checkpoint`` takes them.

    ``metrics.json`` also records the split's data fingerprint and what trained the checkpoint
    (``provenance.evaluation_facts``), for ``fgvc compare`` to check, and the ``temperature`` the probabilities
    were divided by (1: uncalibrated; ``fgvc calibrate``). With an unknown-type threshold (``fgvc calibrate``)
    ``metrics.json`` holds ``unknown`` (``unknown_facts``) and ``predictions.csv`` each photo's ``unknown`` (0 or 1)
    and ``unknown_score``; the accuracies still count every photo's top-1 guess."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device, view=view, tta=tta, weights=weights,
                                          img_size=img_size, zoom=zoom, calibrated=calibrated, unknown=unknown)
    cfg, dataset = _split(predictor, checkpoint, split, data_root)
    zoomed = "" if zoom is None else f"-{predictor.zoom.name}" if zoom else "-nozoom"
    suffix = ("-tta" if tta else "") + (f"-{view}" if view else "") + (f"-{weights}" if weights else "") + (
        f"-{img_size}px" if img_size else "") + zoomed + ("-uncalibrated" if calibrated is False else "")
    return evaluate_split(predictor, cfg, dataset, split, dataset_hierarchy(cfg, split), checkpoint,
                          provenance.checkpoint_record(checkpoint),
                          out or Path(checkpoint).parent / f"eval-{split}{suffix}", progress)


def evaluate_split(predictor: Predictor, cfg: TrainConfig, dataset: Dataset, split: str,
                   hierarchy: Hierarchy | None, checkpoint: str | Path, record: dict[str, Any] | None,
                   out: str | Path, progress: bool = False) -> Analysis:
    """``predictor`` on ``dataset`` (split ``split`` of ``cfg.data_root``, read with ``predictor.dataset_transform``,
    its classes' families and manufacturers ``hierarchy``), its analysis written to ``out``; ``metrics.json`` names
    ``checkpoint``, the weights, and records what trained them from the run's provenance ``record``."""
    root = Path(cfg.data_root)
    outputs, targets = predictor.loader_outputs(predictor.loader(dataset, min(cfg.workers, 4)), progress)
    scores, known = predictor.answer(outputs)
    extra = {"checkpoint": str(checkpoint), "split": split, "data_root": str(root), "tta": predictor.tta,
             "view": predictor.view, "weights": predictor.weights, "img_size": cfg.eval_size,
             **provenance.evaluation_facts(record, provenance.split_fingerprint(dataset, predictor.classes, root,
                                                                                split)),
             **({"zoom": dataclasses.asdict(predictor.zoom)} if predictor.zoom else {}),
             "temperature": predictor.temperature, **unknown_facts(predictor, scores, targets, known)}
    columns = {} if known is None else {"unknown": (known < predictor.unknown_check.threshold).astype(int).tolist(),
                                        "unknown_score": [f"{value:.6g}" for value in known]}
    return analyse(scores, targets, predictor.classes, hierarchy, out, cfg.seed, extra, files=image_files(dataset),
                   columns=columns)


def unknown_facts(predictor: Predictor, scores: np.ndarray, targets: np.ndarray, known: np.ndarray | None
                  ) -> dict[str, Any]:
    """What ``metrics.json`` records of the unknown-type answers: the score, threshold and share of photos kept
    it was fitted for, how many photos of this split fell below it, and the top-1 of the others; {} without a
    threshold."""
    check = predictor.unknown_check
    if known is None or check is None:
        return {}
    kept = known >= check.threshold
    top1_kept = float((scores[kept].argmax(axis=1) == targets[kept]).mean()) if kept.any() else None
    return {"unknown": {"score": check.score, "threshold": check.threshold, "keep": check.keep,
                        "flagged": int((~kept).sum()), "flagged_share": float((~kept).mean()),
                        "top1_of_kept": top1_kept}}


def _split(predictor: Predictor, checkpoint: str | Path, split: str, data_root: str | Path | None
           ) -> tuple[TrainConfig, Dataset]:
    """The run's config pointed at ``data_root`` (default: the run's) and its ``split`` read with the predictor's
    transform, refused when its classes are not the checkpoint's."""
    root = Path(data_root) if data_root is not None else Path(predictor.cfg.data_root)
    cfg = dataclasses.replace(predictor.cfg, data_root=str(root), download=False)
    dataset = build_split(cfg, split, predictor.dataset_transform)
    if list(dataset.classes) != predictor.classes:
        raise DatasetError(f"the classes under {root} (split {split!r}) differ from the {len(predictor.classes)} "
                           f"classes {checkpoint} was trained on")
    return cfg, dataset


def calibrate_checkpoint(checkpoint: str | Path, split: str = "val", data_root: str | Path | None = None,
                         device: str = "auto", tta: bool = False, view: str | None = None, weights: str | None = None,
                         img_size: int | None = None, zoom: Zoom | bool | None = None,
                         score: str | None = UNKNOWN_SCORE, keep: float = UNKNOWN_KEEP, progress: bool = False
                         ) -> tuple[str, Calibration]:
    """Fit the temperature of ``checkpoint`` on ``split`` (never ``test``, nor photos it trained on) for the
    inference setting the other arguments give (as ``evaluate_checkpoint`` takes them), and with ``score`` (one of
    ``UNKNOWN_SCORES``, or None) the unknown-type threshold that keeps a share ``keep`` of the split's photos
    (``mahalanobis`` first fits class means and a covariance on a pass over the training split). Stores them in
    the checkpoint under the setting's name (atomically; everything else kept, other settings' calibrations
    too) and writes every setting's, without the Mahalanobis statistics, to ``calibration.json`` beside it.
    Returns the setting's name and what was fitted."""
    if split == NEVER_FITTED_ON:
        raise ConfigError(f"--split {split} is refused: a temperature or threshold is never fitted on test, which "
                          f"must stay unseen for the final report; expected val (the default) or another held-out "
                          f"split")
    if score is not None and score not in UNKNOWN_SCORES:
        raise ConfigError(f"unknown score {score!r} is invalid: expected one of {UNKNOWN_SCORES} or none")
    if not 0 < keep <= 1:
        raise ConfigError(f"--keep {keep!r} is invalid: expected the share of {split} photos kept as known, in "
                          f"(0, 1], e.g. {UNKNOWN_KEEP}")
    if Path(checkpoint).suffix == ".onnx":
        raise ConfigError(f"{checkpoint} is an ONNX file: calibrate the run's .pt checkpoint, then export it again")
    predictor = Predictor.from_checkpoint(checkpoint, device=device, view=view, tta=tta, weights=weights,
                                          img_size=img_size, zoom=zoom, calibrated=False, unknown=False)
    cfg, dataset = _split(predictor, checkpoint, split, data_root)
    train = build_split(cfg, cfg.train_split, predictor.dataset_transform)
    if cfg.train_per_class is not None:  # the subset the run learned (``fgvc.data.training_split``)
        keep_samples(train, per_class_subset(train.targets, cfg.train_per_class, cfg.seed))
    seen = set(image_files(dataset)) & set(image_files(train))
    if seen:
        raise ConfigError(f"split {split!r} shares {len(seen)} photos with the training split {cfg.train_split!r} "
                          f"(e.g. {sorted(seen)[0]}): the temperature must be fitted on photos the model never "
                          f"learned; expected a held-out split such as val")
    workers = min(cfg.workers, 4)
    mahalanobis = score == "mahalanobis"
    outputs, targets = predictor.loader_outputs(predictor.loader(dataset, workers), progress, features=mahalanobis)
    log_probs = log_probabilities(outputs.logits)
    temperature = fit_temperature(log_probs, targets)
    stats = None
    if mahalanobis:
        train_outputs, train_targets = predictor.loader_outputs(predictor.loader(train, workers), progress, True)
        stats = fit_mahalanobis(train_outputs.features.numpy(), train_targets, len(predictor.classes))
    threshold = None if score is None else keep_threshold(
        known_scores(score, outputs.logits, temperature, outputs.features, stats), keep)
    facts = {"split": split, "images": len(targets), **_fit_facts(log_probs, targets, temperature),
             "data": provenance.split_fingerprint(dataset, predictor.classes, cfg.data_root, split)}
    fitted = Calibration(temperature, score, threshold, None if score is None else keep, facts, stats)
    state = load_checkpoint(checkpoint)
    state[CALIBRATION_KEY] = {**state.get(CALIBRATION_KEY, {}), predictor.setting: fitted.to_record()}
    save_checkpoint(checkpoint, state)
    summaries = {name: calibration.summary() for name, calibration in read_calibrations(state).items()}
    (Path(checkpoint).parent / "calibration.json").write_text(json.dumps(summaries, indent=2) + "\n")
    return predictor.setting, fitted


def _fit_facts(log_probs: torch.Tensor, targets: np.ndarray, temperature: float) -> dict[str, Any]:
    """Top-1, negative log-likelihood and ECE of the fitting split before (T = 1) and after ``temperature``."""
    facts: dict[str, Any] = {"top1": float((log_probs.argmax(dim=1).numpy() == targets).mean())}
    for name, value in (("before", 1.0), ("after", temperature)):
        probabilities = calibrated(log_probs, value)
        facts[f"nll_{name}"] = negative_log_likelihood(log_probs, targets, value)
        facts[f"ece_{name}"] = metrics.expected_calibration_error(probabilities.max(axis=1),
                                                                  probabilities.argmax(axis=1) == targets)
    return facts


def format_calibration(setting: str, fitted: Calibration) -> str:
    """What ``fgvc calibrate`` prints: the temperature, the fitting split's NLL and ECE before and after it, and
    the unknown-type threshold."""
    facts = fitted.facts
    lines = [f"setting {setting!r}: temperature {fitted.temperature:.4f}, fitted on {facts['split']} "
             f"({facts['images']} images, top-1 {100 * facts['top1']:.1f}%)",
             f"  NLL {facts['nll_before']:.4f} -> {facts['nll_after']:.4f}; ECE {100 * facts['ece_before']:.2f}% -> "
             f"{100 * facts['ece_after']:.2f}%"]
    if fitted.score is not None:
        lines.append(f"  unknown below {fitted.score} {fitted.threshold:.6g} (keeps {100 * fitted.keep:g}% of the "
                     f"{facts['split']} photos)")
    return "\n".join(lines)
