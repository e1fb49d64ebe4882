"""Your own photos in one flat folder: ``fgvc split``, the split file it writes, and exclusion lists.

    ROOT/<class>/<image>                   # the photos, a folder per class; nothing is copied or moved
    fgvc split ROOT                        # ROOT/splits.csv: path,class,split for every photo
    fgvc split ROOT --update               # new photos get a split; the listed ones keep theirs
    fgvc train --preset cpu --dataset imagefolder --data-root ROOT --train-split train --eval-split val

The split file has a header ``path,class,split`` and one line per photo of ROOT: its path relative to ROOT
(POSIX, ``<class>/<image>``), its class (its folder) and its split: ``train``, ``val``, ``test``, or ``excluded``
(left out by an exclusion list). It is drawn seeded and stratified: each class's photos go to the splits in the
proportions asked, within about one photo. Exact and near duplicates (``fgvc.data.duplicates``: the same
bytes, or 64-bit dHashes within ``--near-bits`` bits) form one group, which lands in one split, so no photo's
copy is tested after being trained on. A split file is never rewritten silently: ``--update`` keeps every
listed photo's split, gives new photos one (a new photo joins the split of a listed photo it nearly copies)
and drops the lines of photos that are gone; ``--force`` draws every split afresh.

An imagefolder is read through a split file (``split_file_of`` decides): the one named by ``split_file``, else
ROOT/splits.csv when it exists; without one, through split folders ROOT/<split>/<class>/<image>. Read through a
split file, its classes are the file's class names sorted (as ImageFolder sorts split folders), and a photo
listed but missing, or present but unlisted, is refused by name.

An exclusion list (``fgvc audit`` writes one; ``fgvc split --exclude`` and ``fgvc train --exclude`` read it) is a
text file of photos to leave out, one path relative to the data root per line (POSIX); blank lines and lines
starting with ``#`` are skipped, and a ``#`` after a path's whitespace starts a comment (``Bf 109E/007.jpg  # why``;
a photo whose own name holds `` #`` still matches its whole line). Nothing is ever deleted or moved.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from fgvc.core.defaults import NEAR_BITS, SPLIT_FILE, TEST_SHARE, VAL_SHARE
from fgvc.core.errors import BadImageError, ConfigError, DatasetError, FolderError
from fgvc.data.duplicates import duplicate_labels, hash_photos

log = logging.getLogger("fgvc")

COLUMNS = ("path", "class", "split")
SPLITS = ("train", "val", "test")
EXCLUDED = "excluded"  # the split of a photo an exclusion list left out


class Listed(NamedTuple):
    """One photo's line of a split file: its class, its split, and the line's number in the file."""

    cls: str
    split: str
    line: int


@dataclass(frozen=True)
class SplitReport:
    """What ``split_folder`` wrote: the split file, its photos per split, the duplicate groups (of 2 or more
    photos) and the photos in them, the photos an update added and the lines it dropped (photos gone), and the
    groups that span two splits (listed so before an update: only ``--force`` may move them)."""

    path: Path
    counts: dict[str, int]
    groups: int
    grouped: int
    added: int
    dropped: list[str]
    spanning: int


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a small file's bytes (a split file, an exclusion list): part of a data fingerprint."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_file_of(root: str | Path, split_file: str | Path | None = None) -> Path | None:
    """The split file an imagefolder at ``root`` is read through: ``split_file`` when given (which must exist),
    else ``root/splits.csv`` when it exists; None: the imagefolder is read through its split folders."""
    if split_file is not None:
        if not Path(split_file).is_file():
            raise DatasetError(f"split file {split_file} not found: expected the path,class,split file that "
                               f"`fgvc split {root}` writes as {Path(root) / SPLIT_FILE}")
        return Path(split_file)
    default = Path(root) / SPLIT_FILE
    return default if default.is_file() else None


def find_photos(root: str | Path) -> dict[str, str]:
    """Every photo of a flat folder, ``{path relative to root (POSIX): class}`` sorted by path: the image files
    (ImageFolder's extensions) directly inside each class folder ``root/<class>/``; names starting with ``.`` are
    skipped. A class folder holding folders is refused (split folders need no split file)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"photo folder {root} not found: expected {root}/<class name>/<image files>")
    photos = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        inner = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        nested = [name for name in inner if (folder / name).is_dir()]
        if nested:
            raise DatasetError(f"{folder / nested[0]} is a folder: expected photos directly in {root}/<class name>/ "
                               f"(split folders {root}/<split>/<class name>/ are read as they are, without a split "
                               f"file)")
        photos.update({f"{folder.name}/{name}": folder.name for name in inner if name.lower().endswith(IMG_EXTENSIONS)})
    if not photos:
        raise DatasetError(f"no photos under {root}: expected {root}/<class name>/<image files> "
                           f"({', '.join(IMG_EXTENSIONS)})")
    return photos


