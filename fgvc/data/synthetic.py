"""A synthetic FGVC-Aircraft: procedural aircraft in the dataset's exact on-disk layout.

Usage::

    from fgvc.data.synthetic import write_synthetic_dataset
    from torchvision.datasets import FGVCAircraft

    root = write_synthetic_dataset("data/synthetic", num_classes=12, per_class=30, seed=0)
    hard = write_synthetic_dataset("data/synthetic-hard", num_classes=6, difficulty="hard")
    train = FGVCAircraft("data/synthetic", split="trainval", annotation_level="variant")

``write_synthetic_dataset(out)`` writes ``out/fgvc-aircraft-2013b/data/`` the way the real
2013b archive lays it out, so torchvision's ``FGVCAircraft(root=out)`` reads it unchanged:

- ``variants.txt``, ``families.txt``, ``manufacturers.txt``: one class name per line, class
  index = line order. Names look like real ones, some with ``/`` (``AR300B/C``, ``B/A-14``)
  and some with spaces (``Boreal 121``, ``AR300 Mk 3``). They depend on ``num_classes`` only.
- ``images_{variant,family,manufacturer}_{train,val,trainval,test}.txt``: ``<id> <name>``
  lines, grouped by class; ids are random 7-digit, zero-padded numbers (so file order is
  not class order). Per class a third each goes to train / val / test; trainval = train + val.
- ``images_box.txt``: ``<id> xmin ymin xmax ymax``, the aircraft's tight bounding box with the
  real set's convention: inclusive pixel coordinates, top-left pixel = (1, 1).
- ``images/<id>.jpg``: ``size`` = (width, height) pixels, the last ``BANNER_HEIGHT`` rows a
  dark copyright-like strip with light pseudo-text (as in the real photos; not class signal).

Next to ``data/`` a ``synthetic.txt`` marker records the arguments; a folder without it is
never overwritten (it may be the real dataset), a folder with it is replaced.

The aircraft are seen from above. The hierarchy is real, with about 3 variants per family and
2 families per manufacturer, and at least 2 families and 2 manufacturers so that no annotation
level is a single class (12 classes: 4 families, 2 manufacturers; 100: 34 and 17). A
manufacturer fixes the fuselage (nose shape, fuselage width, cockpit glazing), a family the
wing layout (sweep or delta, fore/mid/aft position, span), a variant the finer details (engine
count and placement, tail type, fuselage stretch). Colour, heading, scale, position, sky,
clouds and noise are drawn at random per image, so only shape tells classes apart. Same
arguments (and Pillow build) give the same bytes.

``difficulty="hard"`` (what ``make demo`` trains on) makes the variant a small cue that is
sometimes hidden: engines and stretch become the family's, the variants of a family differ only by
their tail, and in ``HARD_HIDDEN`` of the images a cloud in front of the aircraft hides the tail.
Families stay easy to tell apart (wings, engines, fuselage) while a hidden tail leaves the variant
to a guess among its siblings, so a model's errors stay inside the family (blocks on the confusion
matrix's diagonal) and Grad-CAM shows what it looked at instead. ``"easy"`` (the default) gives
each variant its own engines, tail and stretch and hides nothing. The hard set takes at most
``MAX_HARD_CLASSES`` classes (3 tails per family).

This module writes the dataset; ``fgvc.data.synthetic_aircraft`` holds the classes and their shapes and
``fgvc.data.synthetic_render`` draws each image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from fgvc.core.config import FGVC_SPLITS, LEVELS
from fgvc.core.defaults import DIFFICULTIES
from fgvc.core.errors import ConfigError, FolderError
from fgvc.data.layout import (
    BOX_FILE,
    FGVC_FOLDER,
    LEVEL_FILES,
    SYNTHETIC_MARKER,
    data_dir,
    image_path,
    labels_file,
)
from fgvc.data.synthetic_aircraft import MAX_CLASSES, MAX_HARD_CLASSES, Variant, classes
from fgvc.data.synthetic_render import BANNER_HEIGHT, render

MIN_PICTURE = 48  # px, smallest width and height of the picture above the banner

HARD_HIDDEN = 0.2  # share of the hard set's images whose tail a cloud hides


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    """Raise ValueError unless ``value`` is an int in [minimum, maximum]."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if not ok or (maximum is not None and value > maximum):
        expected = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"{name} must be an integer {expected}, got {value!r}")


