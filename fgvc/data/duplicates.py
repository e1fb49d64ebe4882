"""Copies among photos: exact duplicates by content hash, near duplicates by a perceptual hash.

    hashes, bad = hash_photos(paths, threads=4)          # sha256 and 64-bit dHash of each photo; bad files named
    pairs, bits = near_pairs(hashes.dhash, max_distance=6)
    groups = near_duplicate_groups(paths, max_distance=6)  # [[a.jpg, a_copy.jpg], ...]: every group of 2 or more

The perceptual hash is ``imagehash``'s dHash of 64 bits (``hash_size=8``: the photo in greyscale at 9 x 8 px,
one bit per horizontal neighbour pair, brighter or not): it survives resizing, recompression and small colour
changes, not crops or flips. Two photos are near duplicates when their dHashes differ in at most
``max_distance`` of the 64 bits; ``NEAR_BITS`` (6, in ``fgvc.core.config``) is the threshold measured on real web
photos (issue 29): within it are re-encoded and resized copies, and some look-alikes (the same aircraft from the
same spot).
Byte-identical files (same sha256) are always near duplicates: their dHashes are equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np

from fgvc.core.defaults import NEAR_BITS
from fgvc.core.errors import BadImageError
from fgvc.data.images import load_image

HASH_BITS = 64
_SHRINK_TO = 64  # decode a large JPEG at 1/2 or 1/4 size: the 9 x 8 px dHash cannot tell, and it decodes faster
_BLOCK_ROWS = 256  # rows of the distance matrix computed at once (256 x 5,000 photos: 10 MB)
_POPCOUNT = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class PhotoHashes:
    """The hashes of photos ``paths``: ``content`` (sha256 hex of each file's bytes) and ``dhash`` (each
    photo's 64-bit dHash packed into one ``uint64``), in the order of ``paths``."""

    paths: list[Path]
    content: list[str]
    dhash: np.ndarray


def content_hash(path: str | Path) -> str:
    """The sha256 (hex) of the bytes of file ``path``: equal for byte-identical files."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def perceptual_hash(path: str | Path) -> imagehash.ImageHash:
    """The 64-bit dHash of photo ``path`` (EXIF orientation applied, as training sees it); ``BadImageError``
    naming the file when it does not decode."""
    return imagehash.dhash(load_image(path, shrink_to=_SHRINK_TO), hash_size=8)


def pack(image_hash: imagehash.ImageHash) -> np.uint64:
    """A 64-bit ``ImageHash`` as one unsigned 64-bit integer (bit order of ``image_hash.hash.flatten()``)."""
    return np.packbits(image_hash.hash.flatten()).view(">u8")[0].astype(np.uint64)


def hash_photos(paths: Sequence[str | Path], threads: int = 4) -> tuple[PhotoHashes, list[BadImageError]]:
    """The content hash and dHash of every photo of ``paths`` that decodes (``threads`` files at a time), and the
    error naming each one that does not, in order: the caller reports or refuses them, none is skipped silently."""
    def hashes(path: str | Path) -> tuple[str, np.uint64] | BadImageError:
        try:
            dhash = pack(perceptual_hash(path))  # first: a missing file is a BadImageError naming it
        except BadImageError as err:
            return err
        return content_hash(path), dhash

    pool = ThreadPoolExecutor(max(1, threads))
    try:
        results = list(pool.map(hashes, paths))
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C does not wait for the rest of the files
    good = [(Path(path), result) for path, result in zip(paths, results) if not isinstance(result, BadImageError)]
    bad = [result for result in results if isinstance(result, BadImageError)]
    return PhotoHashes([path for path, _ in good], [result[0] for _, result in good],
                       np.array([result[1] for _, result in good], dtype=np.uint64)), bad


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The number of differing bits between packed hashes ``a`` and ``b`` (broadcast against each other)."""
    xor = np.ascontiguousarray(np.bitwise_xor(a, b), dtype=np.uint64)
    return _POPCOUNT[xor.view(np.uint8).reshape(*xor.shape, 8)].sum(axis=-1, dtype=np.uint8)


def near_pairs(dhash: np.ndarray, max_distance: int = NEAR_BITS) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(i, j)``, ``i < j``, of packed hashes ``dhash`` within ``max_distance`` bits, sorted, as an
    ``(n, 2)`` index array, and the distance of each pair. Vectorised in blocks of rows: 5,000 photos take
    about a second."""
    if not 0 <= max_distance <= HASH_BITS:
        raise ValueError(f"max_distance {max_distance}: expected 0 to {HASH_BITS} bits")
    dhash = np.asarray(dhash, dtype=np.uint64)
    pairs, distances = [], []
    for start in range(0, len(dhash), _BLOCK_ROWS):
        rows = dhash[start:start + _BLOCK_ROWS]
        bits = hamming(rows[:, None], dhash[None, :])
        upper = np.arange(len(dhash))[None, :] > np.arange(start, start + len(rows))[:, None]
        i, j = np.nonzero((bits <= max_distance) & upper)
        pairs.append(np.stack([i + start, j], axis=1))
        distances.append(bits[i, j])
    if not pairs:
        return np.zeros((0, 2), dtype=np.intp), np.zeros(0, dtype=np.uint8)
    return np.concatenate(pairs), np.concatenate(distances)


def group_labels(count: int, pairs: np.ndarray) -> list[int]:
    """Union-find over ``count`` items joined by ``pairs``: each item's group, the smallest index in it."""
    parent = list(range(count))

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for i, j in pairs:
        a, b = root(int(i)), root(int(j))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(item) for item in range(count)]


def duplicate_labels(hashes: PhotoHashes, max_distance: int = NEAR_BITS) -> list[int]:
    """The duplicate group of each photo of ``hashes`` (the index of its first photo): byte-identical photos and
    photos within ``max_distance`` dHash bits, joined transitively."""
    pairs, _ = near_pairs(hashes.dhash, max_distance)
    first: dict[str, int] = {}
    exact = [(first.setdefault(digest, index), index) for index, digest in enumerate(hashes.content)]
    return group_labels(len(hashes.paths), np.concatenate([pairs, np.array(exact, dtype=np.intp).reshape(-1, 2)]))


def near_duplicate_groups(paths: Sequence[str | Path], max_distance: int = NEAR_BITS,
                          threads: int = 4) -> list[list[Path]]:
    """The groups of two or more photos of ``paths`` that are exact or near duplicates (``duplicate_labels``),
    each in the order of ``paths``, groups in the order of their first photo. A photo that does not decode raises
    ``BadImageError`` naming it (and how many more there are)."""
    hashes, bad = hash_photos(paths, threads)
    if bad:
        raise BadImageError(bad[0].path, f"{bad[0].reason} ({len(bad)} photo(s) do not decode: expected images; "
                                         f"move them out of the data or list them in an exclusion file)")
    members: dict[int, list[Path]] = {}
    for path, label in zip(hashes.paths, duplicate_labels(hashes, max_distance)):
        members.setdefault(label, []).append(path)
    return [group for group in members.values() if len(group) > 1]
