"""Recipe studies: train several recipes on one dataset and compare each with the first, image by image.

    fgvc study studies/warbirds20.yaml --data-root data/warbirds20 --out logs/study-warbirds20
    rows = run_study("studies/warbirds20.yaml", "data/mine", "logs/study-mine")

A study file (YAML) holds ``base``, the config fields every recipe starts from (``preset: cpu`` and
fields on top of it), and ``recipes``, each a name and the fields it changes. The first recipe is the
reference. A recipe with ``evaluate: NAME`` trains nothing: it evaluates recipe NAME's final checkpoint
again, with evaluation options (``img_size``, ``tta``, ``view``, ``weights``, and ``zoom``: ``true`` or
``{threshold: T, pad: P}``).

Each trained recipe is an ordinary run folder ``OUT/<name>/``; an evaluation-only recipe is an
evaluation folder ``OUT/<name>/``. Every recipe is compared with the reference through
``fgvc.evaluation.compare`` (paired bootstrap intervals and McNemar's exact test on the same images), and the
study writes ``OUT/study.md`` (the table), ``OUT/study.png`` (top-1 against wall-clock minutes) and
``OUT/study.json``. A study that is stopped continues where it stopped when run again: finished
recipes are skipped and an unfinished one resumes from its ``last.pt``.

Seeds: one run's top-1 moves by about a point with its seed. A top-level ``seeds: [0, 1, 2]`` (two or more
different integers; then neither ``base`` nor a recipe may set ``seed``) runs the whole study once per seed,
seed by seed in that order, the config field ``seed`` set to it: seed k's runs and evaluations go to
``OUT/seed-<k>/<name>/``, each seed folder laid out as a study without seeds (its evaluation-only recipes
evaluate that seed's runs). Each recipe is compared with the reference of the same seed, image by image, as
above (the per-seed tables in ``study.md``, and ``study.json``), and across seeds (``fgvc.evaluation.compare.
compare_over_seeds``): the mean of the per-seed differences with a 95 % paired bootstrap interval that draws
the same images for every seed (the image is the unit: an image that is hard for one seed is hard for the
others, so counting its pairs once per seed as independent would overstate the evidence), and p from a
randomisation test that flips the sign of each image's difference summed over the seeds. Both take the trained
runs as given; what another seed could change, the spread of the per-seed differences shows (min to max, sd).
The table gives each recipe's top-1 over the seeds (mean, sd, min-max); the figure draws each seed's curve
thin and their mean thick, in the recipe's colour. A study without ``seeds`` is the study above, unchanged.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from fgvc.core.config import RESUMABLE, TrainConfig, make_config, read_config_file
from fgvc.core.errors import ConfigError
from fgvc.evaluation.compare import compare, compare_over_seeds, write_comparison
from fgvc.runs.csvlog import read_rows

log = logging.getLogger("fgvc")
EVALUATE = "evaluate"  # the key that makes a recipe evaluation-only
EVAL_OPTIONS = ("img_size", "tta", "view", "weights", "zoom")  # what an evaluation-only recipe may set
TIMING_FILE = "timing.json"  # an evaluation-only recipe's seconds and images
SEEDS = "seeds"  # the study file's key: each recipe runs once per seed
# recipes are compared as trained, as each run's own final analysis sees them: without the temperature and the
# unknown-type threshold that the end of training fits on the same split
AS_TRAINED = {"calibrated": False, "unknown": False}


@dataclass(frozen=True)
class Recipe:
    """One recipe of a study: the fields it changes, or the recipe whose checkpoint it evaluates again."""

    name: str
    fields: dict[str, Any]
    evaluates: str | None = None  # evaluation-only: the trained recipe whose last.pt it evaluates

    def describe(self) -> str:
        """The recipe's changes in one line (``-`` for none)."""
        changes = [f"{key}=({' '.join(f'{k} {v}' for k, v in value.items())})" if isinstance(value, dict)
                   else f"{key}={value}" for key, value in self.fields.items()]
        return ", ".join(([f"evaluate {self.evaluates}"] if self.evaluates else []) + changes) or "-"


@dataclass(frozen=True)
class Study:
    """A study file: the base fields and the recipes in order (the first is the reference)."""

    path: Path
    base: dict[str, Any]
    recipes: tuple[Recipe, ...]
    seeds: tuple[int, ...] = ()  # empty: each recipe runs once, with the base's seed


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


