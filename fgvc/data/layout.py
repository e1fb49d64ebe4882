"""FGVC-Aircraft 2013b on disk: its folder and file names, and reading and checking its annotation files.

The one description of the layout: the datasets read it, ``fgvc.data.synthetic`` writes it and the benchmarks
look for it through this module.

    root/fgvc-aircraft-2013b/data/images/<7-digit id>.jpg
    root/fgvc-aircraft-2013b/data/variants.txt                  one class per line; line order = class index
    root/fgvc-aircraft-2013b/data/images_<level>_<split>.txt    "<image id> <class name>" per line

An image of ``images/`` there still carries the dataset's copyright banner unless ``fgvc prepare`` wrote ``root``
(``prepared_info``); ``is_original_image`` says whether a path is such a photo.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fgvc.core.errors import DatasetError

FGVC_FOLDER = "fgvc-aircraft-2013b"
FGVC_URL = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"
LEVEL_FILES = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
BOX_FILE = "images_box.txt"
PREPARED_MARKER = "prepared.json"  # beside data/: written by `fgvc prepare`
SYNTHETIC_MARKER = "synthetic.txt"  # beside data/: written by fgvc.data.synthetic, with its arguments
IMAGE_NAME = re.compile(r"\d{7}\.jpg")  # an image file of images/: its 7-digit id, leading zeros kept


def data_dir(root: str | Path) -> Path:
    """The ``data`` folder of the dataset under ``root``."""
    return Path(root) / FGVC_FOLDER / "data"


def image_path(root: str | Path, image_id: str) -> Path:
    """The file of image ``image_id``."""
    return data_dir(root) / "images" / f"{image_id}.jpg"


def labels_file(root: str | Path, split: str, level: str) -> Path:
    """``images_<level>_<split>.txt``: the class of every image of ``split``."""
    return data_dir(root) / f"images_{level}_{split}.txt"


def label_line(line: str) -> tuple[str, str]:
    """``(image id, class name)`` of one line ``<image id> <class name>`` (either empty when it is malformed)."""
    image_id, _, name = line.strip().partition(" ")
    return image_id, name


def read_labels(root: str | Path, split: str, level: str) -> list[tuple[str, str]]:
    """``(image id, class name)`` of every image of ``split`` at ``level``, in the file's order."""
    with labels_file(root, split, level).open(encoding="utf-8") as f:
        return [label_line(line) for line in f if line.strip()]


def read_classes(root: str | Path, level: str) -> list[str]:
    """The class names of ``level``, in line order (the class index)."""
    return [line.strip() for line in (data_dir(root) / LEVEL_FILES[level]).read_text(encoding="utf-8").splitlines()]


def missing_message(root: Path, missing: Path) -> str:
    """The error a user sees when FGVC-Aircraft is not where the config says."""
    return (f"FGVC-Aircraft not found under {root}: {missing} is missing. "
            f"Run `fgvc download --data-root {root}` (or download {FGVC_URL} and unpack it into {root}, "
            f"giving {root / FGVC_FOLDER}/data/...), or try the offline demo with `make demo`.")


def check_files(root: str | Path, split: str, level: str) -> None:
    """Raise ``DatasetError`` naming the first annotation file or folder that is missing."""
    data = data_dir(root)
    for needed in (data, data / LEVEL_FILES[level], labels_file(root, split, level), data / "images"):
        if not needed.exists():
            raise DatasetError(missing_message(Path(root), needed))


def annotation_problems(root: str | Path, split: str, level: str) -> list[str]:
    """Every line of ``images_<level>_<split>.txt`` that does not fit, as ``"<file> line N: <problem>"``.

    A line must read ``<image id> <class name>``, name a class of ``variants.txt`` (or families /
    manufacturers) and an image that exists in ``images/``.
    """
    data = data_dir(root)
    classes_file, split_file = data / LEVEL_FILES[level], labels_file(root, split, level)
    for needed in (classes_file, split_file):
        if not needed.is_file():
            return [f"{needed}: file not found"]
    classes = set(read_classes(root, level))
    images = {p.name for p in (data / "images").iterdir()} if (data / "images").is_dir() else set()
    problems = []
    for number, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), start=1):
        image_id, name = label_line(line)
        where = f"{split_file} line {number}"
        if not image_id or not name:
            problems.append(f"{where}: {line!r} is malformed, expected '<image id> <{level} name>'")
        elif name not in classes:
            problems.append(f"{where}: {level} {name!r} is not in {classes_file.name}")
        elif f"{image_id}.jpg" not in images:
            problems.append(f"{where}: image {data / 'images' / image_id}.jpg not found")
    return problems


def prepared_info(root: str | Path) -> dict[str, object] | None:
    """What ``fgvc prepare`` recorded about the dataset under ``root``, or None for an original one."""
    marker = Path(root) / FGVC_FOLDER / PREPARED_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def is_original_name(name: str) -> bool:
    """Whether a file ``name`` is named as FGVC-Aircraft names its photos: a 7-digit id, ``.jpg`` (``0034309.jpg``)."""
    return IMAGE_NAME.fullmatch(name) is not None


def is_original_image(path: str | Path) -> bool:
    """Whether ``path`` is one of FGVC-Aircraft's photos as distributed, banner and all: a file named as the
    dataset names them (``is_original_name``) in ``<root>/fgvc-aircraft-2013b/data/images/``, where ``<root>`` is
    not a ``fgvc prepare``d copy. Decided from the path (a relative one from the working directory) and the
    marker of ``fgvc prepare``; the image is not opened, so a copy elsewhere, or renamed, is not one."""
    path = Path(path).absolute()
    if not is_original_name(path.name) or len(path.parents) < 4:
        return False
    root = path.parents[3]
    return path == image_path(root, path.stem) and prepared_info(root) is None


def synthetic_info(root: str | Path) -> str | None:
    """The arguments ``fgvc.data.synthetic`` recorded for the complete dataset it wrote under ``root``, or None."""
    marker, classes = Path(root) / FGVC_FOLDER / SYNTHETIC_MARKER, data_dir(root) / LEVEL_FILES["variant"]
    return marker.read_text() if marker.is_file() and classes.is_file() else None

