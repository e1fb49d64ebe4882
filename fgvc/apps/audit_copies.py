"""Copies among the photos: exact (sha256), near by dHash or by the cosine similarity of their features, each
pair a leak, a conflict or a copy, with which photo to keep; and how a pair was found, in words."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fgvc.apps.audit_labels import label_probability
from fgvc.apps.audit_photos import Photo, split_order
from fgvc.data.duplicates import near_pairs


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
            swap = kind == "conflict" and (label_probability(photos, probabilities, i)
                                           < label_probability(photos, probabilities, j))
        keep, drop = (j, i) if swap else (i, j)
        bits = ways.get("bits")
        pairs.append(Pair(keep, drop, kind, "exact" in ways, None if bits is None else int(bits), ways.get("cosine")))
    return pairs


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