def read_split_file(path: str | Path) -> dict[str, Listed]:
    """``{photo path: Listed}`` of a split file; ``DatasetError`` naming the file and line of a header other
    than ``path,class,split``, a line without three values, a path that is not ``<class>/<image>``, a class that
    is not the photo's folder, an unknown split, or a photo on two lines."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, row) for row in reader]
    if not rows or tuple(rows[0][1]) != COLUMNS:
        raise DatasetError(f"{path} line 1: header {','.join(rows[0][1]) if rows else ''!r}; expected "
                           f"{','.join(COLUMNS)!r} (the split file `fgvc split` writes)")
    listed: dict[str, Listed] = {}
    for number, row in rows[1:]:
        where = f"{path} line {number}"
        if len(row) != len(COLUMNS) or not all(row):
            raise DatasetError(f"{where}: {','.join(row)!r}; expected {len(COLUMNS)} values ({','.join(COLUMNS)})")
        photo, cls, split = row
        parts = PurePosixPath(photo).parts
        if len(parts) != 2 or ".." in parts or photo != "/".join(parts):
            raise DatasetError(f"{where}: path {photo!r}; expected <class>/<image>, relative to the data root")
        if cls != parts[0]:
            raise DatasetError(f"{where}: class {cls!r} for {photo!r}; expected its folder's name {parts[0]!r} "
                               f"(to relabel a photo, move it to the other class folder, then fgvc split --update)")
        if split not in (*SPLITS, EXCLUDED):
            raise DatasetError(f"{where}: split {split!r}; expected one of {', '.join((*SPLITS, EXCLUDED))}")
        if photo in listed:
            raise DatasetError(f"{where}: {photo!r} is already on line {listed[photo].line}: expected one line per "
                               f"photo")
        listed[photo] = Listed(cls, split, number)
    return listed


def write_split_file(path: Path, splits: Mapping[str, tuple[str, str]]) -> None:
    """Write ``{photo path: (class, split)}`` as a split file, sorted by path, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows((photo, cls, split) for photo, (cls, split) in sorted(splits.items()))
    os.replace(tmp, path)


def check_listing(root: str | Path, split_file: Path, listed: Mapping[str, Listed],
                  photos: Mapping[str, str]) -> None:
    """Refuse a split file that does not list exactly the photos of ``root``: the first photo listed but missing
    and the first present but unlisted are named, with how many more and what to do."""
    missing = [photo for photo in listed if photo not in photos]
    if missing:
        raise DatasetError(f"{split_file} line {listed[missing[0]].line} lists {missing[0]}, which is not in {root} "
                           f"({len(missing)} listed photo(s) missing): run `fgvc split {root} --update` to drop "
                           f"their lines, or put them back")
    unlisted = [photo for photo in photos if photo not in listed]
    if unlisted:
        raise DatasetError(f"{Path(root) / unlisted[0]} is not in the split file {split_file} ({len(unlisted)} "
                           f"unlisted photo(s)): run `fgvc split {root} --update` to give new photos a split")


def listed_classes(listed: Mapping[str, Listed]) -> list[str]:
    """The classes of a split file's photos that are not excluded, sorted (the order ImageFolder gives)."""
    return sorted({row.cls for row in listed.values() if row.split != EXCLUDED})


