"""Nothing bad reaches training: a dataset checked as training would read it, and bad images found before
the first step (refused with the file named, or left out with ``skip_bad_images``)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets.folder import find_classes

from fgvc.core.config import FGVC_SPLITS, LEVELS, TrainConfig
from fgvc.core.errors import BadImageError, DatasetError
from fgvc.data.datasets import image_files, keep_samples
from fgvc.data.hierarchy import HIERARCHY_FILE, read_hierarchy_csv
from fgvc.data.images import find_bad_images, load_image
from fgvc.data.layout import annotation_problems, data_dir, missing_message, prepared_info
from fgvc.data.split import EXCLUDED, check_listing, find_photos, listed_classes, read_split_file, split_file_of

log = logging.getLogger("fgvc")


def check_data(root: str | Path, dataset: str = "fgvc-aircraft", banner_px: int = 20,
               threads: int = 4) -> tuple[int, list[str]]:
    """Check a dataset as training would read it; return (images decoded, problems found).

    FGVC-Aircraft: every annotation file of every level and split, then every ``images/*.jpg``
    (which must be taller than ``banner_px``). ImageFolder: its split file against its photos (missing or
    unlisted ones raise ``DatasetError``), ``hierarchy.csv`` if there is one, then every image of every split
    folder, or every photo its split file does not exclude.
    """
    root = Path(root)
    listing = split_file_of(root) if dataset == "imagefolder" else None
    if listing is not None:
        listed = read_split_file(listing)
        check_listing(root, listing, listed, find_photos(root))
        files = [str(root / photo) for photo, row in listed.items() if row.split != EXCLUDED]
        problems, loader = hierarchy_problems(root, [listed_classes(listed)]), load_image
    elif dataset == "imagefolder":
        splits = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not splits:
            raise DatasetError(f"no split folders under {root}: expected {root}/<split>/<class name>/<image files>, "
                               f"or a flat folder {root}/<class name>/<image files> split by `fgvc split {root}`")
        files = [path for split in splits for path, _ in datasets.ImageFolder(split).samples]
        problems = hierarchy_problems(root, [find_classes(split)[0] for split in splits])
        loader = load_image
    else:
        data = data_dir(root)
        if not data.is_dir():
            raise DatasetError(missing_message(root, data))
        problems = [problem for level in LEVELS for split in FGVC_SPLITS
                    for problem in annotation_problems(root, split, level)]
        files = sorted(str(p) for p in (data / "images").glob("*.jpg"))
        loader = functools.partial(load_image, banner_px=0 if prepared_info(root) else banner_px)
    problems += [str(err) for err in find_bad_images(files, loader, threads)]
    return len(files), problems


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


def drop_bad_images(dataset: Dataset, cfg: TrainConfig, split: str) -> list[BadImageError]:
    """Decode every image of ``dataset``; a bad one raises ``BadImageError``, or with
    ``cfg.skip_bad_images`` is logged and removed from ``dataset``. Returns the removed ones."""
    files = image_files(dataset)
    log.info("decoding the %d images of split %r to check them", len(files), split)
    bad = find_bad_images(files, dataset.loader, cfg.workers)
    if not bad:
        return []
    if not cfg.skip_bad_images:
        raise BadImageError(bad[0].path, f"{bad[0].reason} ({len(bad)} bad image(s) in split {split!r}: "
                            f"`fgvc check-data --data-root {cfg.data_root}` lists them, "
                            f"`fgvc train --skip-bad-images` trains without them)")
    for err in bad:
        log.warning("skipping bad image %s", err)
    skipped = {err.path for err in bad}
    keep_samples(dataset, [index for index, (path, _) in enumerate(dataset.samples) if path not in skipped])
    return bad
