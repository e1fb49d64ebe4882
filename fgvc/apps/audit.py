"""What is wrong with a data set: copies across splits (leaks) and under two labels (conflicts), doubtful labels,
files that do not decode, tiny or stretched photos, and the classes each split holds. Nothing in the data folder
is changed; ``fgvc.apps.audit_report`` writes what is found.

    audit = run_audit("ROOT", "imagefolder", out="audit")   # ROOT's split folders (or split file)

Copies are found three ways: byte-identical files (sha256), near copies by a 64-bit dHash (``fgvc.data.duplicates``:
resized, recompressed, small colour changes) and by the cosine similarity of pretrained EfficientNet-Lite0 features
(ImageNet weights, global-pooled; these also catch crops and recolours). Doubtful labels are ranked by confident
learning (``cleanlab``) on out-of-fold class probabilities of a logistic regression on the same frozen features:
one pass of the backbone, then seconds on a CPU. The features are cached in ``OUT/embeddings.npz`` by each file's
sha256 and the model, so a second audit decodes only new photos.

This module runs the checks: ``fgvc.apps.audit_photos`` reads the photos, ``fgvc.apps.audit_embeddings`` their features,
``fgvc.apps.audit_copies`` finds the copies and ``fgvc.apps.audit_labels`` the doubtful labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fgvc.apps.audit_copies import Pair, merge_pairs
from fgvc.apps.audit_embeddings import EMBEDDING_ARCH, cached_embeddings
from fgvc.apps.audit_labels import Doubt, rank_labels
from fgvc.apps.audit_photos import Photo, dataset_splits, odd_sizes, read_photos
from fgvc.core.defaults import AUDIT_FOLDS, AUDIT_MAX_ASPECT, AUDIT_MIN_SIDE, AUDIT_SIMILARITY, NEAR_BITS
from fgvc.core.errors import ConfigError
from fgvc.data.duplicates import hash_photos

EMBEDDINGS_FILE = "embeddings.npz"


@dataclass
class Audit:
    """Everything ``fgvc audit`` found in one data set; indices refer to ``photos`` (those that decode)."""

    root: str
    dataset: str
    splits: list[str]
    photos: list[Photo]
    digests: list[str]  # each photo's sha256
    bad: list[tuple[Photo, str]]  # the photos that do not decode, and why
    odd_sizes: list[tuple[int, int, int, str]]  # photo, width, height, why
    pairs: list[Pair]
    doubts: list[Doubt]
    doubt_note: str  # how the doubtful labels were ranked, or why they were not
    settings: dict[str, float | int | str] = field(default_factory=dict)


def run_audit(root: str | Path, dataset: str, out: str | Path, splits: Sequence[str] | None = None,
              near_bits: int = NEAR_BITS, min_similarity: float = AUDIT_SIMILARITY,
              min_side: int = AUDIT_MIN_SIDE, max_aspect: float = AUDIT_MAX_ASPECT, folds: int = AUDIT_FOLDS,
              device: str = "auto", batch_size: int = 32, workers: int = 0, threads: int = 4) -> Audit:
    """Audit the photos of ``splits`` (default: all of them) of a data set; ``out`` holds the embedding cache.
    Photos that do not decode are reported and left out of the rest."""
    if not 0 < min_similarity <= 1:
        raise ConfigError(f"--min-similarity {min_similarity} is invalid: expected a cosine in (0, 1]")
    if folds < 2:
        raise ConfigError(f"--folds {folds} is invalid: expected at least 2")
    splits = list(splits) if splits else dataset_splits(root, dataset)
    everything, loader = read_photos(root, dataset, splits)
    hashes, errors = hash_photos([photo.path for photo in everything], threads)
    reasons = {Path(err.path): err.reason for err in errors}
    photos = [photo for photo in everything if photo.path not in reasons]
    bad = [(photo, reasons[photo.path]) for photo in everything if photo.path in reasons]
    Path(out).mkdir(parents=True, exist_ok=True)
    features = cached_embeddings([p.path for p in photos], hashes.content, loader, Path(out) / EMBEDDINGS_FILE,
                                 device, batch_size, workers)
    probabilities, doubts, note = rank_labels(photos, features, folds)
    pairs = merge_pairs(photos, hashes.content, hashes.dhash, near_bits, features, min_similarity, probabilities)
    settings = {"dhash_near_bits": near_bits, "min_similarity": min_similarity, "embedding_arch": EMBEDDING_ARCH,
                "min_side_px": min_side, "max_aspect": max_aspect, "folds": folds}
    return Audit(str(root), dataset, splits, photos, hashes.content, bad, odd_sizes(photos, min_side, max_aspect),
                 pairs, doubts, note, settings)
