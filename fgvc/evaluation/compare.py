"""Is run B better than run A? The paired comparison of two evaluations of the same images.

    comparison = compare("logs/<run-a>", "logs/<run-b>")   # run folders, or eval-<split>/ folders
    print(format_comparison(comparison))
    write_comparison(comparison)                           # B's eval folder/compare-vs-<A>.json and .txt
    compare_over_seeds([(a0, b0), (a1, b1)])               # one (A, B) per seed: B - A across seeds

Both evaluations' ``predictions.csv`` are matched image by image (by image id and true class); the
statistics are ``statistics.paired_comparison`` and, from each image's top-1 probability, ``statistics.paired_ece``.
The Brier score needs every class's probability, which ``predictions.csv`` does not hold: its difference is
taken from the two ``metrics.json`` files, without an interval (None where a side predates it).
Evaluations of different splits, classes or images are refused.
Where the two differ in what their ``metrics.json`` records of the data and of the code that trained them
(``fgvc.runs.provenance.evaluation_facts``), the comparison carries a warning; where a side has no such record
(an older run), a warning says that it cannot be checked.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from fgvc.core.errors import ComparisonError, ConfigError
from fgvc.evaluation import statistics
from fgvc.evaluation.analysis import read_confusion, read_report

PREDICTION_COLUMNS = ("id", "true", "predicted", "probability")  # what a comparison reads of predictions.csv


@dataclass
class Evaluation:
    """The top-1 predictions of one evaluation, read back from its folder."""

    folder: Path
    split: str
    classes: list[str]
    ids: list[str]
    targets: np.ndarray  # (N,) class indices
    preds: np.ndarray  # (N,) top-1 class indices
    confidence: np.ndarray  # (N,) top-1 probabilities
    brier: float | None = None  # metrics.json's Brier score (None: evaluated by an older fgvc)
    data: dict[str, Any] | None = None  # the evaluated split's fingerprint (None: evaluated by an older fgvc)
    trained_with: dict[str, Any] | None = None  # code and training data of the checkpoint (None: not recorded)


def evaluation_folder(path: str | Path) -> Path:
    """``path`` itself when it holds ``predictions.csv``; for a run folder, its ``eval-<eval_split>/``."""
    folder = Path(path)
    if (folder / "predictions.csv").is_file():
        return folder
    config = folder / "config.json"
    if not config.is_file():
        raise ComparisonError(f"{folder} is neither an evaluation folder (with predictions.csv) nor a run folder "
                              f"(with config.json)")
    split = json.loads(config.read_text())["eval_split"]
    evaluated = folder / f"eval-{split}"
    if not (evaluated / "predictions.csv").is_file():
        raise ComparisonError(f"{evaluated / 'predictions.csv'} not found: the run has not finished; evaluate it "
                              f"with `fgvc evaluate --checkpoint {folder / 'last.pt'} --split {split}`")
    return evaluated


def read_evaluation(folder: str | Path) -> Evaluation:
    """The split, classes, per-image top-1 predictions and probabilities that ``analysis.analyse`` wrote into
    ``folder``."""
    folder = Path(folder)
    report = read_report(folder)
    split = report["split"]
    _, classes, _ = read_confusion(folder)
    path = folder / "predictions.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in PREDICTION_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise ComparisonError(f"{path} has no column {', '.join(missing)}: it was written by an older fgvc; "
                                  f"evaluate again with `fgvc evaluate`")
        rows = list(reader)
    if not rows:
        raise ComparisonError(f"{path} lists no images")
    index = {name: i for i, name in enumerate(classes)}
    for line, row in enumerate(rows, start=2):
        for column in ("true", "predicted"):
            if row[column] not in index:
                raise ComparisonError(f"{path}, line {line}: {column} class {row[column]!r} is not one of the "
                                      f"{len(classes)} classes of {folder / 'confusion.csv'}")
    return Evaluation(folder, split, classes, [row["id"] for row in rows],
                      np.array([index[row["true"]] for row in rows], dtype=np.int64),
                      np.array([index[row["predicted"]] for row in rows], dtype=np.int64),
                      np.array([float(row["probability"]) for row in rows]),
                      report.get("brier"), report.get("data"), report.get("trained_with"))


def _keys(evaluation: Evaluation) -> list[tuple[str, int]]:
    """Each image's (id, true class): unique also in image folders whose class folders reuse file names."""
    keys = list(zip(evaluation.ids, evaluation.targets.tolist(), strict=True))
    (repeated, count), = Counter(keys).most_common(1)
    if count > 1:
        raise ComparisonError(f"{evaluation.folder / 'predictions.csv'} lists image {repeated[0]} "
                              f"({evaluation.classes[repeated[1]]}) {count} times")
    return keys


