"""Nothing bad reaches training: a dataset checked as training would read it, and bad images found before
the first step (refused with the file named, or left out with ``skip_bad_images``)."""

from __future__ import annotations

import logging
from pathlib import Path

from torch.utils.data import Dataset

from fgvc.core.config import TrainConfig
from fgvc.core.errors import BadImageError
from fgvc.data.datasets import image_files, keep_samples
from fgvc.data.images import find_bad_images
from fgvc.data.kinds import dataset_kind

log = logging.getLogger("fgvc")


def check_data(root: str | Path, dataset: str = "fgvc-aircraft", banner_px: int = 20,
               threads: int = 4) -> tuple[int, list[str]]:
    """Check a dataset as training would read it; return (images decoded, problems found): what its kind finds
    before decoding (``DatasetKind.check_plan``: FGVC-Aircraft's annotation files, an imagefolder's split file and
    ``hierarchy.csv``), then every image it names, decoded as training decodes it."""
    files, problems, loader = dataset_kind(dataset).check_plan(Path(root), banner_px)
    return len(files), problems + [str(err) for err in find_bad_images(files, loader, threads)]


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
