"""Reading a study file (its format: ``fgvc.studies.study``) and checking every recipe, and the config and run
folder of each trained recipe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgvc.core.config import TrainConfig, make_config
from fgvc.core.errors import ConfigError

EVALUATE = "evaluate"  # the key that makes a recipe evaluation-only
EVAL_OPTIONS = ("img_size", "tta", "view", "weights", "zoom")  # what an evaluation-only recipe may set
SEEDS = "seeds"  # the study file's key: each recipe runs once per seed


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