def _difference(noun: tuple[str, str], items_a: list[Any], items_b: list[Any], label: Callable[[Any], str]) -> str:
    """Which items one of A and B holds and the other lacks, with the first of each ('' when none);
    ``noun`` is (singular, plural)."""
    parts = []
    for name, items, other, others in (("A", items_a, "B", set(items_b)), ("B", items_b, "A", set(items_a))):
        absent = [item for item in items if item not in others]
        if absent:
            what = f"{noun[0]} of {name} is" if len(absent) == 1 else f"{noun[1]} of {name} are"
            parts.append(f"{len(absent)} {what} not in {other}, first: {label(absent[0])}")
    return "; ".join(parts)


def align(a: Evaluation, b: Evaluation) -> np.ndarray:
    """The row of ``b`` for each image of ``a``, in ``a``'s order; refuses different splits, classes or images."""
    both = f"A ({a.folder}) and B ({b.folder})"
    if a.split != b.split:
        raise ComparisonError(f"{both} evaluate different splits: {a.split!r} and {b.split!r}")
    if a.classes != b.classes:
        detail = _difference(("class", "classes"), a.classes, b.classes, repr) or "the same classes in another order"
        raise ComparisonError(f"{both} have different class lists: {detail}")
    keys_a, keys_b = _keys(a), _keys(b)
    detail = _difference(("image", "images"), keys_a, keys_b, itemgetter(0))
    if detail:
        raise ComparisonError(f"{both} hold different images of split {a.split!r}: {detail}")
    row_of = {key: row for row, key in enumerate(keys_b)}
    return np.array([row_of[key] for key in keys_a], dtype=np.int64)


def _short(fingerprint: dict[str, Any]) -> str:
    """A data fingerprint in a few words: split, image count and the start of its sha256."""
    return f"{fingerprint['split']} {fingerprint['sha256'][:12]} ({fingerprint['images']} images)"


def _code(version: dict[str, Any]) -> str:
    """A code version in a few words: the short commit, and the start of the hash of its uncommitted changes."""
    if not version["dirty"]:
        return version["commit"][:10]
    return f"{version['commit'][:10]} with uncommitted changes {(version['diff_sha256'] or '(unreadable)')[:12]}"


