"""Each kind of dataset as one object, found by its name (``cfg.dataset``): how a split of it is built, what
``fgvc check-data`` decodes of it, where its hierarchy comes from, whether its photos carry FGVC-Aircraft's banner
and for what size ``fgvc prepare`` made it; and the datasets ``cfg`` names, built through it.

    kind = dataset_kind(cfg.dataset)                   # FgvcAircraftKind or ImageFolderKind
    test = build_split(cfg, "test", transform)          # without the photos of cfg.exclude
    train = training_split(cfg)                         # decoded images, cut to cfg.train_per_class
    hierarchy = dataset_hierarchy(cfg, "test")          # a Hierarchy, or None

A new kind of dataset is one more ``DatasetKind`` in ``KINDS``, with what it allows of the config
(``fgvc.core.config.DATASET_FIELDS``).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from fgvc.core.config import FGVC_SPLITS, LEVELS, TrainConfig
from fgvc.core.defaults import SPLIT_FILE
from fgvc.core.errors import ConfigError, DatasetError
from fgvc.data.datasets import build_dataset, build_imagefolder, keep_samples, leave_out, per_class_subset
from fgvc.data.hierarchy import HIERARCHY_FILE, Hierarchy, hierarchy_problems, read_hierarchy, read_hierarchy_csv
from fgvc.data.images import load_image
from fgvc.data.layout import annotation_problems, data_dir, missing_message, prepared_info
from fgvc.data.split import (
    EXCLUDED,
    check_listing,
    find_photos,
    imagefolder_classes,
    imagefolder_splits,
    listed_classes,
    read_split_file,
    split_file_of,
)
from fgvc.data.transforms import prepared_short_side


class CheckPlan(NamedTuple):
    """What ``fgvc check-data`` decodes of a dataset, how, and the problems found before decoding."""

    files: list[str]
    problems: list[str]
    loader: Callable[[str], object]


class DatasetKind(ABC):
    """What fgvc needs to know of one kind of dataset."""

    name: str  # the value of ``cfg.dataset``

    @abstractmethod
    def build(self, cfg: TrainConfig, split: str, transform: Callable | None, shrink_to: int | None) -> Dataset:
        """Split ``split`` of ``cfg``'s dataset, its photos decoded for ``shrink_to`` (``load_image``) and passed
        through ``transform``."""

    @abstractmethod
    def check_plan(self, root: Path, banner_px: int) -> CheckPlan:
        """What ``check_data`` decodes of the dataset under ``root``; a ``DatasetError`` when there is none."""

    @abstractmethod
    def hierarchy(self, cfg: TrainConfig, split: str) -> Hierarchy | None:
        """The family / manufacturer hierarchy of the classes of ``split``, or None where the data gives none."""

    @abstractmethod
    def banner_rows(self, cfg: TrainConfig) -> int:
        """Rows of FGVC-Aircraft's banner a run of ``cfg`` cut from the bottom of its photos (0: they have none)."""

    @abstractmethod
    def prepared_size(self, root: str | Path) -> int | None:
        """The ``img_size`` ``fgvc prepare`` made the dataset under ``root`` for, or None for an unprepared one."""

    @abstractmethod
    def disjoint_splits(self, root: str | Path) -> list[str]:
        """The splits under ``root`` that share no photo (what ``fgvc audit`` reads); a ``DatasetError`` when
        there are none."""

    @abstractmethod
    def read(self, root: str | Path, split: str) -> Dataset:
        """Split ``split`` under ``root`` as training reads its photos, without transforms."""


class FgvcAircraftKind(DatasetKind):
    """FGVC-Aircraft, read from its annotation files (``fgvc.data.layout``)."""

    name = "fgvc-aircraft"

    def build(self, cfg: TrainConfig, split: str, transform: Callable | None, shrink_to: int | None) -> Dataset:
        return build_dataset(cfg.data_root, split, cfg.level, transform, download=cfg.download,
                             banner_px=cfg.banner_px, shrink_to=shrink_to)

    def check_plan(self, root: Path, banner_px: int) -> CheckPlan:
        """Every annotation file of every level and split, then every ``images/*.jpg`` (taller than
        ``banner_px`` unless ``fgvc prepare`` cut the banner)."""
        data = data_dir(root)
        if not data.is_dir():
            raise DatasetError(missing_message(root, data))
        problems = [problem for level in LEVELS for split in FGVC_SPLITS
                    for problem in annotation_problems(root, split, level)]
        files = sorted(str(p) for p in (data / "images").glob("*.jpg"))
        return CheckPlan(files, problems,
                         functools.partial(load_image, banner_px=0 if prepared_info(root) else banner_px))

    def hierarchy(self, cfg: TrainConfig, split: str) -> Hierarchy | None:
        """The annotation files' families and manufacturers above ``cfg.level`` (none above manufacturer)."""
        return None if cfg.level == "manufacturer" else read_hierarchy(cfg.data_root, split, cfg.level)

    def banner_rows(self, cfg: TrainConfig) -> int:
        return cfg.banner_px

    def prepared_size(self, root: str | Path) -> int | None:
        info = prepared_info(root)
        return int(info["img_size"]) if info else None

    def disjoint_splits(self, root: str | Path) -> list[str]:
        return ["train", "val", "test"]  # trainval is train and val

    def read(self, root: str | Path, split: str) -> Dataset:
        return build_dataset(root, split)