def _mapping(value: Any, what: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"study file {path}: {what} is a {type(value).__name__}: expected a mapping of config "
                          f"fields")
    return value


def read_study(path: str | Path) -> Study:
    """Read and check a study file: every recipe must make a valid config (names in the error)."""
    path = Path(path)
    try:
        import yaml

        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read study file {path} ({err.strerror}): expected a YAML file") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"study file {path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict) or not isinstance(data.get("recipes"), dict) or not data["recipes"]:
        raise ConfigError(f"study file {path}: expected a mapping with `base:` (config fields) and `recipes:` "
                          f"(name: fields changed, the first being the reference)")
    unknown = sorted(set(data) - {"base", "recipes", SEEDS})
    if unknown:
        raise ConfigError(f"study file {path}: unknown key(s) {unknown}; expected `base`, `recipes` and "
                          f"optionally `{SEEDS}`")
    base = _mapping(data.get("base"), "base", path)
    seeds = _seeds(data[SEEDS], path) if SEEDS in data else ()
    if seeds and "seed" in base:
        raise ConfigError(f"study file {path}: base sets seed={base['seed']!r} and the study runs `{SEEDS}: "
                          f"{list(seeds)}`: remove one (with `{SEEDS}`, each recipe runs once per seed)")
    recipes: list[Recipe] = []
    for name, fields in data["recipes"].items():
        fields = dict(_mapping(fields, f"recipe {name!r}", path))
        evaluates = fields.pop(EVALUATE, None)
        recipe = Recipe(str(name), fields, evaluates)
        if seeds and "seed" in fields:
            raise ConfigError(f"study file {path}, recipe {recipe.name!r}: sets seed={fields['seed']!r} and the "
                              f"study runs `{SEEDS}: {list(seeds)}`: remove one (with `{SEEDS}`, each recipe runs "
                              f"once per seed)")
        _check_recipe(study_path=path, base=base, recipe=recipe, earlier=recipes)
        recipes.append(recipe)
    return Study(path, base, tuple(recipes), seeds)


def _seeds(value: Any, path: Path) -> tuple[int, ...]:
    """The study file's ``seeds``: two or more different integers >= 0."""
    if (not isinstance(value, list) or not all(type(seed) is int and seed >= 0 for seed in value)
            or len(value) < 2 or len(set(value)) < len(value)):
        raise ConfigError(f"study file {path}: {SEEDS}={value!r}: expected a list of two or more different "
                          f"integers >= 0 (a single seed is the config field `seed` in base)")
    return tuple(value)


def _check_recipe(study_path: Path, base: dict[str, Any], recipe: Recipe, earlier: list[Recipe]) -> None:
    where = f"study file {study_path}, recipe {recipe.name!r}"
    if "/" in recipe.name or recipe.name.startswith("."):
        raise ConfigError(f"{where}: the name becomes a folder: expected no '/' and no leading '.'")
    if recipe.evaluates is None:
        try:
            _config(base, recipe.fields)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        return
    trained = [r.name for r in earlier if r.evaluates is None]
    if recipe.evaluates not in trained:
        raise ConfigError(f"{where}: `evaluate: {recipe.evaluates}` names no trained recipe before it; expected "
                          f"one of {trained}")
    unknown = sorted(set(recipe.fields) - set(EVAL_OPTIONS))
    if unknown:
        raise ConfigError(f"{where}: an evaluation-only recipe may set {list(EVAL_OPTIONS)}, not {unknown}")
    try:
        evaluation_options(recipe)
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{where}: {err}; zoom takes true or {{threshold: T, pad: P}}") from None
    if not earlier:
        raise ConfigError(f"{where}: the first recipe is the reference and must be trained")


def _config(base: dict[str, Any], fields: dict[str, Any], **where: Any) -> TrainConfig:
    values = {**base, **fields}
    return make_config(values.pop("preset", None), fields=values, **where)


def seed_folder(out: str | Path, seed: int | None) -> Path:
    """Where a study's runs with ``seed`` go: ``out/seed-<seed>/`` (``out`` itself for a study without seeds)."""
    return Path(out) if seed is None else Path(out) / f"seed-{seed}"


def recipe_config(study: Study, recipe: Recipe, data_root: str | Path, out: str | Path,
                  device: str | None = None, seed: int | None = None) -> TrainConfig:
    """The config of a trained recipe: its fields over the base, run in ``seed_folder(out, seed)/<name>`` on
    ``data_root`` (on ``device``, default the base's; with ``seed``, default the base's)."""
    return _config(study.base, recipe.fields, data_root=str(data_root),
                   run_dir=str(seed_folder(out, seed) / recipe.name), device=device, seed=seed)


