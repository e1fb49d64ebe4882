"""FGVC-Aircraft's banner at prediction time: which rows to cut from a photo file before the predictor sees it.

    rows = banner_rows(predictor.cfg, "photos/0034309.jpg", crop_banner=None)     # auto: 0 or the run's banner_px
    rows = banner_cuts(predictor.cfg, files, crop_banner=None)                    # each file's; stderr says how many

A run trained on FGVC-Aircraft learnt its photos with their copyright banner cut. By default (``crop_banner=None``,
auto) ``fgvc predict``, ``fgvc gradcam`` and ``fgvc serve`` cut it from a photo that is one of the dataset's
originals (``fgvc.data.layout.is_original_image``: its path in ``fgvc-aircraft-2013b/data/images/``, not a ``fgvc
prepare``d copy), and say so on stderr; from nothing else. ``True`` cuts it from every photo, ``False`` from none.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from fgvc.core.config import TrainConfig
from fgvc.data.kinds import dataset_kind
from fgvc.data.layout import is_original_image


def trained_without_banner(cfg: TrainConfig) -> bool:
    """Whether the run of ``cfg`` learnt FGVC-Aircraft's photos with their banner cut (``DatasetKind.banner_rows``)."""
    return dataset_kind(cfg.dataset).banner_rows(cfg) > 0


def banner_rows(cfg: TrainConfig, path: str | Path, crop_banner: bool | None = None) -> int:
    """Rows of banner to cut from the bottom of the photo at ``path``: the run's ``banner_px`` with ``crop_banner``
    True, none with False; with None (auto), the run's when it learnt FGVC-Aircraft without the banner and ``path``
    is one of the dataset's original photos (``is_original_image``), else none."""
    if crop_banner is None:
        crop_banner = trained_without_banner(cfg) and is_original_image(path)
    return cfg.banner_px if crop_banner else 0


def banner_cuts(cfg: TrainConfig, files: Sequence[str | Path], crop_banner: bool | None) -> list[int]:
    """The ``banner_rows`` of each of ``files``; with ``crop_banner`` None (auto), stderr says how many get their
    banner cut, and how not."""
    rows = [banner_rows(cfg, path, crop_banner) for path in files]
    cropped = sum(count > 0 for count in rows)
    if crop_banner is None and cropped:
        print(f"fgvc: cut the {cfg.banner_px}-px FGVC-Aircraft banner from {cropped} of {len(files)} "
              f"image(s): photos of the dataset's images/ folder, cut as the run was trained and evaluated "
              f"(--no-crop-banner keeps it)", file=sys.stderr)
    return rows
