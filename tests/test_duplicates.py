"""Copies among photos (fgvc.data.duplicates): content hash, 64-bit dHash, the vectorised near pairs, the groups."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from fgvc.core.errors import BadImageError
from fgvc.data.duplicates import (
    duplicate_labels,
    group_labels,
    hamming,
    hash_photos,
    near_duplicate_groups,
    near_pairs,
    perceptual_hash,
)


def real_photos(folder: Path) -> dict[str, Path]:
    """Three different real photos (scikit-image's) and copies of two: byte-identical, and resized to half and
    recompressed; as JPEG files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("rocket", "coffee", "chelsea"):
        paths[name] = folder / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).save(paths[name], quality=90)
    paths["coffee copy"] = folder / "coffee copy.jpg"
    shutil.copyfile(paths["coffee"], paths["coffee copy"])
    rocket = Image.open(paths["rocket"])
    paths["rocket small"] = folder / "rocket small.jpg"
    rocket.resize((rocket.width // 2, rocket.height // 2)).save(paths["rocket small"], quality=60)
    return paths


def test_exact_and_resized_copies_are_grouped_and_different_photos_are_not(tmp_path: Path) -> None:
    photos = real_photos(tmp_path)
    groups = near_duplicate_groups(list(photos.values()), max_distance=6)
    assert sorted(sorted(p.name for p in group) for group in groups) == [
        ["coffee copy.jpg", "coffee.jpg"], ["rocket small.jpg", "rocket.jpg"]]
    hashes, bad = hash_photos(list(photos.values()))
    assert bad == []
    assert hashes.content[1] == hashes.content[3] and hashes.content[0] != hashes.content[4]  # coffee, its copy
    assert str(perceptual_hash(photos["rocket"])) == f"{int(hashes.dhash[0]):016x}"  # packed bit for bit


def test_exact_copies_are_grouped_even_at_zero_bits(tmp_path: Path) -> None:
    photos = real_photos(tmp_path)
    hashes, _ = hash_photos(list(photos.values()))
    labels = duplicate_labels(hashes, max_distance=0)
    assert labels[3] == labels[1] and len(set(labels)) == 4  # the resized rocket is 1 bit or more away


def test_a_file_that_does_not_decode_is_named(tmp_path: Path) -> None:
    photos = real_photos(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    _, bad = hash_photos([*photos.values(), broken, tmp_path / "gone.jpg"])
    assert [err.path for err in bad] == [str(broken), str(tmp_path / "gone.jpg")]
    with pytest.raises(BadImageError, match=r"broken\.jpg.*2 photo\(s\) do not decode"):
        near_duplicate_groups([*photos.values(), broken, tmp_path / "gone.jpg"])


def test_near_pairs_match_a_double_loop() -> None:
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 600, dtype=np.uint64)
    flips = rng.integers(0, 64, (600, 3))
    hashes[300:] = hashes[:300] ^ (np.uint64(1) << flips[:300, 0].astype(np.uint64))  # 300 pairs 1 bit apart
    pairs, bits = near_pairs(hashes, 8)
    expected = [(i, j, bin(int(hashes[i]) ^ int(hashes[j])).count("1")) for i in range(600) for j in range(i + 1, 600)]
    expected = [(i, j, d) for i, j, d in expected if d <= 8]
    assert [(int(i), int(j), int(d)) for (i, j), d in zip(pairs, bits)] == expected
    assert len(expected) >= 300
    assert hamming(np.array([0], np.uint64), np.array([2**64 - 1], np.uint64)).tolist() == [64]


def test_groups_join_transitively() -> None:
    assert group_labels(5, np.array([[3, 4], [0, 4]])) == [0, 1, 2, 0, 0]
