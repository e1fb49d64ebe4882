"""What each item of a split is: FGVC-Aircraft read from its annotation files, a user's own photos in
ImageFolder's layout or listed by a split file (``fgvc.data.split``), and a training split with its per-image
augmentation; an exclusion list leaves photos out of any of them.

    test = build_dataset("data", "test")                 # FGVC-Aircraft, banner cropped
    train = augmented(cfg, training_split(cfg))          # (epoch, index) -> augmented uint8 image, label

The split ``cfg`` names is built by its kind of dataset (``fgvc.data.kinds``: ``build_split``, ``training_split``).

Every kind of dataset holds ``classes``, ``samples`` (file, label) and ``targets``, so the rest of fgvc reads
files and labels without decoding an image; ``sources`` holds the sha256 of the split file and exclusion list
that chose its items (``dataset_sources``: part of its data fingerprint).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets

from fgvc.core.config import TrainConfig
from fgvc.core.errors import DatasetError
from fgvc.data.images import load_image
from fgvc.data.layout import annotation_problems, check_files, image_path, prepared_info, read_classes, read_labels
from fgvc.data.prepare import download_fgvc
from fgvc.data.split import file_sha256, read_exclusions, split_file_of, split_samples
from fgvc.data.transforms import Augment

log = logging.getLogger("fgvc")

class FgvcAircraft(Dataset):
    """One split of FGVC-Aircraft at one label level, as its annotation files say: ``classes`` in the line
    order of ``variants.txt`` (or families / manufacturers), ``samples`` in the order of the split's file.
    Items are ``(transform(loader(file)), label)``, as ImageFolder's are."""

    def __init__(self, root: str | Path, split: str, level: str, loader: Callable[[str], object],
                 transform: Callable | None = None) -> None:
        self.classes = read_classes(root, level)
        index = {name: label for label, name in enumerate(self.classes)}
        self.samples = [(str(image_path(root, image_id)), index[name])
                        for image_id, name in read_labels(root, split, level)]
        self.targets = [label for _, label in self.samples]
        self.loader, self.transform = loader, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[object, int]:
        path, label = self.samples[index]
        image = self.loader(path)
        return (image if self.transform is None else self.transform(image)), label


def build_dataset(root: str | Path, split: str, level: str = "variant", transform: Callable | None = None,
                  download: bool = False, banner_px: int = 20, shrink_to: int | None = None) -> FgvcAircraft:
    """FGVC-Aircraft ``split`` at ``level``; images come banner-cropped (unless ``fgvc prepare`` wrote ``root``:
    its images have no banner left), decoded for ``shrink_to`` (see ``load_image``), then through ``transform``.
    An annotation line that does not fit raises ``DatasetError`` naming the file and line."""
    if download:
        download_fgvc(root)
    check_files(root, split, level)
    problems = annotation_problems(root, split, level)
    if problems:
        more = f" ({len(problems) - 1} more: `fgvc check-data --data-root {root}` lists them all)"
        raise DatasetError(problems[0] + (more if len(problems) > 1 else ""))
    banner_px = 0 if prepared_info(root) else banner_px
    return FgvcAircraft(root, split, level, functools.partial(load_image, banner_px=banner_px, shrink_to=shrink_to),
                        transform)


class ListedImageFolder(datasets.ImageFolder):
    """A user's own photos ``root/<class>/<image>``, split ``split`` of them as ``split_file`` lists it: an
    ImageFolder whose classes are the split file's (sorted) and whose samples are the split's photos in path
    order (``fgvc.data.split.split_samples``, which refuses a photo listed but missing, or present but unlisted)."""

    def __init__(self, root: str | Path, split_file: Path, split: str, transform: Callable | None,
                 loader: Callable[[str], object]) -> None:
        self._listing = split_samples(root, split_file, split)
        super().__init__(root, transform=transform, loader=loader)
        self.sources = {"split_file_sha256": file_sha256(split_file)}

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        """The split file's classes (ImageFolder's override point)."""
        classes = self._listing[0]
        return classes, {name: label for label, name in enumerate(classes)}

    def make_dataset(self, directory: str | Path, class_to_idx: dict[str, int], extensions: object = None,
                     is_valid_file: object = None, allow_empty: bool = False) -> list[tuple[str, int]]:
        """The split's (file, label) pairs (ImageFolder's override point)."""
        return self._listing[1]