def _prepare(out: Path) -> None:
    """Make an empty dataset folder under ``out``, replacing only a dataset this module wrote earlier."""
    root = out / FGVC_FOLDER
    if root.exists() and any(root.iterdir()):
        if not (root / SYNTHETIC_MARKER).is_file():
            raise FolderError(f"{root} exists and is not a synthetic dataset (no {SYNTHETIC_MARKER}); "
                              "refusing to overwrite it, choose another output folder")
        shutil.rmtree(data_dir(out), ignore_errors=True)
    image_path(out, "0").parent.mkdir(parents=True)


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write ``lines`` with a newline after each."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_synthetic_dataset(out: str | Path, num_classes: int = 12, per_class: int = 30,
                            size: tuple[int, int] = (160, 140), seed: int = 0,
                            banner_colour: tuple[int, int, int] | None = None,
                            width_range: tuple[int, int] | None = None, difficulty: str = "easy") -> Path:
    """Write the dataset under out/fgvc-aircraft-2013b and return that folder.

    ``size`` is (width, height) of each JPEG including the bottom ``BANNER_HEIGHT`` rows. With
    ``width_range`` = (min, max), each image's width is drawn from that range instead and its picture
    is 2/3 as tall (3:2, as FGVC-Aircraft's photos are), with the banner below.
    ``banner_colour`` paints the banner plain in that colour (tests pick one that nothing else
    in the images comes near, so a single banner pixel that survives cropping shows).
    ``difficulty`` is ``"easy"`` (each variant its own engines, tail and stretch) or ``"hard"``
    (the variants of a family differ only by their tail, at times hidden; see the module docstring).
    Raises ``ConfigError`` for bad arguments and ``FolderError`` rather than overwrite a folder
    this function did not write.
    """
    if difficulty not in DIFFICULTIES:
        raise ConfigError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    _check_int("num_classes", num_classes, 2, MAX_HARD_CLASSES if difficulty == "hard" else MAX_CLASSES)
    _check_int("per_class", per_class, 3)
    _check_int("seed", seed, 0)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
            or size[0] < MIN_PICTURE or size[1] < MIN_PICTURE + BANNER_HEIGHT):
        raise ConfigError(f"size must be (width, height) integers of at least "
                         f"({MIN_PICTURE}, {MIN_PICTURE + BANNER_HEIGHT}), got {size!r}")
    size = (size[0], size[1])
    if width_range is not None:
        _check_int("width_range[0]", width_range[0], MIN_PICTURE * 3 // 2)
        _check_int("width_range[1]", width_range[1], width_range[0])

    out = Path(out)
    _prepare(out)
    root = out / FGVC_FOLDER
    _write_lines(root / SYNTHETIC_MARKER, [f"fgvc.data.synthetic num_classes={num_classes} per_class={per_class} "
                                  f"size={size[0]}x{size[1]} seed={seed} width_range={width_range} "
                                  f"difficulty={difficulty}"])
    variants = classes(num_classes, difficulty)
    rng = np.random.default_rng(seed)
    ids = [f"{i:07d}" for i in rng.choice(10**7, size=num_classes * per_class, replace=False)]

    splits: dict[str, list[tuple[str, Variant]]] = {s: [] for s in FGVC_SPLITS}
    boxes: list[str] = []
    n_test = per_class // 3
    n_val = (per_class - n_test) // 2
    for c, var in enumerate(variants):
        class_ids = ids[c * per_class:(c + 1) * per_class]
        for k, image_id in enumerate(class_ids):
            draw = np.random.default_rng([seed, c, k])
            if width_range is not None:
                width = int(draw.integers(width_range[0], width_range[1] + 1))
                size = (width, round(width * 2 / 3) + BANNER_HEIGHT)
            image, box = render(var, size, draw, banner_colour, HARD_HIDDEN if difficulty == "hard" else 0.0)
            image.save(image_path(out, image_id), quality=90)
            boxes.append(f"{image_id} {' '.join(map(str, box))}")
        test, val, train = class_ids[:n_test], class_ids[n_test:n_test + n_val], class_ids[n_test + n_val:]
        for split, split_ids in (("train", train), ("val", val), ("trainval", train + val), ("test", test)):
            splits[split] += [(image_id, var) for image_id in split_ids]

    for level in LEVELS:
        _write_lines(data_dir(out) / LEVEL_FILES[level], list(dict.fromkeys(v.label(level) for v in variants)))
        for split, items in splits.items():
            _write_lines(labels_file(out, split, level), [f"{i} {v.label(level)}" for i, v in items])
    _write_lines(data_dir(out) / BOX_FILE, boxes)
    return root
