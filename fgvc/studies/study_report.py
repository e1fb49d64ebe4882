"""The report of a study: its rows, the Markdown tables (with seeds: across them), what produced each result, the
figure, and the files ``study.md``, ``study.png`` and ``study.json``."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from fgvc.studies.study_file import Recipe, Study, seed_folder


@dataclass
class Row:
    """One recipe's line of the study table, and its curve for the figure."""

    recipe: Recipe
    top1: float
    top1_ci: tuple[float, float]
    diff: float  # top-1 minus the reference's (0 for the reference)
    diff_ci: tuple[float, float]
    mcnemar_p: float
    minutes: float  # wall-clock, from the start of training (of the evaluated run) to this recipe's result
    images_per_s: float  # training images/s (median over the logged steps), or evaluation images/s
    curve: list[tuple[float, float]]  # (minutes, top-1) after each epoch; one point for an evaluation


@dataclass
class SeedsRow:
    """One recipe of a study with seeds: its row for each seed, and its difference from the reference across
    the seeds (``compare_over_seeds``; None for the reference)."""

    recipe: Recipe
    runs: list[Row]  # in the order of the study's seeds
    paired: dict[str, Any] | None


def _speed(images_per_s: float) -> str:
    return "-" if math.isnan(images_per_s) else f"{images_per_s:.0f}"


def _known(value: float) -> float | None:
    """``value`` for ``study.json``, which holds no NaN."""
    return None if math.isnan(value) else value


def _diff(diff: float, ci: tuple[float, float] | list[float]) -> str:
    return f"{100 * diff:+.1f} ({100 * ci[0]:+.1f} to {100 * ci[1]:+.1f})"


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def format_table(rows: list[Row], split: str) -> str:
    """The study as a Markdown table, points in percent."""
    lines = [f"| recipe | changes | {split} top-1 (95 % CI) | vs {rows[0].recipe.name} (paired 95 % CI) | "
             f"McNemar p | minutes | images/s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        reference = row is rows[0]
        diff = "reference" if reference else _diff(row.diff, row.diff_ci)
        p = "" if reference else _p(row.mcnemar_p)
        lines.append(f"| {row.recipe.name} | {row.recipe.describe()} | {100 * row.top1:.1f} "
                     f"({100 * row.top1_ci[0]:.1f}-{100 * row.top1_ci[1]:.1f}) | {diff} | {p} | {row.minutes:.1f} | "
                     f"{_speed(row.images_per_s)} |")
    return "\n".join(lines)


def spread(values: list[float]) -> dict[str, float]:
    """The mean, sample standard deviation, min and max of two or more ``values``."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values), "min": min(values),
            "max": max(values)}


def format_seeds_table(rows: list[SeedsRow], split: str) -> str:
    """A study with seeds as a Markdown table, points in percent: each recipe's top-1 over the seeds, and its
    difference from the reference, paired within each seed, summarised across them."""
    lines = [f"| recipe | changes | {split} top-1 over {len(rows[0].runs)} seeds: mean ± sd (min-max) | "
             f"vs {rows[0].recipe.name}: mean of the seeds' paired differences (95 % CI) | the seeds' differences: "
             f"min to max (sd) | p across seeds | minutes (mean) | images/s (mean) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        top1 = spread([run.top1 for run in row.runs])
        diff, diffs, p = "reference", "", ""
        if row.paired is not None:
            each = spread(row.paired["top1_diffs"])
            diff = _diff(row.paired["top1_diff"], row.paired["top1_diff_ci"])
            diffs = f"{100 * each['min']:+.1f} to {100 * each['max']:+.1f} ({100 * each['sd']:.1f})"
            p = _p(row.paired["p"])
        lines.append(f"| {row.recipe.name} | {row.recipe.describe()} | {100 * top1['mean']:.1f} ± "
                     f"{100 * top1['sd']:.1f} ({100 * top1['min']:.1f}-{100 * top1['max']:.1f}) | {diff} | {diffs} | "
                     f"{p} | {statistics.fmean(run.minutes for run in row.runs):.1f} | "
                     f"{_speed(statistics.fmean(run.images_per_s for run in row.runs))} |")
    return "\n".join(lines)


def _short(fingerprint: dict[str, Any] | None) -> str:
    return "unrecorded" if not fingerprint else f"{fingerprint['images']} images, {fingerprint['sha256'][:12]}"


def _code(versions: list[dict[str, Any]]) -> str:
    if not versions or all(v["commit"] is None for v in versions):
        return "unrecorded"
    return " + ".join(f"{v['commit'][:10]}{' (dirty)' if v['dirty'] else ''}" for v in versions)


def format_provenance(rows: list[Row], folders: dict[str, Path]) -> str:
    """What produced each recipe's result (``metrics.json``'s provenance): the code and both data fingerprints."""
    lines = ["| recipe | code | training data | evaluated data |", "| --- | --- | --- | --- |"]
    for row in rows:
        report = json.loads((folders[row.recipe.name] / "metrics.json").read_text())
        trained = report.get("trained_with") or {}
        train_data = trained.get("train_data") or [None]
        lines.append(f"| {row.recipe.name} | {_code(trained.get('code', []))} | "
                     f"{' + '.join(_short(d) for d in train_data)} | {_short(report.get('data'))} |")
    return "\n".join(lines)


def mean_curve(curves: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Point by point (epoch by epoch), the mean minutes and mean top-1 of one or more curves."""
    return [(statistics.fmean(m for m, _ in points), statistics.fmean(t for _, t in points))
            for points in zip(*curves, strict=True)]


