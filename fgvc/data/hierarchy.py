"""The label hierarchy of a dataset: each class's family and manufacturer, where the data says them.

FGVC-Aircraft's comes from its annotation files (``layout.read_hierarchy``); a user's own photos
(``--dataset imagefolder``) may carry theirs in ``<data_root>/hierarchy.csv``, beside the class or split folders::

    class,family,manufacturer
    Spitfire Mk I,Spitfire,Supermarine
    Spitfire Mk IX,Spitfire,Supermarine
    Bf 109E,Bf 109,Messerschmitt

One line per class folder; either parent column may be left out of the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fgvc.core.config import PARENT_LEVELS, TrainConfig
from fgvc.core.errors import DatasetError
from fgvc.data.layout import read_hierarchy
from fgvc.data.split import imagefolder_classes
from fgvc.evaluation import metrics

Hierarchy = dict[str, tuple[np.ndarray, list[str]]]  # {parent level: (parent index of each class, parent names)}
HIERARCHY_FILE = "hierarchy.csv"  # beside an imagefolder's class or split folders


def dataset_hierarchy(cfg: TrainConfig, split: str) -> Hierarchy | None:
    """The family / manufacturer hierarchy of ``cfg``'s dataset, or None where it has none: FGVC-Aircraft's
    (below the manufacturer level), or an imagefolder's ``hierarchy.csv`` for the classes of ``split``."""
    if cfg.dataset == "imagefolder":
        path = Path(cfg.data_root) / HIERARCHY_FILE
        return (read_hierarchy_csv(path, imagefolder_classes(cfg.data_root, split, cfg.split_file))
                if path.is_file() else None)
    if cfg.level == "manufacturer":
        return None
    return read_hierarchy(cfg.data_root, split, cfg.level)


def read_hierarchy_csv(path: str | Path, classes: list[str]) -> Hierarchy:
    """The hierarchy ``path`` gives ``classes`` (parent names sorted); a ``DatasetError`` names the file and line
    of a header other than ``class`` and some of ``family``, ``manufacturer``, a line without a class or a
    parent, a class that is not one of ``classes`` or is on two lines; and the file, of a class on no line."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, row) for row in reader]  # line_num: the file's line, even after a quoted newline
    header = [name.strip() for name in rows[0][1]] if rows else []
    levels = header[1:]
    unknown = set(levels) - set(PARENT_LEVELS)
    if header[:1] != ["class"] or not levels or unknown or len(set(levels)) != len(levels):
        raise DatasetError(f"{path} line 1: header {','.join(header)!r}; expected 'class' then family and/or "
                           f"manufacturer, e.g. 'class,{','.join(PARENT_LEVELS)}'")
    known, line_of = set(classes), {}
    parents: dict[str, list[tuple[str, str]]] = {level: [] for level in levels}
    for number, row in rows[1:]:
        values = [value.strip() for value in row]
        if not any(values):
            continue
        where = f"{path} line {number}"
        if len(values) != len(header) or not all(values):
            raise DatasetError(f"{where}: {','.join(row)!r}; expected {len(header)} non-empty values "
                               f"({','.join(header)})")
        name = values[0]
        if name not in known:
            shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
            raise DatasetError(f"{where}: class {name!r} is not a class folder of the data: expected one of the "
                               f"{len(classes)} class folders ({shown})")
        if name in line_of:
            raise DatasetError(f"{where}: class {name!r} is already on line {line_of[name]}: expected one line "
                               f"per class, a class has one parent per level")
        line_of[name] = number
        for level, parent in zip(levels, values[1:], strict=True):
            parents[level].append((name, parent))
    missing = [name for name in classes if name not in line_of]
    if missing:
        raise DatasetError(f"{path}: no line for class {missing[0]!r} ({len(missing)} class folder(s) without one): "
                           f"expected one line per class folder")
    hierarchy = {}
    for level in (level for level in PARENT_LEVELS if level in levels):  # family before manufacturer
        names = sorted({parent for _, parent in parents[level]})
        hierarchy[level] = (metrics.parent_index(classes, names, parents[level]), names)
    return hierarchy


def hierarchy_names(hierarchy: Hierarchy) -> dict[str, list[str]]:
    """``{level: parent name of each class}``, the form checkpoints and predictions carry."""
    return {level: [names[i] for i in parent_of] for level, (parent_of, names) in hierarchy.items()}
