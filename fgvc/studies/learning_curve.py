"""How many photos do I need? A learning curve: the same recipe trained on N photos of each class, for a few N.

    fgvc learning-curve --preset cpu --dataset imagefolder --data-root ROOT --train-split train --eval-split val \\
        --per-class 10 25 50 --out logs/curve
    points = run_learning_curve({"preset": "cpu", "dataset": "imagefolder"}, [10, 25, 50], "ROOT", "logs/curve")

It is a study (``fgvc.studies.study``) that the command writes as ``OUT/curve.yaml``: one recipe per N
(``train_per_class``: the same seeded, stratified and nested subsets on any machine) and ``all``, the whole
training split; the smallest N is the reference, so each row's paired difference is what the extra photos
bought, on the same evaluation images. Every point is evaluated on the whole evaluation split. With a schedule
that follows the data (the ``cpu`` preset), each point trains about the same number of optimizer steps. It
writes the study's files, ``OUT/learning_curve.md`` (the table) and ``OUT/learning_curve.png`` (top-1 against
photos per class, each seed a dot, the mean a line). Run it again after a stop: finished points are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from fgvc.core.errors import ConfigError
from fgvc.studies.study import run_study
from fgvc.studies.study_file import seed_folder

CURVE_STUDY = "curve.yaml"
WHOLE = "all"  # the recipe that trains on the whole training split


@dataclass(frozen=True)
class CurvePoint:
    """One point of the curve: its recipe, the photos per class it trained on (the mean over the classes) and its
    top-1 for each seed, with the paired difference from the smallest point (with its 95 % interval and p)."""

    recipe: str
    per_class: float
    top1: list[float]
    diff: float
    diff_ci: tuple[float, float]
    p: float

    @property
    def mean(self) -> float:
        return sum(self.top1) / len(self.top1)


def curve_study(base: dict[str, Any], per_class: list[int], seeds: list[int]) -> dict[str, Any]:
    """The study file of a learning curve: ``base`` config fields, one recipe per value of ``per_class`` (smallest
    first: the reference), then the whole split; ``seeds`` (two or more) run each once per seed."""
    if "train_per_class" in base:
        raise ConfigError("a learning curve sets train_per_class itself: give the values with --per-class")
    if not per_class or min(per_class) < 1 or len(set(per_class)) != len(per_class):
        raise ConfigError(f"--per-class {per_class} is invalid: expected different positive numbers of photos, "
                          f"e.g. --per-class 10 25 50")
    study: dict[str, Any] = {"base": base, "recipes": {
        **{f"per-class-{n}": {"train_per_class": n} for n in sorted(per_class)}, WHOLE: {}}}
    if len(seeds) > 1:
        study["seeds"] = seeds
    elif seeds:
        study["base"] = {**base, "seed": seeds[0]}
    return study


def _per_class(run_dir: Path) -> float:
    """The photos per class a run trained on, from its provenance (the training split's fingerprint)."""
    train = json.loads((run_dir / "provenance.json").read_text())["sessions"][0]["data"]["train"]
    return train["images"] / train["classes"]


def curve_points(out: Path) -> list[CurvePoint]:
    """The points of the learning curve in ``out``, from its ``study.json`` and run folders."""
    summary = json.loads((out / "study.json").read_text())
    seeds = summary.get("seeds") or [None]
    points = []
    for recipe in summary["recipes"]:
        top1 = [run["top1"] for run in recipe["seeds"]] if "seeds" in recipe else [recipe["top1"]]
        folders = [seed_folder(out, seed) / recipe["name"] for seed in seeds]
        points.append(CurvePoint(recipe["name"], sum(_per_class(f) for f in folders) / len(folders), top1,
                                 recipe["diff"], tuple(recipe["diff_ci"]), recipe.get("p", recipe.get("mcnemar_p"))))
    return points


def format_curve(points: list[CurvePoint], split: str) -> str:
    """The learning curve as a Markdown table, points in percent."""
    seeds = len(points[0].top1)
    lines = [f"| photos per class | {split} top-1{f' (mean of {seeds} seeds, min-max)' if seeds > 1 else ''} | "
             f"vs {points[0].recipe} (paired 95 % CI) | p |", "| --- | --- | --- | --- |"]
    for point in points:
        spread = f" ({100 * min(point.top1):.1f}-{100 * max(point.top1):.1f})" if seeds > 1 else ""
        diff = "reference" if point is points[0] else (f"{100 * point.diff:+.1f} ({100 * point.diff_ci[0]:+.1f} to "
                                                       f"{100 * point.diff_ci[1]:+.1f})")
        p = "" if point is points[0] else f"{point.p:.3f}" if point.p >= 0.001 else "<0.001"
        name = f"{point.per_class:.0f}" + (" (all)" if point.recipe == WHOLE else "")
        lines.append(f"| {name} | {100 * point.mean:.1f}{spread} | {diff} | {p} |")
    return "\n".join(lines)


def curve_figure(points: list[CurvePoint], title: str) -> Figure:
    """Top-1 against photos per class (log scale): each seed a dot, the mean a line."""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = [point.per_class for point in points]
    for point in points:
        ax.scatter([point.per_class] * len(point.top1), [100 * t for t in point.top1], s=14, color="tab:blue",
                   alpha=0.5)
    ax.plot(x, [100 * point.mean for point in points], "o-", color="tab:blue", label="mean" if len(
        points[0].top1) > 1 else None)
    for point in points:
        ax.annotate(f"{100 * point.mean:.1f} %", (point.per_class, 100 * point.mean), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{value:.0f}" for value in x])
    ax.minorticks_off()
    ax.set(xlabel="training photos per class", ylabel="top-1 (%)", title=title)
    ax.grid(alpha=0.3)
    if len(points[0].top1) > 1:
        ax.legend()
    return fig


def run_learning_curve(base: dict[str, Any], per_class: list[int], data_root: str | Path, out: str | Path,
                       seeds: list[int] | None = None, device: str | None = None) -> list[CurvePoint]:
    """Train ``base`` (config fields, ``preset`` among them) on ``per_class`` photos of each class and on all of
    them, once per seed of ``seeds`` (default: the base's seed), into ``out``; write the table and figure there and
    return the points."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study_file = out / CURVE_STUDY
    study_file.write_text("# written by fgvc learning-curve\n" + yaml.safe_dump(
        curve_study(base, per_class, seeds or []), sort_keys=False))
    run_study(study_file, data_root, out, device)
    split = json.loads((out / "study.json").read_text())["split"]
    points = curve_points(out)
    (out / "learning_curve.md").write_text(f"Learning curve on {data_root} ({split}):\n\n"
                                           f"{format_curve(points, split)}\n")
    curve_figure(points, f"learning curve: {split} top-1").savefig(out / "learning_curve.png", dpi=120)
    return points