def study_figure(recipes: list[list[Row]], title: str) -> Figure:
    """Top-1 against wall-clock minutes: a curve per trained recipe (its epochs), and a marker per
    evaluation-only recipe in the colour of the run it evaluated. ``recipes`` holds each recipe's rows, one per
    seed: with several, each seed's curve (or marker) is drawn thin (small) and their mean thick (large)."""
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax = fig.add_subplot()
    trained = [runs[0].recipe.name for runs in recipes if runs[0].recipe.evaluates is None]
    colours = {name: matplotlib.colormaps["tab20"](index % 20) for index, name in enumerate(trained)}
    markers = itertools.cycle("*PXDs^v<>p")
    for runs in recipes:
        recipe = runs[0].recipe
        if recipe.evaluates is None:
            style = {"color": colours[recipe.name], "marker": "o", "markersize": 3, "linewidth": 1.4}
            seed_style = {"linewidth": 0.7, "markersize": 1.5}
        else:
            style = {"color": colours[recipe.evaluates], "marker": next(markers), "markersize": 9,
                     "linestyle": "none", "markeredgecolor": "black", "markeredgewidth": 0.5}
            seed_style = {"markersize": 5}
        top1 = [run.top1 for run in runs]
        label = f"{recipe.name} ({100 * top1[0]:.1f} %)"
        if len(runs) > 1:
            each = spread(top1)
            label = f"{recipe.name} ({100 * each['mean']:.1f} ± {100 * each['sd']:.1f} %, {len(runs)} seeds)"
            for run in runs:
                minutes, values = zip(*run.curve)
                ax.plot(minutes, [100 * v for v in values], alpha=0.45, **{**style, **seed_style})
        minutes, values = zip(*mean_curve([run.curve for run in runs]))
        ax.plot(minutes, [100 * v for v in values], label=label, **style)
    ax.set(xlabel="wall-clock minutes since the start of training", ylabel="top-1 (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def _record(row: Row) -> dict[str, Any]:
    """A row as ``study.json`` holds it."""
    return {"top1": row.top1, "top1_ci": row.top1_ci, "diff": row.diff, "diff_ci": row.diff_ci,
            "mcnemar_p": row.mcnemar_p, "minutes": row.minutes, "images_per_s": _known(row.images_per_s),
            "curve": row.curve}


def _seeds_record(row: SeedsRow, seeds: tuple[int, ...]) -> dict[str, Any]:
    """A recipe of a study with seeds as ``study.json`` holds it: the summary, then each seed's row."""
    top1 = spread([run.top1 for run in row.runs])
    paired = row.paired or {"top1_diffs": [0.0] * len(seeds), "top1_diff": 0.0, "top1_diff_ci": [0.0, 0.0], "p": 1.0}
    diffs = spread(paired["top1_diffs"])
    return {"name": row.recipe.name, "changes": row.recipe.describe(),
            **{f"top1_{key}": value for key, value in top1.items()},
            "diff": paired["top1_diff"], "diff_ci": paired["top1_diff_ci"], "p": paired["p"],
            **{f"diff_{key}": value for key, value in diffs.items() if key != "mean"},
            "minutes": statistics.fmean(run.minutes for run in row.runs),
            "images_per_s": _known(statistics.fmean(run.images_per_s for run in row.runs)),
            "seeds": [{"seed": seed, **_record(run)} for seed, run in zip(seeds, row.runs, strict=True)]}


ACROSS_SEEDS = ("Across seeds, each recipe is compared with the reference of the same seed, image by image, and "
                "the seeds' differences are averaged: the 95 % interval is a paired bootstrap over images that draws "
                "the same images for every seed, and p a randomisation test that flips the sign of each image's "
                "difference summed over the seeds. Both take these runs as given; the seeds' spread shows what "
                "another seed could change.")


def write_study(study: Study, data_root: str | Path, out: Path, rows: list[Row], folders: dict[str, Path],
                split: str) -> None:
    """A study without seeds: ``out/study.md`` (the table, what produced each result), ``study.png`` and
    ``study.json``."""
    (out / "study.md").write_text(f"Study {study.path} on {data_root}\n\n{format_table(rows, split)}\n\n"
                                  f"What produced each result:\n\n{format_provenance(rows, folders)}\n")
    study_figure([[row] for row in rows], f"{study.path.stem}: {split} top-1 against wall-clock time").savefig(
        out / "study.png", dpi=110)
    (out / "study.json").write_text(json.dumps(
        {"study": str(study.path), "data_root": str(data_root), "split": split,
         "recipes": [{"name": r.recipe.name, "changes": r.recipe.describe(), **_record(r)} for r in rows]},
        indent=2) + "\n")


def write_seeds_study(study: Study, data_root: str | Path, out: Path, seeds_rows: list[SeedsRow],
                      runs: list[tuple[list[Row], dict[str, Path], str]], split: str) -> None:
    """A study with seeds: ``out/study.md`` (the table across seeds, then each seed's, as ``write_study``'s),
    ``study.png`` and ``study.json``; ``runs`` holds each seed's rows, evaluation folders and split."""
    per_seed = "".join(f"\n\nSeed {seed} (`{seed_folder(out, seed).name}/`):\n\n{format_table(rows, split)}\n\n"
                       f"What produced each result:\n\n{format_provenance(rows, folders)}"
                       for seed, (rows, folders, _) in zip(study.seeds, runs, strict=True))
    (out / "study.md").write_text(f"Study {study.path} on {data_root}, seeds {list(study.seeds)}\n\n"
                                  f"{format_seeds_table(seeds_rows, split)}\n\n{ACROSS_SEEDS}{per_seed}\n")
    study_figure([row.runs for row in seeds_rows], f"{study.path.stem}: {split} top-1 against wall-clock time, "
                 f"{len(study.seeds)} seeds").savefig(out / "study.png", dpi=110)
    (out / "study.json").write_text(json.dumps(
        {"study": str(study.path), "data_root": str(data_root), "split": split, "seeds": list(study.seeds),
         "recipes": [_seeds_record(row, study.seeds) for row in seeds_rows]}, indent=2) + "\n")