def provenance_warnings(a: Evaluation, b: Evaluation) -> list[str]:
    """Where A and B may not be comparable: they were evaluated on data of different fingerprints, or trained
    on different data or by different code (commit, or uncommitted changes); and what cannot be checked because
    a side has no record of it (an older fgvc, an ONNX model, or code outside a git checkout)."""
    warnings = []
    if a.data is None or b.data is None:
        warnings.append(f"cannot check that A and B were evaluated on the same data: "
                        f"{'A' if a.data is None else 'B'} has no data fingerprint (evaluated by an older fgvc)")
    elif a.data["sha256"] != b.data["sha256"]:
        warnings.append(f"A and B were evaluated on different data: {_short(a.data)} and {_short(b.data)}")
    if a.trained_with is None or b.trained_with is None:
        side = "A" if a.trained_with is None else "B"
        warnings.append(f"cannot check that A and B were trained on the same data by the same code: {side}'s "
                        f"checkpoint has no record of them (an older run or an ONNX model)")
        return warnings
    train_a, train_b = ([f["sha256"] for f in e.trained_with["train_data"]] for e in (a, b))
    if train_a != train_b:
        warnings.append(f"A and B were trained on different data: A on "
                        f"{' then '.join(map(_short, a.trained_with['train_data']))}, B on "
                        f"{' then '.join(map(_short, b.trained_with['train_data']))}")
    code_a, code_b = a.trained_with["code"], b.trained_with["code"]
    if any(version["commit"] is None for version in code_a + code_b):
        warnings.append("cannot check that A and B were trained by the same code: "
                        f"{'A' if any(v['commit'] is None for v in code_a) else 'B'} was trained outside a "
                        f"git checkout")
    elif code_a != code_b:
        warnings.append(f"A and B were trained by different code: A at {' then '.join(map(_code, code_a))}, "
                        f"B at {' then '.join(map(_code, code_b))}")
    return warnings


def format_p(p: float) -> str:
    """A p-value in three significant digits, or in scientific notation below 0.001."""
    return f"{p:.3g}" if p >= 0.001 else f"{p:.1e}"


def verdict(a_only: int, b_only: int, p: float, alpha: float) -> str:
    """Plain words: which run gets more images right, when McNemar's test finds it at level ``alpha``."""
    if p < alpha:
        return f"{'B' if b_only > a_only else 'A'} is better (p = {format_p(p)})"
    return f"no detectable difference (p = {format_p(p)}, alpha {alpha:g})"


