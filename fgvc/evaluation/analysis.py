"""The full analysis of a set of predictions: metrics with intervals, per-class accuracy, confusions.

    report = summarize(scores, targets, classes, hierarchy)      # the JSON report alone
    analysis = analyse(scores, targets, classes, hierarchy, out="logs/<run>/eval-test")
    print(format_report(analysis.report)); print(format_worst(analysis.report))

Used by ``fit`` once at the end of training and by ``fgvc evaluate`` on demand.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fgvc.core.errors import FgvcError
from fgvc.core.labels import top_classes
from fgvc.data.hierarchy import Hierarchy, hierarchy_names
from fgvc.evaluation import metrics, plots, statistics


@dataclass
class Analysis:
    """A full evaluation: the JSON report, the confusion matrix and what labels it."""

    report: dict[str, Any]
    confusion: np.ndarray  # (C, C), rows = true class
    classes: list[str]
    group_of: list[str] | None  # the family of each class, when the dataset has one


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
    """A JSON-serialisable evaluation report (``metrics``' measures, ``statistics``' intervals).

    ``scores`` are probabilities (rows summing to 1). Keys: ``num_samples``; ``top1``, ``top5`` (k = min(5, C)),
    ``mean_class_acc``, ``ece`` (``metrics.expected_calibration_error`` of the top-1 guesses) and ``brier`` (the mean of
    ``brier_scores``), each with a 95 % percentile-bootstrap interval ``{name}_ci``; ``reliability_bins`` (the
    ``CALIBRATION_BINS`` bins behind ``ece``); ``per_class`` (worst first, classes without support last,
    accuracy None); ``confusions`` (``metrics.most_confused_pairs``); and per level of ``hierarchy`` ``{level}_top1``
    (variant predictions mapped up to the level), ``{level}_top1_summed`` (the parent with the highest summed
    probability, ``Hierarchy.top_parents``) and ``{level}_errors_within`` (share of variant errors whose
    prediction has the right parent; None without errors).
    """
    scores, targets = metrics.checked_scores(scores, targets)
    num_samples, num_classes = scores.shape
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names; expected {num_classes} (one per score column)")
    preds = scores.argmax(1)
    hits1 = metrics.topk_hits(scores, targets, 1)
    hits5 = metrics.topk_hits(scores, targets, min(5, num_classes))
    confidence, brier = scores.max(1), metrics.brier_scores(scores, targets)
    confusion = metrics.confusion_matrix(preds, targets, num_classes)

    report: dict = {"num_samples": int(num_samples)}
    for name, value, statistic in (  # each statistic scores a (resamples, images) array of indices
        ("top1", hits1.mean(), lambda idx: hits1[idx].mean(1)),
        ("top5", hits5.mean(), lambda idx: hits5[idx].mean(1)),
        ("mean_class_acc", metrics.mean_class_accuracy(confusion),
         lambda idx: metrics.resampled_mean_class_accuracies(hits1, targets, num_classes, idx)),
        ("ece", metrics.expected_calibration_error(confidence, hits1),
         lambda idx: metrics.resampled_calibration_errors(confidence, hits1, idx)),
        ("brier", brier.mean(), lambda idx: brier[idx].mean(1)),
    ):
        report[name] = float(value)
        report[f"{name}_ci"] = list(statistics.bootstrap_ci(statistic, num_samples, num_bootstrap, 0.95, seed))
    report["reliability_bins"] = metrics.reliability_bins(confidence, hits1)

    accuracy = metrics.per_class_accuracy(confusion)
    support = confusion.sum(1)
    order = sorted(range(num_classes), key=lambda c: (support[c] == 0, np.nan_to_num(accuracy[c]), c))
    report["per_class"] = [
        {"class": class_names[c], "accuracy": _optional(accuracy[c]), "support": int(support[c])} for c in order
    ]
    report["confusions"] = metrics.most_confused_pairs(confusion, class_names)

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


def analyse(scores: np.ndarray, targets: np.ndarray, classes: list[str], hierarchy: Hierarchy | None,
            out: str | Path, seed: int = 0,
            extra: dict[str, Any] | None = None, files: list[str] | None = None,
            columns: dict[str, list[Any]] | None = None) -> Analysis:
    """Every metric of ``scores`` against ``targets``, written to ``out``.

    ``scores`` are softmax probabilities. Files: ``metrics.json`` (everything), ``per_class.csv`` (worst first),
    ``confusion.csv``, ``confusions.csv`` (most-confused pairs), ``confusion.png`` (grouped by family),
    ``reliability.png`` (the reliability diagram of the top-1 probability) and, given the image ``files`` in
    score order, ``predictions.csv`` (``_prediction_rows``: each image's top 5, then the per-image ``columns``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**(extra or {}), **summarize(scores, targets, classes, hierarchy, seed=seed)}
    confusion = metrics.confusion_matrix(scores.argmax(axis=1), targets, len(classes))
    group_of = hierarchy_names(hierarchy)["family"] if hierarchy and "family" in hierarchy else None
    report["family_of"] = group_of
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    _write_csv(out / "per_class.csv", ["class", "accuracy", "support"], report["per_class"])
    _write_csv(out / "confusions.csv", ["true", "predicted", "count", "share"], report["confusions"])
    with (out / "confusion.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *classes])
        writer.writerows([name, *row] for name, row in zip(classes, confusion.tolist()))
    if files is not None:
        fields, rows = _prediction_rows(scores, targets, classes, files, hierarchy or Hierarchy())
        for name, values in (columns or {}).items():
            fields.append(name)
            for row, value in zip(rows, values, strict=True):
                row[name] = value
        _write_csv(out / "predictions.csv", fields, rows)
    plots.confusion_figure(confusion, classes, group_of).savefig(out / "confusion.png", dpi=110)
    plots.reliability_figure(report["reliability_bins"], report["ece"]).savefig(out / "reliability.png", dpi=110)
    return Analysis(report, confusion, classes, group_of)


def _prediction_rows(scores: np.ndarray, targets: np.ndarray, classes: list[str], files: list[str],
                     hierarchy: Hierarchy) -> tuple[list[str], list[dict[str, Any]]]:
    """The fields and rows of ``predictions.csv``: per image its ``id`` (the file name without extension, leading
    zeros kept), ``file``, ``true`` class, then the top 5 classes (fewer when there are fewer classes) with their
    probabilities, best first: ``predicted``, ``probability``, ``predicted_2``, ``probability_2``, ...; then per
    level of ``hierarchy`` the likeliest parent by summed probability (``Hierarchy.top_parents``) and that sum:
    ``top_family``, ``top_family_probability``, ``top_manufacturer``, ``top_manufacturer_probability``."""
    top = top_classes(scores, 5)
    columns = [("predicted", "probability")]
    columns += [(f"predicted_{rank}", f"probability_{rank}") for rank in range(2, top.shape[1] + 1)]
    coarse = {level: (hierarchy.top_parents(scores, level), hierarchy[level].names) for level in hierarchy}
    fields = ["id", "file", "true", *[name for pair in columns for name in pair],
              *[name for level in coarse for name in (f"top_{level}", f"top_{level}_probability")]]
    rows = []
    for index, (file, target, row_scores, row_top) in enumerate(zip(files, targets, scores, top, strict=True)):
        row = {"id": Path(file).stem, "file": file, "true": classes[target]}
        for (class_field, probability_field), c in zip(columns, row_top, strict=True):
            row[class_field], row[probability_field] = classes[c], f"{row_scores[c]:.6f}"
        for level, ((best, probability), names) in coarse.items():
            row[f"top_{level}"], row[f"top_{level}_probability"] = names[best[index]], f"{probability[index]:.6f}"
        rows.append(row)
    return fields, rows


def _write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines: the headline metrics with their 95 % intervals, and the hierarchy."""
    weights = " (EMA weights)" if report.get("weights") == "ema" else ""
    lines = [f"{report['split']} split, {report['num_samples']} images{weights}"]
    for key, name in (("top1", "top-1"), ("top5", "top-5"), ("mean_class_acc", "mean per-class")):
        low, high = report[f"{key}_ci"]
        lines.append(f"  {name:<16} {100 * report[key]:6.2f}%  (95% CI {100 * low:.2f}-{100 * high:.2f}%)")
    if "ece" in report:  # absent from reports written before calibration was measured
        low, high = report["ece_ci"]
        lines.append(f"  {'ECE':<16} {100 * report['ece']:6.2f}%  (95% CI {100 * low:.2f}-{100 * high:.2f}%; "
                     f"0 = calibrated)")
        low, high = report["brier_ci"]
        lines.append(f"  {'Brier score':<16} {report['brier']:7.4f}  (95% CI {low:.4f}-{high:.4f}; lower is better)")
    for level in ("family", "manufacturer"):
        if f"{level}_top1" in report:
            within = report[f"{level}_errors_within"]
            share = "no errors" if within is None else f"{100 * within:.1f}% of variant errors stay in the {level}"
            summed = report.get(f"{level}_top1_summed")  # absent from reports written before it existed
            share = share if summed is None else f"{100 * summed:.2f}% by summed probability; {share}"
            lines.append(f"  {level + ' top-1':<16} {100 * report[f'{level}_top1']:6.2f}%  ({share})")
    return "\n".join(lines)


def format_worst(report: dict[str, Any], count: int = 10) -> str:
    """The ``count`` classes with the lowest accuracy."""
    lines = [f"worst {count} classes:"]
    for row in [r for r in report["per_class"] if r["accuracy"] is not None][:count]:
        lines.append(f"  {100 * row['accuracy']:6.1f}%  {row['class']}  ({row['support']} images)")
    return "\n".join(lines)


def format_confusions(report: dict[str, Any], count: int = 10) -> str:
    """The ``count`` most-confused (true, predicted) pairs."""
    lines = ["most-confused pairs (true -> predicted):"]
    for row in report["confusions"][:count]:
        lines.append(f"  {row['count']:4d} x  {row['true']} -> {row['predicted']}  "
                     f"({100 * row['share']:.0f}% of {row['true']})")
    return "\n".join(lines)


def read_report(folder: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` that ``analyse`` wrote into ``folder``."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise FgvcError(f"{path} not found: expected the eval-<split>/ folder of a finished run, or run "
                                f"`fgvc evaluate --checkpoint <run>/last.pt --split <split>` first")
    return json.loads(path.read_text())


def read_confusion(folder: str | Path) -> tuple[np.ndarray, list[str], list[str] | None]:
    """The confusion matrix, class names and family of each class that ``analyse`` wrote into ``folder``:
    the arguments of ``plots.confusion_figure``."""
    path = Path(folder) / "confusion.csv"
    if not path.is_file():
        raise FgvcError(f"{path} not found: expected an evaluation folder as fgvc evaluate writes it (metrics.json, "
                        f"predictions.csv and confusion.csv, which gives the class order)")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    classes = rows[0][1:]
    confusion = np.array([[int(v) for v in row[1:]] for row in rows[1:]], dtype=np.int64)
    group_of = read_report(folder).get("family_of")
    return confusion, classes, group_of
