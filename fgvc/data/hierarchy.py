"""The label hierarchy of a dataset: each class's family and manufacturer, where the data says them, and the
answers rolled up to them.

    hierarchy = read_hierarchy("data", "test")                  # FGVC-Aircraft's, from its annotation files
    families, probability = hierarchy.top_parents(scores, "family")   # the likeliest family of each image

FGVC-Aircraft's comes from its annotation files (``read_hierarchy``); a user's own photos
(``--dataset imagefolder``) may carry theirs in ``<data_root>/hierarchy.csv``, beside the class or split folders::

    class,family,manufacturer
    Spitfire Mk I,Spitfire,Supermarine
    Spitfire Mk IX,Spitfire,Supermarine
    Bf 109E,Bf 109,Messerschmitt

One line per class folder; either parent column may be left out of the file. Checkpoints, ONNX files and
predictions carry a hierarchy as the parent name of each class (``hierarchy_names``; ``Hierarchy.from_names``
reads it back).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fgvc.core.config import LEVELS, PARENT_LEVELS
from fgvc.core.errors import DatasetError
from fgvc.core.labels import class_indices, top_classes
from fgvc.data.layout import check_files, data_dir, labels_file, read_classes, read_labels

HIERARCHY_FILE = "hierarchy.csv"  # beside an imagefolder's class or split folders


class ParentLevel(NamedTuple):
    """One coarser level of a hierarchy: ``names[parent_of[c]]`` is the parent of class c."""

    parent_of: np.ndarray  # int64 (C,)
    names: list[str]  # the level's parent names, sorted


@dataclass(frozen=True, eq=False)
class Hierarchy(Mapping[str, ParentLevel]):
    """The parent of each class at the coarser levels the data gives (family before manufacturer), read as a
    mapping: ``hierarchy["family"]`` is a ``ParentLevel``. Parent names are sorted, so the hierarchy read from the
    data and the one rebuilt from a checkpoint (``from_names``) number the parents alike, and every roll-up breaks
    a tie the one way ``fgvc.core.labels.top_classes`` does: to the lower index, the first name."""

    levels: dict[str, ParentLevel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if list(self.levels) != [level for level in PARENT_LEVELS if level in self.levels]:
            raise ValueError(f"hierarchy levels {list(self.levels)}: expected some of {list(PARENT_LEVELS)}, "
                             f"in that order")
        checked = {}
        for level, (parent_of, names) in self.levels.items():
            if list(names) != sorted(set(names)):
                raise ValueError(f"the {level} names must be distinct and sorted, got {list(names)[:5]}")
            checked[level] = ParentLevel(class_indices(parent_of, len(names), f"the {level} of each class"),
                                         list(names))
        if len({parents.parent_of.size for parents in checked.values()}) > 1:
            raise ValueError(f"the hierarchy levels map {[p.parent_of.size for p in checked.values()]} classes; "
                             f"expected the same classes at every level")
        object.__setattr__(self, "levels", checked)

    def __getitem__(self, level: str) -> ParentLevel:
        return self.levels[level]

    def __iter__(self) -> Iterator[str]:
        return iter(self.levels)

    def __len__(self) -> int:
        return len(self.levels)

    @classmethod
    def from_names(cls, class_parents: Mapping[str, Sequence[str]]) -> Hierarchy:
        """The hierarchy ``{level: parent name of each class}`` describes (``hierarchy_names``' form)."""
        levels = {}
        for level, parents in class_parents.items():
            names = sorted(set(parents))
            position = {name: index for index, name in enumerate(names)}
            levels[level] = ParentLevel(np.array([position[name] for name in parents], dtype=np.int64), names)
        return cls(levels)

    def parents(self, labels: np.ndarray, level: str) -> np.ndarray:
        """The parent index at ``level`` of each class index of ``labels`` (N,)."""
        parent_of = self.levels[level].parent_of
        return parent_of[class_indices(labels, parent_of.size, "labels")]

    def summed(self, scores: np.ndarray, level: str) -> np.ndarray:
        """Each parent's probability at ``level`` (N, parents): the sum of its classes' columns of ``scores`` (N, C).

        With softmax probabilities as ``scores`` each row still sums to 1: a confident family even where the
        variant is uncertain. A parent without classes gets 0.
        """
        parent_of, names = self.levels[level]
        scores = np.asarray(scores)
        if scores.ndim != 2 or scores.shape[1] != parent_of.size:
            raise ValueError(f"the {level} level maps {parent_of.size} classes; expected scores of shape "
                             f"(N, {parent_of.size}), got {scores.shape}")
        return scores @ np.eye(len(names), dtype=scores.dtype)[parent_of]

    def top_parents(self, scores: np.ndarray, level: str) -> tuple[np.ndarray, np.ndarray]:
        """The parent at ``level`` with the highest summed probability (``summed``) of each row of ``scores``, a
        tie to the lower index (``top_classes``), and that probability: (N,) int64 and (N,)."""
        summed = self.summed(scores, level)
        top = top_classes(summed, 1)[:, 0]
        return top, summed[np.arange(top.size), top]


def hierarchy_names(hierarchy: Mapping[str, ParentLevel]) -> dict[str, list[str]]:
    """``{level: parent name of each class}``, the form checkpoints and predictions carry."""
    return {level: [names[i] for i in parent_of] for level, (parent_of, names) in hierarchy.items()}


def parent_index(child_names: list[str], parent_names: list[str], pairs: Iterable[tuple[str, str]]) -> np.ndarray:
    """Build ``parent_of`` (int64, one entry per child) from (child_name, parent_name) pairs.

    Pairs may repeat (e.g. one per image). Raises ValueError naming the child when a
    child maps to two parents, has no parent, or a name is not in the given lists.
    """
    child_pos = {name: i for i, name in enumerate(child_names)}
    parent_pos = {name: i for i, name in enumerate(parent_names)}
    parent_of = np.full(len(child_names), -1, dtype=np.int64)
    for child, parent in pairs:
        if child not in child_pos:
            raise ValueError(f"child {child!r} is not one of the {len(child_names)} child names")
        if parent not in parent_pos:
            raise ValueError(f"parent {parent!r} of child {child!r} is not one of the {len(parent_names)} parent names")
        c, p = child_pos[child], parent_pos[parent]
        if parent_of[c] not in (-1, p):
            raise ValueError(f"child {child!r} maps to two parents: {parent_names[parent_of[c]]!r} and {parent!r}")
        parent_of[c] = p
    orphans = [child_names[c] for c in np.flatnonzero(parent_of < 0)]
    if orphans:
        raise ValueError(f"child {orphans[0]!r} has no parent ({len(orphans)} children without a parent)")
    return parent_of


def read_hierarchy(root: str | Path, split: str, level: str = "variant") -> Hierarchy:
    """FGVC-Aircraft's hierarchy above ``level``: each class's family and manufacturer (the parent names of
    ``families.txt`` and ``manufacturers.txt``, sorted).

    The mapping joins the annotation files of the levels by image id, so it holds exactly what the
    dataset says; a class in two families, or an image without a family, is a ``DatasetError``.
    """
    for name in LEVELS[LEVELS.index(level):]:
        check_files(root, split, name)
    child_names, children = read_classes(root, level), dict(read_labels(root, split, level))
    levels = {}
    for parent in LEVELS[LEVELS.index(level) + 1:]:
        parent_names, parents = sorted(read_classes(root, parent)), dict(read_labels(root, split, parent))
        unlabelled = sorted(set(children) - set(parents))
        if unlabelled:
            raise DatasetError(f"{labels_file(root, split, parent)} has no line for image {unlabelled[0]} "
                               f"({len(unlabelled)} in all): expected every image of images_{level}_{split}.txt")
        pairs = {(children[image], parents[image]) for image in children}
        try:
            levels[parent] = ParentLevel(parent_index(child_names, parent_names, pairs), parent_names)
        except ValueError as err:  # a class in two families, or one without any
            raise DatasetError(f"images_{level}_{split}.txt and images_{parent}_{split}.txt under "
                               f"{data_dir(root)} disagree: {err}") from err
    return Hierarchy(levels)


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
        hierarchy[level] = ParentLevel(parent_index(classes, names, parents[level]), names)
    return Hierarchy(hierarchy)


def hierarchy_problems(root: Path, class_lists: list[list[str]]) -> list[str]:
    """The first problem of an imagefolder's ``hierarchy.csv`` with each list of classes (a split's; each problem
    once)."""
    if not (root / HIERARCHY_FILE).is_file():
        return []
    problems = []
    for classes in class_lists:
        try:
            read_hierarchy_csv(root / HIERARCHY_FILE, classes)
        except DatasetError as err:
            if str(err) not in problems:
                problems.append(str(err))
    return problems