def compare(a: str | Path, b: str | Path, alpha: float = 0.05, num_bootstrap: int = 1000, seed: int = 0
            ) -> dict[str, Any]:
    """Compare the evaluations of ``a`` and ``b`` (run or evaluation folders) image by image.

    The JSON-serialisable result holds the folders, ``split``, ``num_classes``, ``alpha``, every key of
    ``statistics.paired_comparison`` and of ``statistics.paired_ece`` (B - A), ``brier_a``, ``brier_b`` and
    ``brier_diff`` (from ``metrics.json``, no interval; all three None where a side has none), ``verdict``, and
    ``warnings`` (``provenance_warnings``).
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    first, second = read_evaluation(evaluation_folder(a)), read_evaluation(evaluation_folder(b))
    rows = align(first, second)
    paired = statistics.paired_comparison(first.preds, second.preds[rows], first.targets, first.classes,
                                          num_bootstrap, seed)
    calibration = statistics.paired_ece(first.confidence, first.preds == first.targets, second.confidence[rows],
                                        second.preds[rows] == first.targets, num_bootstrap, seed)
    recorded = first.brier is not None and second.brier is not None
    brier = {"brier_a": first.brier if recorded else None, "brier_b": second.brier if recorded else None,
             "brier_diff": second.brier - first.brier if recorded else None}
    return {"a": str(first.folder), "b": str(second.folder), "split": first.split,
            "num_classes": len(first.classes), "alpha": alpha, **paired, **calibration, **brier,
            "verdict": verdict(paired["a_only"], paired["b_only"], paired["mcnemar_p"], alpha),
            "warnings": provenance_warnings(first, second)}


def compare_over_seeds(pairs: list[tuple[str | Path, str | Path]], num_bootstrap: int = 1000, seed: int = 0
                       ) -> dict[str, Any]:
    """B - A in top-1 across seeds: ``pairs`` holds (A, B) for each seed (run or evaluation folders), every
    evaluation of the same images; the result is ``statistics.paired_over_seeds`` (its keys) with ``pairs``."""
    evaluations = [(read_evaluation(evaluation_folder(a)), read_evaluation(evaluation_folder(b))) for a, b in pairs]
    first = evaluations[0][0]
    right_a, right_b = [], []
    for a, b in evaluations:
        order = align(first, a)  # every seed's images, in the first seed's order
        right_a.append(a.preds[order] == a.targets[order])
        right_b.append(b.preds[align(a, b)][order] == a.targets[order])
    return {"pairs": [[str(a.folder), str(b.folder)] for a, b in evaluations],
            **statistics.paired_over_seeds(np.array(right_a), np.array(right_b), num_bootstrap, seed=seed)}


def _class_line(row: dict[str, Any]) -> str:
    return (f"  {100 * row['change']:+6.1f} points  {row['class']}  "
            f"({row['correct_a']} -> {row['correct_b']} of {row['support']} right)")


def format_comparison(comparison: dict[str, Any], top: int = 5) -> str:
    """The comparison in a few lines: its warnings, both accuracies and ECE with the paired intervals, the Brier
    score, McNemar's test, the ``top`` classes that gained and lost most, and the verdict."""
    if top < 0:
        raise ConfigError(f"top must be >= 0, got {top}")
    lines = [f"A: {comparison['a']}", f"B: {comparison['b']}",
             *(f"warning: {warning}" for warning in comparison["warnings"]),
             f"{comparison['split']} split: the same {comparison['num_samples']} images, "
             f"{comparison['num_classes']} classes", "",
             f"{'':16} {'A':>7}  {'B':>7}  {'B - A':>7}  (95% paired bootstrap interval)"]
    for key, name in (("top1", "top-1"), ("mean_class_acc", "mean per-class")):
        low, high = comparison[f"{key}_diff_ci"]
        lines.append(f"{name:<16} {100 * comparison[f'{key}_a']:6.2f}%  {100 * comparison[f'{key}_b']:6.2f}%  "
                     f"{100 * comparison[f'{key}_diff']:+7.2f}  ({100 * low:+.2f} to {100 * high:+.2f}) points")
    low, high = comparison["ece_diff_ci"]
    lines.append(f"{'ECE':<16} {100 * comparison['ece_a']:6.2f}%  {100 * comparison['ece_b']:6.2f}%  "
                 f"{100 * comparison['ece_diff']:+7.2f}  ({100 * low:+.2f} to {100 * high:+.2f}) points")
    if comparison["brier_diff"] is None:
        lines.append(f"{'Brier score':<16} not compared: a metrics.json without it (evaluated by an older fgvc)")
    else:
        lines.append(f"{'Brier score':<16} {comparison['brier_a']:7.4f}  {comparison['brier_b']:7.4f}  "
                     f"{comparison['brier_diff']:+7.4f}  (no interval: predictions.csv holds only the top 5)")
    lines.append("(ECE and Brier score: lower is better)")
    lines += ["", "McNemar's exact test on the images one run gets right and the other wrong:",
              f"  {comparison['a_only']} right for A alone, {comparison['b_only']} right for B alone: "
              f"p = {format_p(comparison['mcnemar_p'])}"]
    gained = [row for row in comparison["per_class"] if row["change"] > 0][:top]
    lost = [row for row in reversed(comparison["per_class"]) if row["change"] < 0][:top]
    for title, rows in (("gained", gained), ("lost", lost)):
        lines += ["", f"classes that {title} most (B - A):", *([_class_line(r) for r in rows] or ["  none"])]
    lines += ["", f"verdict: {comparison['verdict']}"]
    return "\n".join(lines)


def default_out(comparison: dict[str, Any]) -> Path:
    """``compare-vs-<A's run>-<A's eval folder>.json`` in B's evaluation folder."""
    a = Path(comparison["a"]).resolve()
    return Path(comparison["b"]) / f"compare-vs-{a.parent.name}-{a.name}.json"


def write_comparison(comparison: dict[str, Any], out: str | Path | None = None, top: int = 5) -> Path:
    """Write the comparison as JSON to ``out`` (default ``default_out``) and its text beside it (``.txt``);
    return the JSON path."""
    out = Path(out) if out is not None else default_out(comparison)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(comparison, indent=2) + "\n")
    out.with_suffix(".txt").write_text(format_comparison(comparison, top) + "\n")
    return out