def split_samples(root: str | Path, split_file: Path, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """The classes of the photos of ``root`` listed in ``split_file`` (``listed_classes``), and split ``split``'s
    (file, label) pairs in path order; the file is checked against the photos (``check_listing``)."""
    listed = read_split_file(split_file)
    check_listing(root, split_file, listed, find_photos(root))
    splits = sorted({row.split for row in listed.values()} - {EXCLUDED})
    if split not in splits:
        raise DatasetError(f"split {split!r} is not in {split_file}: it has {', '.join(splits) or 'none'}; expected "
                           f"--train-split / --eval-split to name one of them")
    classes = listed_classes(listed)
    index = {name: label for label, name in enumerate(classes)}
    return classes, [(str(Path(root) / photo), index[row.cls]) for photo, row in listed.items() if row.split == split]


def imagefolder_classes(root: str | Path, split: str, split_file: str | Path | None = None) -> list[str]:
    """The classes of an imagefolder's split ``split``, in label order: its split file's (``split_file_of``) or
    its split folder's."""
    listing = split_file_of(root, split_file)
    if listing is None:
        return find_classes(Path(root) / split)[0]
    return listed_classes(read_split_file(listing))


def imagefolder_splits(root: str | Path, split_file: str | Path | None = None) -> list[str]:
    """The splits of an imagefolder, sorted: those of its split file (``split_file_of``) or its split folders."""
    listing = split_file_of(root, split_file)
    if listing is None:
        return sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
    return sorted({row.split for row in read_split_file(listing).values()} - {EXCLUDED})


def read_exclusions(path: str | Path, root: str | Path) -> list[str]:
    """The photos an exclusion list names, as paths relative to ``root`` (POSIX), in its order; ``DatasetError``
    naming the file and line of an entry that is absolute, leaves ``root``, or names no photo under it."""
    path, root = Path(path), Path(root)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as err:
        raise DatasetError(f"exclusion list {path} not found: expected a text file of photo paths relative to "
                           f"{root}, one a line (fgvc audit writes one)") from err
    entries = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not (root / entry).is_file():
            entry = re.split(r"\s+#", entry, maxsplit=1)[0]
        parts = PurePosixPath(entry).parts
        if PurePosixPath(entry).is_absolute() or ".." in parts or "\\" in entry:
            raise DatasetError(f"{path} line {number}: {entry!r}; expected a photo's path relative to {root}, "
                               f"with / between folders")
        if not ((root / entry).is_file() and entry.lower().endswith(IMG_EXTENSIONS)):
            raise DatasetError(f"{path} line {number}: {entry!r} names no photo under {root}: expected a photo's "
                               f"path relative to the data root, e.g. <class>/<image>")
        entries.append("/".join(parts))
    return entries


def _shares(val: float | None, test: float | None, kept: Mapping[str, Listed]) -> dict[str, float]:
    """The share of each split: ``val`` and ``test`` as given; where one is None, the listed photos' share of it
    (an update keeps the file's proportions), or the default (``VAL_SHARE``, ``TEST_SHARE``). Splits of share 0
    are left out."""
    counts = Counter(row.split for row in kept.values() if row.split != EXCLUDED)
    total = sum(counts.values())
    if val is None:
        val = counts["val"] / total if total else VAL_SHARE
    if test is None:
        test = counts["test"] / total if total else TEST_SHARE
    for name, value in (("--val", val), ("--test", test)):
        if not 0 <= value < 1:
            raise ConfigError(f"{name} {value}: expected a share in [0, 1)")
    if val + test >= 1:
        raise ConfigError(f"--val {val} + --test {test} = {val + test}: expected less than 1, to leave photos to "
                          f"train on")
    shares = {"train": 1 - val - test, "val": val, "test": test}
    return {split: share for split, share in shares.items() if share > 0}


def assign_splits(classes: Sequence[str], groups: Sequence[int], shares: Mapping[str, float], seed: int,
                  fixed: Mapping[int, str]) -> list[str]:
    """The split of each photo (of class ``classes[i]``, in duplicate group ``groups[i]``): a group holding photos
    of ``fixed`` splits takes the split of its first such photo (a fixed photo keeps its own); the others go, one
    group at a time in an order drawn from ``seed`` (whatever their size: a copied photo is as likely to be tested
    as any), to the split whose per-class counts fall furthest short of ``shares`` x the class's photos (summed
    over the group's photos; ties: train, val, test)."""
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    total = Counter(classes)
    have = {split: Counter() for split in shares}
    result = [""] * len(classes)
    free = []
    for indices in members.values():
        held = [fixed[i] for i in indices if i in fixed]
        if not held:
            free.append(indices)
            continue
        for i in indices:
            result[i] = fixed.get(i, held[0])
            have.setdefault(result[i], Counter())[classes[i]] += 1
    order = np.random.default_rng(seed).permutation(len(free))
    for indices in (free[k] for k in order):
        short = {split: sum(share * total[classes[i]] - have[split][classes[i]] for i in indices)
                 for split, share in shares.items()}
        best = max(shares, key=lambda split: short[split])
        for i in indices:
            result[i] = best
            have[best][classes[i]] += 1
    return result


def split_folder(root: str | Path, val: float | None = None, test: float | None = None, seed: int = 0,
                 near_bits: int = NEAR_BITS, exclude: str | Path | None = None, update: bool = False,
                 force: bool = False, threads: int = 4) -> SplitReport:
    """Write ``root/splits.csv`` for the flat folder ``root`` (see the module's docstring): ``val`` and ``test``
    shares (default 0.15 each; on ``update``, the file's own), duplicate groups within ``near_bits`` dHash bits
    kept in one split, the photos of the ``exclude`` list marked excluded. An existing file is refused unless
    ``update`` (keep its splits, add new photos, drop gone ones) or ``force`` (draw afresh). A photo that does not
    decode is refused by name (an exclusion list may leave it out)."""
    root = Path(root)
    out = root / SPLIT_FILE
    if update and force:
        raise ConfigError("--update and --force together: expected one (--update keeps the listed photos' splits, "
                          "--force draws every split afresh)")
    if out.exists() and not (update or force):
        raise FolderError(f"{out} exists and is never rewritten silently: --update gives only new photos a split "
                          f"(the listed ones keep theirs), --force draws every split afresh")
    if update and not out.is_file():
        raise DatasetError(f"no split file {out} to update: run `fgvc split {root}` first")
    photos = find_photos(root)
    listed = read_split_file(out) if update else {}
    kept = {photo: row for photo, row in listed.items() if photo in photos}
    excluded = set(read_exclusions(exclude, root)) if exclude is not None else set()
    excluded |= {photo for photo, row in kept.items() if row.split == EXCLUDED}
    shares = _shares(val, test, kept)
    candidates = [photo for photo in photos if photo not in excluded]
    log.info("hashing %d photos under %s (sha256 and dHash)", len(candidates), root)
    hashes, bad = hash_photos([root / photo for photo in candidates], threads)
    if bad:
        raise BadImageError(bad[0].path, f"{bad[0].reason} ({len(bad)} photo(s) do not decode: move them out of "
                                         f"{root}, or list them in an exclusion file for --exclude)")
    groups = duplicate_labels(hashes, near_bits)
    fixed = {i: kept[photo].split for i, photo in enumerate(candidates) if photo in kept}
    splits = assign_splits([photos[photo] for photo in candidates], groups, shares, seed, fixed)
    sizes = Counter(groups)
    spanning = {group for group, split in zip(groups, splits) if split != splits[group]}
    written = {photo: (cls, EXCLUDED) for photo, cls in photos.items() if photo in excluded}
    written.update({photo: (photos[photo], split) for photo, split in zip(candidates, splits)})
    write_split_file(out, written)
    return SplitReport(out, dict(Counter(split for _, split in written.values())),
                       sum(size > 1 for size in sizes.values()), sum(size for size in sizes.values() if size > 1),
                       sum(photo not in kept for photo in photos) if update else 0,
                       sorted(set(listed) - set(photos)), len(spanning))
