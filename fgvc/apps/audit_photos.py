"""The photos an audit reads: each with its name, split and class, the splits of a data set in order (training
splits first), and the photos that are tiny or stretched."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from fgvc.data.kinds import dataset_kind

SPLIT_ORDER = ("train", "trainval", "val", "test")  # of a pair across splits, the later split's copy is listed


@dataclass(frozen=True)
class Photo:
    """One photo of the data set: its file, its name relative to the data root (POSIX, as an exclusion list
    names it), its split and its class name."""

    path: Path
    name: str
    split: str
    label: str


def split_order(splits: Sequence[str]) -> list[str]:
    """``splits`` with the training splits first: ``SPLIT_ORDER``'s names in its order, then the rest sorted."""
    known = [name for name in SPLIT_ORDER if name in splits]
    return known + sorted(set(splits) - set(known))


def dataset_splits(root: str | Path, dataset: str) -> list[str]:
    """The splits of a data set, training splits first: FGVC-Aircraft's train, val and test; an imagefolder's
    (those of its split file, or its split folders)."""
    return split_order(dataset_kind(dataset).disjoint_splits(root))


def read_photos(root: str | Path, dataset: str, splits: Sequence[str]
                ) -> tuple[list[Photo], Callable[[str], Image.Image]]:
    """Every photo of ``splits`` as the dataset-building functions read them, and the loader that decodes one as
    training does (FGVC-Aircraft's banner cut off)."""
    photos, loader, base = [], None, Path(os.path.abspath(root))
    for split in splits:
        data = dataset_kind(dataset).read(root, split)
        loader = data.loader
        photos += [Photo(Path(path), Path(os.path.abspath(path)).relative_to(base).as_posix(), split,
                         data.classes[label]) for path, label in data.samples]
    return photos, loader


def odd_sizes(photos: Sequence[Photo], min_side: int, max_aspect: float) -> list[tuple[int, int, int, str]]:
    """The photos (index, width, height, why) whose short side is under ``min_side`` px or whose long side is
    more than ``max_aspect`` times the short one (sizes from the file header: nothing is decoded)."""
    found = []
    for index, photo in enumerate(photos):
        with Image.open(photo.path) as image:
            width, height = image.size
        why = [f"short side {min(width, height)} px < {min_side}"] if min(width, height) < min_side else []
        if max(width, height) > max_aspect * min(width, height):
            why.append(f"aspect {max(width, height) / min(width, height):.1f}:1 > {max_aspect:g}:1")
        if why:
            found.append((index, width, height, "; ".join(why)))
    return found