class ImageFolderKind(DatasetKind):
    """A user's own photos: a flat folder with a split file, or split folders (``fgvc.data.split``)."""

    name = "imagefolder"

    def build(self, cfg: TrainConfig, split: str, transform: Callable | None, shrink_to: int | None) -> Dataset:
        return build_imagefolder(cfg.data_root, split, transform, shrink_to, cfg.split_file)

    def check_plan(self, root: Path, banner_px: int) -> CheckPlan:
        """The split file against the photos (missing or unlisted ones raise ``DatasetError``) and every photo it
        does not exclude, or every image of every split folder; ``hierarchy.csv`` where there is one."""
        listing = split_file_of(root)
        if listing is not None:
            listed = read_split_file(listing)
            check_listing(root, listing, listed, find_photos(root))
            files = [str(root / photo) for photo, row in listed.items() if row.split != EXCLUDED]
            return CheckPlan(files, hierarchy_problems(root, [listed_classes(listed)]), load_image)
        splits = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not splits:
            raise DatasetError(f"no split folders under {root}: expected {root}/<split>/<class name>/<image files>, "
                               f"or a flat folder {root}/<class name>/<image files> split by `fgvc split {root}`")
        files = [path for split in splits for path, _ in datasets.ImageFolder(split).samples]
        return CheckPlan(files, hierarchy_problems(root, [find_classes(split)[0] for split in splits]), load_image)

    def hierarchy(self, cfg: TrainConfig, split: str) -> Hierarchy | None:
        """``<data_root>/hierarchy.csv`` for the classes of ``split``, where it exists."""
        path = Path(cfg.data_root) / HIERARCHY_FILE
        return (read_hierarchy_csv(path, imagefolder_classes(cfg.data_root, split, cfg.split_file))
                if path.is_file() else None)

    def banner_rows(self, cfg: TrainConfig) -> int:
        return 0

    def prepared_size(self, root: str | Path) -> int | None:
        return None

    def disjoint_splits(self, root: str | Path) -> list[str]:
        """The splits of the split file or the split folders; a flat folder must be split first."""
        flat = [p for p in Path(root).glob("*/*") if p.is_file() and p.name.lower().endswith(IMG_EXTENSIONS)]
        if flat and split_file_of(root) is None:
            raise DatasetError(f"{flat[0]} lies in a class folder with no split file: split the flat folder first "
                               f"(`fgvc split {root}` writes {Path(root) / SPLIT_FILE})")
        splits = imagefolder_splits(root)
        if not splits:
            raise DatasetError(f"no split file or split folders under {root}: expected {Path(root) / SPLIT_FILE} "
                               f"(fgvc split {root}) or {root}/<split>/<class name>/<image files>")
        return list(splits)

    def read(self, root: str | Path, split: str) -> Dataset:
        return build_imagefolder(root, split)


KINDS: dict[str, DatasetKind] = {kind.name: kind for kind in (FgvcAircraftKind(), ImageFolderKind())}


def dataset_kind(name: str) -> DatasetKind:
    """The kind of dataset called ``name``; a ``ConfigError`` names the known kinds."""
    if name not in KINDS:
        raise ConfigError(f"unknown dataset {name!r}: expected one of {', '.join(KINDS)}")
    return KINDS[name]


def build_split(cfg: TrainConfig, split: str, transform: Callable | None, shrink_to: int | None = None) -> Dataset:
    """The dataset named by ``cfg`` for one split (``shrink_to``: see ``load_image``), without the photos of
    ``cfg.exclude``."""
    dataset = dataset_kind(cfg.dataset).build(cfg, split, transform, shrink_to)
    if cfg.exclude is not None:
        leave_out(dataset, cfg.data_root, cfg.exclude, split)
    return dataset


def training_split(cfg: TrainConfig) -> Dataset:
    """``cfg``'s training split as decoded images (see ``fgvc.data.datasets.augmented``), cut to
    ``cfg.train_per_class`` photos a class when it is set (``per_class_subset``)."""
    split = build_split(cfg, cfg.train_split, None, shrink_to=prepared_short_side(cfg.img_size))
    if cfg.train_per_class is not None:
        keep_samples(split, per_class_subset(split.targets, cfg.train_per_class, cfg.seed))
    return split


def dataset_hierarchy(cfg: TrainConfig, split: str) -> Hierarchy | None:
    """The family / manufacturer hierarchy of ``cfg``'s dataset for the classes of ``split``, or None where it has
    none (``DatasetKind.hierarchy``)."""
    return dataset_kind(cfg.dataset).hierarchy(cfg, split)
