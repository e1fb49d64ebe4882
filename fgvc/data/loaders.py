"""DataLoaders: the shuffled, sharded training loader whose batches are the same on 1 process or N and in a
resumed run, and the in-order evaluation loader.

    loaders = build_loaders(cfg)                         # loaders.train, loaders.eval, loaders.classes
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from fgvc.core.config import TrainConfig
from fgvc.core.distributed import SINGLE, Dist, ShardSampler
from fgvc.core.errors import BadImageError, DatasetError
from fgvc.data.checks import drop_bad_images
from fgvc.data.datasets import augmented
from fgvc.data.hierarchy import Hierarchy
from fgvc.data.kinds import build_split, dataset_hierarchy, dataset_kind, training_split
from fgvc.data.normalization import arch_normalization
from fgvc.data.transforms import eval_transform

log = logging.getLogger("fgvc")


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` keys from a ``DistributedSampler`` (its epoch is set by ``set_epoch``)."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.sampler.epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


@dataclass
class Loaders:
    """The two loaders of a run and the class names they share."""

    train: DataLoader
    eval: DataLoader
    classes: list[str]
    hierarchy: Hierarchy | None  # families and manufacturers, where the data has them
    skipped: list[BadImageError] = field(default_factory=list)  # bad images left out (skip_bad_images)


def _check_sizes(cfg: TrainConfig, train_set: Dataset, eval_set: Dataset, ranks: Dist) -> None:
    """Refuse a batch larger than a process's share of the training split, or an empty evaluation split."""
    if len(train_set) // ranks.world_size < cfg.batch_size:
        share = f", {len(train_set) // ranks.world_size} per process" if ranks.enabled else ""
        raise DatasetError(f"batch_size={cfg.batch_size} is larger than split {cfg.train_split!r} "
                           f"({len(train_set)} images under {cfg.data_root}{share}): expected a smaller batch")
    if len(eval_set) == 0:
        raise DatasetError(f"split {cfg.eval_split!r} under {cfg.data_root} holds no usable image: "
                           f"expected at least one to evaluate on")


def eval_loader(dataset: Dataset, batch_size: int, view: str, workers: int,
                sampler: Sampler[int] | None = None, collate_fn: Callable | None = None) -> DataLoader:
    """In-order batches of ``dataset`` (one image a batch for the ``whole`` view, whose widths differ); its
    workers live as long as the loader. ``collate_fn`` replaces PyTorch's default one."""
    return DataLoader(dataset, batch_size=1 if view == "whole" else batch_size, shuffle=False, sampler=sampler,
                      num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
                      collate_fn=collate_fn)


def build_loaders(cfg: TrainConfig, ranks: Dist = SINGLE) -> Loaders:
    """Augmented, shuffled training loader and a plain evaluation loader (``cfg.eval_view``, normalised for
    ``cfg.arch``: ``arch_normalization``) for ``cfg``.

    The training order is a permutation drawn from ``(cfg.seed, epoch)`` (``loader.sampler.set_epoch``),
    and each image's augmentation comes from ``(cfg.seed, epoch, index)``, so a resumed run sees the same
    batches as an uninterrupted one; under torchrun (``ranks``) each process trains on every
    ``world_size``-th image of it and evaluates every ``world_size``-th image, with no padding. Training
    batches are uint8: ``normalize`` them on the device.
    Every annotation file is read (the family and manufacturer files too) before any image is
    decoded; then every image is decoded once (``cfg.workers`` threads), so a bad file stops the
    run before training starts.
    """
    train_set = training_split(cfg)
    eval_set = build_split(cfg, cfg.eval_split,
                           eval_transform(cfg.eval_size, arch_normalization(cfg.arch), cfg.eval_view))
    if train_set.classes != eval_set.classes:
        raise DatasetError(f"the classes of split {cfg.train_split!r} and {cfg.eval_split!r} differ under "
                           f"{cfg.data_root}: every split must hold the same class folders")
    prepared_size = dataset_kind(cfg.dataset).prepared_size(cfg.data_root)
    if prepared_size is not None and prepared_size < cfg.img_size:
        log.warning("%s was prepared for img_size %s, smaller than %d: training crops are upsampled; "
                    "run `fgvc prepare` again with --img-size %d", cfg.data_root, prepared_size, cfg.img_size,
                    cfg.img_size)
    hierarchy = dataset_hierarchy(cfg, cfg.eval_split)
    _check_sizes(cfg, train_set, eval_set, ranks)
    skipped = drop_bad_images(train_set, cfg, cfg.train_split) + drop_bad_images(eval_set, cfg, cfg.eval_split)
    _check_sizes(cfg, train_set, eval_set, ranks)
    # One sampler for 1 process or N: the permutation depends on (seed, epoch) alone, and rank r takes every
    # N-th index of it, so global batch k holds the same images on 1 process as on N; and image i's
    # augmentation in epoch e depends on (seed, e, i) alone, so the workers persist across epochs.
    shard = EpochSampler(DistributedSampler(train_set, ranks.world_size, ranks.rank, shuffle=True, seed=cfg.seed,
                                            drop_last=True))
    train = DataLoader(augmented(cfg, train_set), batch_size=cfg.batch_size, sampler=shard, drop_last=True,
                       num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
                       pin_memory=torch.cuda.is_available())
    evaluation = eval_loader(eval_set, cfg.batch_size, cfg.eval_view, cfg.workers,
                             ShardSampler(len(eval_set), ranks) if ranks.enabled else None)
    return Loaders(train, evaluation, list(train_set.classes), hierarchy, skipped)