def _check_unchanged(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse to continue a run folder whose config differs from the recipe's (the study file was edited)."""
    saved = read_config_file(run_dir / "config.json")
    ignored = set(RESUMABLE) | {"run_dir", "preset"}
    changed = sorted(name for name, value in cfg.to_dict().items()
                     if name not in ignored and name in saved and saved[name] != value)
    if changed:
        raise ConfigError(f"{run_dir} was trained with other values of {changed} than its recipe now sets: "
                          f"move the folder away to train the recipe again, or give the changed recipe a new name")


def train_recipe(cfg: TrainConfig) -> Path:
    """Train (or resume, or finish the evaluation of) the recipe run ``cfg.run_dir``; its evaluation folder."""
    from fgvc.evaluation.evaluate import evaluate_checkpoint
    from fgvc.training.engine import fit

    run_dir = Path(cfg.run_dir)
    evaluation = run_dir / f"eval-{cfg.eval_split}"
    if (evaluation / "predictions.csv").is_file():
        log.info("study: %s is done", run_dir)
        return evaluation
    last = run_dir / "last.pt"
    if (run_dir / "config.json").is_file():
        _check_unchanged(cfg, run_dir)
    if last.is_file():
        log.info("study: resuming %s", run_dir)
        fit(resume=last, overrides={"data_root": cfg.data_root, "device": cfg.device})
    else:
        fit(cfg)
    if not (evaluation / "predictions.csv").is_file():  # the run had finished before the final analysis
        evaluate_checkpoint(last, cfg.eval_split, cfg.data_root, cfg.device, evaluation, **AS_TRAINED)
    return evaluation


def evaluation_options(recipe: Recipe) -> dict[str, Any]:
    """An evaluation-only recipe's fields as ``evaluate_checkpoint`` arguments (``zoom: {...}`` becomes a
    ``Zoom``; ``true`` and ``false`` stay, and without it the run's own ``eval_zoom`` holds)."""
    from fgvc.models.zoom import Zoom

    options = dict(recipe.fields)
    zoom = options.pop("zoom", None)
    if isinstance(zoom, dict):
        options["zoom"] = Zoom(**zoom)
    elif isinstance(zoom, bool):
        options["zoom"] = zoom
    elif zoom is not None:
        raise ConfigError(f"zoom={zoom!r} is invalid")
    return options


def evaluate_recipe(recipe: Recipe, checkpoint: Path, split: str, data_root: str | Path, out: Path,
                    device: str) -> Path:
    """Evaluate ``checkpoint`` with ``recipe``'s options into ``out`` (skipped when done) and time it."""
    from fgvc.evaluation.evaluate import evaluate_checkpoint

    if (out / "predictions.csv").is_file() and (out / TIMING_FILE).is_file():
        log.info("study: %s is done", out)
        return out
    started = time.perf_counter()
    analysis = evaluate_checkpoint(checkpoint, split, data_root, device, out,
                                   **AS_TRAINED, **evaluation_options(recipe))
    seconds = time.perf_counter() - started
    (out / TIMING_FILE).write_text(json.dumps({"seconds": seconds, "images": analysis.report["num_samples"]}) + "\n")
    return out


def run_curve(run_dir: Path) -> list[tuple[float, float]]:
    """(wall-clock minutes, top-1) at the end of each epoch of a run: ``wall_s`` where ``epochs.csv`` has it
    (runs of older versions have none, or NaN after a resume), else the epochs' ``seconds`` added up; the EMA's
    top-1 where the run kept one (what it reports)."""
    rows = read_rows(run_dir / "epochs.csv")
    curve, elapsed = [], 0.0
    for row in rows:
        wall = row.get("wall_s", math.nan)
        elapsed = elapsed + row["seconds"] if math.isnan(wall) else wall
        curve.append((elapsed / 60, row.get("ema_eval_top1", row["eval_top1"])))
    return curve


def _training_speed(run_dir: Path) -> float:
    """The median of the logged steps' images/s; NaN (unknown) for a run folder restored from a study's
    committed records without its ``steps.csv``: the study then goes on with the rows it has."""
    steps = run_dir / "steps.csv"
    return statistics.median(row["images_per_s"] for row in read_rows(steps)) if steps.is_file() else math.nan


def _speed(images_per_s: float) -> str:
    return "-" if math.isnan(images_per_s) else f"{images_per_s:.0f}"


def _known(value: float) -> float | None:
    """``value`` for ``study.json``, which holds no NaN."""
    return None if math.isnan(value) else value


def recipe_row(recipe: Recipe, folder: Path, reference: Path, out: Path, alpha: float) -> Row:
    """``recipe``'s row: its evaluation in ``folder`` against the reference's, compared and written beside it."""
    report = json.loads((folder / "metrics.json").read_text())
    if folder == reference:
        diff, diff_ci, p = 0.0, (0.0, 0.0), 1.0
    else:
        comparison = compare(reference, folder, alpha)
        write_comparison(comparison)
        diff, diff_ci, p = comparison["top1_diff"], tuple(comparison["top1_diff_ci"]), comparison["mcnemar_p"]
    if recipe.evaluates is None:
        run_dir = folder.parent
        curve, speed = run_curve(run_dir), _training_speed(run_dir)
    else:
        timing = json.loads((folder / TIMING_FILE).read_text())
        trained = run_curve(out / recipe.evaluates)
        curve = [(trained[-1][0] + timing["seconds"] / 60, report["top1"])]
        speed = timing["images"] / timing["seconds"]
    return Row(recipe, report["top1"], tuple(report["top1_ci"]), diff, diff_ci, p, curve[-1][0], speed, curve)


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


def _run_seed(study: Study, data_root: str | Path, out: Path, device: str | None, alpha: float,
              seed: int | None) -> tuple[list[Row], dict[str, Path], str]:
    """Run every recipe of ``study`` with ``seed`` (None: the base's) not yet done, in ``seed_folder(out,
    seed)``; the rows, the evaluation folders by recipe, and the evaluated split."""
    folder = seed_folder(out, seed)
    folders: dict[str, Path] = {}
    configs: dict[str, TrainConfig] = {}
    for recipe in study.recipes:
        if recipe.evaluates is None:
            cfg = recipe_config(study, recipe, data_root, out, device, seed)
            configs[recipe.name] = cfg
            log.info("study: recipe %s (%s)%s", recipe.name, recipe.describe(), "" if seed is None else
                     f", seed {seed}")
            folders[recipe.name] = train_recipe(cfg)
        else:
            trained = configs[recipe.evaluates]
            folders[recipe.name] = evaluate_recipe(recipe, folder / recipe.evaluates / "last.pt",
                                                   trained.eval_split, data_root, folder / recipe.name, trained.device)
    reference = folders[study.recipes[0].name]
    rows = [recipe_row(recipe, folders[recipe.name], reference, folder, alpha) for recipe in study.recipes]
    return rows, folders, configs[study.recipes[0].name].eval_split


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


def run_study(study_file: str | Path, data_root: str | Path, out: str | Path, device: str | None = None,
              alpha: float = 0.05) -> list[Row] | list[SeedsRow]:
    """Run every recipe of ``study_file`` not yet done (in file order; with seeds, seed by seed), then write
    ``out/study.md``, ``study.png`` and ``study.json``; return the table's rows."""
    study, out = read_study(study_file), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not study.seeds:
        rows, folders, split = _run_seed(study, data_root, out, device, alpha, None)
        (out / "study.md").write_text(f"Study {study.path} on {data_root}\n\n{format_table(rows, split)}\n\n"
                                      f"What produced each result:\n\n{format_provenance(rows, folders)}\n")
        study_figure([[row] for row in rows], f"{study.path.stem}: {split} top-1 against wall-clock time").savefig(
            out / "study.png", dpi=110)
        (out / "study.json").write_text(json.dumps(
            {"study": str(study.path), "data_root": str(data_root), "split": split,
             "recipes": [{"name": r.recipe.name, "changes": r.recipe.describe(), **_record(r)} for r in rows]},
            indent=2) + "\n")
        return rows
    runs = [_run_seed(study, data_root, out, device, alpha, seed) for seed in study.seeds]
    split = runs[0][2]
    reference = study.recipes[0].name
    seeds_rows = []
    for index, recipe in enumerate(study.recipes):
        pairs = [(folders[reference], folders[recipe.name]) for _, folders, _ in runs]
        seeds_rows.append(SeedsRow(recipe, [rows[index] for rows, _, _ in runs],
                                   compare_over_seeds(pairs) if index else None))
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
    return seeds_rows