def build_imagefolder(root: str | Path, split: str, transform: Callable | None = None,
                      shrink_to: int | None = None, split_file: str | Path | None = None) -> datasets.ImageFolder:
    """A user's own photos: listed by a split file (``split_file``, else ``root/splits.csv`` when it exists: see
    ``fgvc.data.split.split_file_of``), or laid out as ``root/<split>/<class>/<image>``."""
    loader = functools.partial(load_image, shrink_to=shrink_to)
    listing = split_file_of(root, split_file)
    if listing is not None:
        return ListedImageFolder(root, listing, split, transform, loader)
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} not found: expected {root}/{split}/<class name>/<image files>, "
                           f"or a flat folder {root}/<class name>/<image files> split by `fgvc split {root}`")
    return datasets.ImageFolder(folder, transform=transform, loader=loader)


def leave_out(dataset: Dataset, root: str | Path, exclude: str | Path, split: str) -> None:
    """Remove from ``dataset`` (in place) the photos that exclusion list ``exclude`` names (paths relative to
    ``root``), log how many, and record the list's sha256 in its ``sources``."""
    excluded = set(read_exclusions(exclude, root))
    base = Path(os.path.abspath(root))
    kept = [index for index, (path, _) in enumerate(dataset.samples)
            if Path(os.path.abspath(path)).relative_to(base).as_posix() not in excluded]
    log.info("exclusion list %s leaves out %d of the %d photos of split %r", exclude,
             len(dataset.samples) - len(kept), len(dataset.samples), split)
    keep_samples(dataset, kept)
    dataset.sources = {**dataset_sources(dataset), "exclude_sha256": file_sha256(exclude)}


def per_class_subset(targets: list[int], per_class: int, seed: int) -> list[int]:
    """The indices, in their order, of at most ``per_class`` items of each label: a class's items are ranked by a
    permutation drawn from ``(seed, label)`` and its first ``per_class`` are kept, so a smaller ``per_class``
    keeps a subset of a larger one's, and a class with fewer items keeps them all."""
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        by_class.setdefault(label, []).append(index)
    kept = []
    for label, indices in by_class.items():
        order = np.random.default_rng([seed, label]).permutation(len(indices))
        kept += [indices[i] for i in order[:per_class]]
    return sorted(kept)


def keep_samples(dataset: Dataset, indices: list[int]) -> None:
    """Keep only the items ``indices`` of a dataset with ``samples`` and ``targets`` (in place)."""
    dataset.samples = [dataset.samples[i] for i in indices]
    dataset.targets = [label for _, label in dataset.samples]
    if isinstance(dataset, datasets.ImageFolder):  # its second name for the samples
        dataset.imgs = dataset.samples


class AugmentedSplit(Dataset):
    """A training split whose item ``(epoch, index)`` is image ``index`` augmented by ``augment`` with the
    randomness of ``(seed, epoch, index)``: the same in any worker, process or resumed run, so DataLoader
    workers can live across epochs. A plain ``index`` means epoch 0."""

    def __init__(self, base: Dataset, augment: Augment, seed: int) -> None:
        self.base, self.augment, self.seed = base, augment, seed
        self.classes = base.classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, label = self.base[index]
        return self.augment(image, np.random.default_rng([self.seed, epoch, index])), label


def augmented(cfg: TrainConfig, split: Dataset) -> AugmentedSplit:
    """``split`` (from ``fgvc.data.kinds.training_split``) with ``cfg``'s augmentations."""
    return AugmentedSplit(split, Augment(cfg.img_size, cfg.min_crop_scale, cfg.affine_degrees), cfg.seed)


def _unwrapped(dataset: Dataset) -> Dataset:
    """The dataset under an ``AugmentedSplit``."""
    return dataset.base if isinstance(dataset, AugmentedSplit) else dataset


def dataset_labels(dataset: Dataset) -> list[int]:
    """The label of every item, without decoding any image."""
    return list(_unwrapped(dataset).targets)


def image_files(dataset: Dataset) -> list[str]:
    """The image file of every item."""
    return [path for path, _ in _unwrapped(dataset).samples]


def dataset_sources(dataset: Dataset) -> dict[str, str]:
    """The sha256 of the files beside the images that chose a dataset's items: ``split_file_sha256`` and
    ``exclude_sha256``, where it has them (none for split folders and FGVC-Aircraft's own files)."""
    return getattr(_unwrapped(dataset), "sources", {})
