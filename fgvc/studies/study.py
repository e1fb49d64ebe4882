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

This module runs a study; ``fgvc.studies.study_file`` reads the study file and ``fgvc.studies.study_report``
writes its tables, figure and records.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from pathlib import Path

from fgvc.core.config import RESUMABLE, TrainConfig, read_config_file
from fgvc.core.errors import ConfigError
from fgvc.evaluation.compare import compare, compare_over_seeds, write_comparison
from fgvc.runs.csvlog import read_rows
from fgvc.studies.study_file import Recipe, Study, evaluation_options, read_study, recipe_config, seed_folder
from fgvc.studies.study_report import Row, SeedsRow, write_seeds_study, write_study

log = logging.getLogger("fgvc")
TIMING_FILE = "timing.json"  # an evaluation-only recipe's seconds and images
# recipes are compared as trained, as each run's own final analysis sees them: without the temperature and the
# unknown-type threshold that the end of training fits on the same split
AS_TRAINED = {"calibrated": False, "unknown": False}


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


def run_study(study_file: str | Path, data_root: str | Path, out: str | Path, device: str | None = None,
              alpha: float = 0.05) -> list[Row] | list[SeedsRow]:
    """Run every recipe of ``study_file`` not yet done (in file order; with seeds, seed by seed), then write
    ``out/study.md``, ``study.png`` and ``study.json``; return the table's rows."""
    study, out = read_study(study_file), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not study.seeds:
        rows, folders, split = _run_seed(study, data_root, out, device, alpha, None)
        write_study(study, data_root, out, rows, folders, split)
        return rows
    runs = [_run_seed(study, data_root, out, device, alpha, seed) for seed in study.seeds]
    split = runs[0][2]
    reference = study.recipes[0].name
    seeds_rows = []
    for index, recipe in enumerate(study.recipes):
        pairs = [(folders[reference], folders[recipe.name]) for _, folders, _ in runs]
        seeds_rows.append(SeedsRow(recipe, [rows[index] for rows, _, _ in runs],
                                   compare_over_seeds(pairs) if index else None))
    write_seeds_study(study, data_root, out, seeds_rows, runs, split)
    return seeds_rows
