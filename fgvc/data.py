"""Datasets, transforms and DataLoaders.

    train_set = build_dataset("data", "trainval")          # FGVC-Aircraft, banner cropped
    loaders = build_loaders(cfg, spec)                     # augmented train, plain eval

FGVC-Aircraft is read by torchvision's ``FGVCAircraft``; every photo's 20-px copyright
banner is cropped off when the image is loaded, before any transform, as the dataset's
README asks. A user's own photos use the ImageFolder layout ``root/<split>/<class>/*.jpg``.

Nothing bad reaches the training loop: every annotation line is checked (a problem names the
file and line), and ``build_loaders`` decodes every image first, refusing a bad one with a
``BadImageError`` naming the file, or with ``skip_bad_images`` leaving it out and logging it.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision import datasets, transforms

from fgvc import metrics
from fgvc.config import EVAL_VIEWS, FGVC_SPLITS, LEVELS, TrainConfig
from fgvc.distributed import SINGLE, Dist, ShardSampler
from fgvc.errors import BadImageError, ConfigError, DatasetError

FGVC_FOLDER = "fgvc-aircraft-2013b"
FGVC_URL = datasets.FGVCAircraft._URL
LEVEL_FILES = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
DOWNLOAD_TIMEOUT_S = 20.0
# The random affine's fixed ranges; its rotation (and half of it as shear) comes from the config.
AFFINE_TRANSLATE = (0.05, 0.05)  # largest shift, as a fraction of the width and of the height
AFFINE_SCALE = (0.9, 1.1)
# What PIL raises for a file it cannot decode (missing, truncated, damaged, not an image, too many pixels).
DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError)

log = logging.getLogger("fgvc")


def _decode_failure(path: str | Path, err: Exception) -> str:
    """A short reason for ``err``, raised while decoding ``path``."""
    if isinstance(err, FileNotFoundError):
        return "file not found"
    if isinstance(err, UnidentifiedImageError):
        return "empty file (0 bytes)" if Path(path).stat().st_size == 0 else "not an image (unknown format)"
    if isinstance(err, Image.DecompressionBombError):
        return f"refused as a possible decompression bomb: {err}"
    return f"damaged image: {err}"


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit greyscale keeps its top 8 bits, transparent pixels lie over white."""
    if img.mode.startswith("I;16"):
        img = Image.fromarray((np.asarray(img) >> 8).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    return img.convert("RGB")


def load_image(path: str | Path, banner_px: int = 0) -> Image.Image:
    """Open an image as 8-bit RGB with its EXIF orientation applied and ``banner_px`` rows cut from the bottom.

    Raises ``BadImageError`` naming the file when it is missing, empty, not an image, truncated,
    beyond PIL's pixel limit (twice ``Image.MAX_IMAGE_PIXELS``) or no taller than the banner.
    """
    try:
        with Image.open(path) as img:
            img = to_rgb(ImageOps.exif_transpose(img))
    except DECODE_ERRORS as err:
        raise BadImageError(path, _decode_failure(path, err)) from err
    if banner_px:
        if img.height <= banner_px:
            raise BadImageError(path, f"{img.height} px tall, expected more than the {banner_px}-px banner")
        img = img.crop((0, 0, img.width, img.height - banner_px))
    return img


def find_bad_images(paths: Sequence[str | Path], loader: Callable[[str], object] = load_image,
                    threads: int = 1) -> list[BadImageError]:
    """Decode every file with ``loader`` (``threads`` at a time); the errors of those that fail, in order."""
    def failure(path: str | Path) -> BadImageError | None:
        try:
            loader(str(path))
        except BadImageError as err:
            return err
        return None

    pool = ThreadPoolExecutor(max(1, threads))
    try:
        return [err for err in pool.map(failure, paths) if err is not None]
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C does not wait for the rest of the files


def fgvc_missing_message(root: Path, missing: Path) -> str:
    """The error a user sees when FGVC-Aircraft is not where the config says."""
    return (f"FGVC-Aircraft not found under {root}: {missing} is missing. "
            f"Run `fgvc download --data-root {root}` (or download {FGVC_URL} and unpack it into {root}, "
            f"giving {root / FGVC_FOLDER}/data/...), or try the offline demo with `make demo`.")


def check_fgvc_files(root: str | Path, split: str, level: str) -> None:
    """Raise ``DatasetError`` naming the first annotation file or folder that is missing."""
    root = Path(root)
    data = root / FGVC_FOLDER / "data"
    for needed in (data, data / LEVEL_FILES[level], data / f"images_{level}_{split}.txt", data / "images"):
        if not needed.exists():
            raise DatasetError(fgvc_missing_message(root, needed))


def fgvc_annotation_problems(root: str | Path, split: str, level: str) -> list[str]:
    """Every line of ``images_<level>_<split>.txt`` that does not fit, as ``"<file> line N: <problem>"``.

    A line must read ``<image id> <class name>``, name a class of ``variants.txt`` (or families /
    manufacturers) and an image that exists in ``images/``.
    """
    data = Path(root) / FGVC_FOLDER / "data"
    classes_file, labels_file = data / LEVEL_FILES[level], data / f"images_{level}_{split}.txt"
    for needed in (classes_file, labels_file):
        if not needed.is_file():
            return [f"{needed}: file not found"]
    classes = {line.strip() for line in classes_file.read_text().splitlines()}
    images = {p.name for p in (data / "images").iterdir()} if (data / "images").is_dir() else set()
    problems = []
    for number, line in enumerate(labels_file.read_text().splitlines(), start=1):
        image_id, _, name = line.strip().partition(" ")
        where = f"{labels_file} line {number}"
        if not image_id or not name:
            problems.append(f"{where}: {line!r} is malformed, expected '<image id> <{level} name>'")
        elif name not in classes:
            problems.append(f"{where}: {level} {name!r} is not in {classes_file.name}")
        elif f"{image_id}.jpg" not in images:
            problems.append(f"{where}: image {data / 'images' / image_id}.jpg not found")
    return problems


def check_data(root: str | Path, dataset: str = "fgvc-aircraft", banner_px: int = 20,
               threads: int = 4) -> tuple[int, list[str]]:
    """Check a dataset as training would read it; return (images decoded, problems found).

    FGVC-Aircraft: every annotation file of every level and split, then every ``images/*.jpg``
    (which must be taller than ``banner_px``). ImageFolder: every image of every split folder.
    """
    root = Path(root)
    if dataset == "imagefolder":
        splits = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not splits:
            raise DatasetError(f"no split folders under {root}: expected {root}/<split>/<class name>/<image files>")
        files = [path for split in splits for path, _ in datasets.ImageFolder(split).samples]
        problems, loader = [], load_image
    else:
        data = root / FGVC_FOLDER / "data"
        if not data.is_dir():
            raise DatasetError(fgvc_missing_message(root, data))
        problems = [problem for level in LEVELS for split in FGVC_SPLITS
                    for problem in fgvc_annotation_problems(root, split, level)]
        files = sorted(str(p) for p in (data / "images").glob("*.jpg"))
        loader = functools.partial(load_image, banner_px=banner_px)
    problems += [str(err) for err in find_bad_images(files, loader, threads)]
    return len(files), problems


def download_fgvc(root: str | Path) -> Path:
    """Download and unpack FGVC-Aircraft 2013b under ``root`` (2.6 GB) unless it is there; return its folder."""
    root = Path(root)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        datasets.FGVCAircraft(root, download=True)
    except (OSError, RuntimeError) as err:
        raise DatasetError(
            f"could not download FGVC-Aircraft ({err}). Download {FGVC_URL} by hand and unpack it into "
            f"{root} (giving {root / FGVC_FOLDER}/data/...), or run the offline demo with `make demo`."
        ) from err
    finally:
        socket.setdefaulttimeout(previous)
    return root / FGVC_FOLDER


def build_dataset(root: str | Path, split: str, level: str = "variant", transform: Callable | None = None,
                  download: bool = False, banner_px: int = 20) -> datasets.FGVCAircraft:
    """FGVC-Aircraft ``split`` at ``level``; images come banner-cropped, then through ``transform``.

    ``.classes`` follows the line order of ``variants.txt`` (or families / manufacturers).
    """
    if download:
        download_fgvc(root)
    check_fgvc_files(root, split, level)
    problems = fgvc_annotation_problems(root, split, level)
    if problems:
        more = f" ({len(problems) - 1} more: `fgvc check-data --data-root {root}` lists them all)"
        raise DatasetError(problems[0] + (more if len(problems) > 1 else ""))
    return datasets.FGVCAircraft(root, split=split, annotation_level=level, transform=transform,
                                 loader=functools.partial(load_image, banner_px=banner_px))


def build_imagefolder(root: str | Path, split: str, transform: Callable | None = None) -> datasets.ImageFolder:
    """A user's own photos laid out as ``root/<split>/<class>/<image>``."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} not found: expected {root}/{split}/<class name>/<image files>")
    return datasets.ImageFolder(folder, transform=transform, loader=load_image)


def dataset_labels(dataset: Dataset) -> list[int]:
    """The label of every item without decoding any image (ImageFolder ``targets``, FGVCAircraft ``_labels``)."""
    if hasattr(dataset, "targets"):
        return list(dataset.targets)
    return list(dataset._labels)


@dataclass(frozen=True)
class Normalization:
    """What the backbone's weights expect of an input image."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: transforms.InterpolationMode = transforms.InterpolationMode.BICUBIC


def train_transform(img_size: int, norm: Normalization, min_crop_scale: float = 0.25,
                    affine_degrees: float = 10.0) -> transforms.Compose:
    """The project's three augmentations: random resized crop, horizontal flip, random affine."""
    return transforms.Compose([
        transforms.RandomResizedCrop(img_size, scale=(min_crop_scale, 1.0), interpolation=norm.interpolation),
        transforms.RandomHorizontalFlip(),
        transforms.RandomAffine(degrees=affine_degrees, translate=AFFINE_TRANSLATE, scale=AFFINE_SCALE,
                                shear=affine_degrees / 2, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(),
        transforms.Normalize(norm.mean, norm.std),
    ])


def eval_transform(img_size: int, norm: Normalization, view: str = "squash") -> transforms.Compose:
    """The one evaluation preprocessing: every path that predicts (evaluate, predict, Grad-CAM) uses it.

    ``view`` says what the network sees of a photo: ``squash`` the whole image resized to
    ``img_size`` x ``img_size``; ``whole`` the short side resized to ``img_size``, aspect ratio kept
    (inputs differ in width, so they are not batched together); ``crop`` the short side resized, then
    the centre square, which cuts the nose and tail off a 3:2 photo.
    """
    resize = {"squash": [transforms.Resize((img_size, img_size), interpolation=norm.interpolation)],
              "whole": [transforms.Resize(img_size, interpolation=norm.interpolation)],
              "crop": [transforms.Resize(img_size, interpolation=norm.interpolation), transforms.CenterCrop(img_size)]}
    if view not in resize:
        raise ConfigError(f"view={view!r} is invalid: expected one of {EVAL_VIEWS}")
    return transforms.Compose([*resize[view], transforms.ToTensor(), transforms.Normalize(norm.mean, norm.std)])


def visible_part(image: Image.Image, view: str) -> Image.Image:
    """The part of ``image`` that ``view`` shows the network (the centre square for ``crop``)."""
    if view != "crop":
        return image
    side = min(image.size)
    left, top = round((image.width - side) / 2), round((image.height - side) / 2)
    return image.crop((left, top, left + side, top + side))


def build_split(cfg: TrainConfig, split: str, transform: Callable | None) -> Dataset:
    """The dataset named by ``cfg`` for one split."""
    if cfg.dataset == "imagefolder":
        return build_imagefolder(cfg.data_root, split, transform)
    return build_dataset(cfg.data_root, split, cfg.level, transform, download=cfg.download,
                         banner_px=cfg.banner_px)


@dataclass
class Loaders:
    """The two loaders of a run and the class names they share."""

    train: DataLoader
    eval: DataLoader
    classes: list[str]
    hierarchy: dict[str, tuple[np.ndarray, list[str]]] | None  # families and manufacturers, where the data has them
    skipped: list[BadImageError] = field(default_factory=list)  # bad images left out (skip_bad_images)


def image_files(dataset: Dataset) -> list[str]:
    """The image file of every item (ImageFolder ``samples``, FGVCAircraft ``_image_files``)."""
    if isinstance(dataset, datasets.ImageFolder):
        return [path for path, _ in dataset.samples]
    return list(dataset._image_files)


def drop_bad_images(dataset: Dataset, cfg: TrainConfig, split: str) -> list[BadImageError]:
    """Decode every image of ``dataset``; a bad one raises ``BadImageError``, or with
    ``cfg.skip_bad_images`` is logged and removed from ``dataset``. Returns the removed ones."""
    files = image_files(dataset)
    log.info("decoding the %d images of split %r to check them", len(files), split)
    bad = find_bad_images(files, dataset.loader, cfg.workers)
    if not bad:
        return []
    if not cfg.skip_bad_images:
        raise BadImageError(bad[0].path, f"{bad[0].reason} ({len(bad)} bad image(s) in split {split!r}: "
                            f"`fgvc check-data --data-root {cfg.data_root}` lists them, "
                            f"`fgvc train --skip-bad-images` trains without them)")
    for err in bad:
        log.warning("skipping bad image %s", err)
    skipped = {err.path for err in bad}
    if isinstance(dataset, datasets.ImageFolder):
        dataset.samples = dataset.imgs = [s for s in dataset.samples if s[0] not in skipped]
        dataset.targets = [label for _, label in dataset.samples]
    else:
        keep = [i for i, path in enumerate(dataset._image_files) if path not in skipped]
        dataset._image_files = [dataset._image_files[i] for i in keep]
        dataset._labels = [dataset._labels[i] for i in keep]
    return bad


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
                sampler: Sampler[int] | None = None) -> DataLoader:
    """In-order batches of ``dataset`` (one image a batch for the ``whole`` view, whose widths differ)."""
    return DataLoader(dataset, batch_size=1 if view == "whole" else batch_size, shuffle=False, sampler=sampler,
                      num_workers=workers, pin_memory=torch.cuda.is_available())


def build_loaders(cfg: TrainConfig, norm: Normalization, generator: torch.Generator | None = None,
                  ranks: Dist = SINGLE) -> Loaders:
    """Augmented, shuffled training loader and a plain evaluation loader (``cfg.eval_view``) for ``cfg``.

    The training order is a permutation drawn from ``(cfg.seed, epoch)`` (``loader.sampler.set_epoch``),
    so a resumed run sees the same batches as an uninterrupted one; under torchrun (``ranks``) each
    process trains on every ``world_size``-th image of it and evaluates every ``world_size``-th
    image, with no padding. ``generator`` seeds the loader's workers; ``fit`` reseeds it every epoch.
    Every annotation file is read (the family and manufacturer files too) before any image is
    decoded; then every image is decoded once (``cfg.workers`` threads), so a bad file stops the
    run before training starts.
    """
    augment = train_transform(cfg.img_size, norm, cfg.min_crop_scale, cfg.affine_degrees)
    train_set = build_split(cfg, cfg.train_split, augment)
    eval_set = build_split(cfg, cfg.eval_split, eval_transform(cfg.img_size, norm, cfg.eval_view))
    if train_set.classes != eval_set.classes:
        raise DatasetError(f"the classes of split {cfg.train_split!r} and {cfg.eval_split!r} differ under "
                           f"{cfg.data_root}: every split must hold the same class folders")
    hierarchy = dataset_hierarchy(cfg, cfg.eval_split)
    _check_sizes(cfg, train_set, eval_set, ranks)
    skipped = drop_bad_images(train_set, cfg, cfg.train_split) + drop_bad_images(eval_set, cfg, cfg.eval_split)
    _check_sizes(cfg, train_set, eval_set, ranks)
    # One sampler for 1 process or N: the permutation depends on (seed, epoch) alone, and rank r takes every
    # N-th index of it, so global batch k holds the same images on 1 process as on N.
    shard = DistributedSampler(train_set, ranks.world_size, ranks.rank, shuffle=True, seed=cfg.seed, drop_last=True)
    # Workers are not persistent: each epoch's workers take their seeds from the reseeded generator.
    train = DataLoader(train_set, batch_size=cfg.batch_size, sampler=shard, drop_last=True, generator=generator,
                       num_workers=cfg.workers, pin_memory=torch.cuda.is_available())
    evaluation = eval_loader(eval_set, cfg.batch_size, cfg.eval_view, cfg.workers,
                             ShardSampler(len(eval_set), ranks) if ranks.enabled else None)
    return Loaders(train, evaluation, list(train_set.classes), hierarchy, skipped)


def read_hierarchy(root: str | Path, split: str, level: str = "variant") -> dict[str, tuple[np.ndarray, list[str]]]:
    """For FGVC-Aircraft: map each class of ``level`` to its family and manufacturer.

    The mapping joins the annotation files of the levels by image id, so it holds exactly
    what the dataset says. Returns ``{parent_level: (parent_of, parent_names)}``.
    """
    data = Path(root) / FGVC_FOLDER / "data"
    files = LEVEL_FILES
    for name in LEVELS[LEVELS.index(level):]:
        check_fgvc_files(root, split, name)

    def labels(name: str) -> dict[str, str]:
        with (data / f"images_{name}_{split}.txt").open() as f:
            return dict(line.rstrip("\n").split(" ", 1) for line in f if line.strip())

    child_names = (data / files[level]).read_text().splitlines()
    children = labels(level)
    hierarchy = {}
    for parent in LEVELS[LEVELS.index(level) + 1:]:
        parent_names = (data / files[parent]).read_text().splitlines()
        parents = labels(parent)
        unlabelled = sorted(set(children) - set(parents))
        if unlabelled:
            raise DatasetError(f"{data / f'images_{parent}_{split}.txt'} has no line for image {unlabelled[0]} "
                               f"({len(unlabelled)} in all): expected every image of images_{level}_{split}.txt")
        pairs = {(children[image], parents[image]) for image in children}
        try:
            hierarchy[parent] = (metrics.parent_index(child_names, parent_names, pairs), parent_names)
        except ValueError as err:  # a class in two families, or one without any
            raise DatasetError(f"images_{level}_{split}.txt and images_{parent}_{split}.txt under {data} "
                               f"disagree: {err}") from err
    return hierarchy


def dataset_hierarchy(cfg: TrainConfig, split: str) -> dict[str, tuple[np.ndarray, list[str]]] | None:
    """The family / manufacturer hierarchy of ``cfg``'s dataset, or None where it has none."""
    if cfg.dataset != "fgvc-aircraft" or cfg.level == "manufacturer":
        return None
    return read_hierarchy(cfg.data_root, split, cfg.level)


def hierarchy_names(hierarchy: dict[str, tuple[np.ndarray, list[str]]]) -> dict[str, list[str]]:
    """``{level: parent name of each class}``, the form checkpoints and predictions carry."""
    return {level: [names[i] for i in parent_of] for level, (parent_of, names) in hierarchy.items()}
