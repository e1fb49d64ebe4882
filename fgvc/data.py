"""Datasets, transforms and DataLoaders.

    train_set = build_dataset("data", "trainval")          # FGVC-Aircraft, banner cropped
    loaders = build_loaders(cfg, spec)                     # augmented train, plain eval

FGVC-Aircraft is read by torchvision's ``FGVCAircraft``; every photo's 20-px copyright
banner is cropped off when the image is loaded, before any transform, as the dataset's
README asks. A user's own photos use the ImageFolder layout ``root/<split>/<class>/*.jpg``.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

from fgvc.config import TrainConfig

FGVC_FOLDER = "fgvc-aircraft-2013b"
FGVC_URL = datasets.FGVCAircraft._URL
LEVEL_FILES = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
DOWNLOAD_TIMEOUT_S = 20.0


class DatasetError(FileNotFoundError):
    """The dataset on disk is missing or incomplete."""


def load_image(path: str | Path, banner_px: int = 0) -> Image.Image:
    """Open an image as RGB with its EXIF orientation applied and ``banner_px`` rows cut from the bottom."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    if banner_px:
        if img.height <= banner_px:
            raise ValueError(f"{path}: image is {img.height} px tall, expected more than the {banner_px}-px banner")
        img = img.crop((0, 0, img.width, img.height - banner_px))
    return img


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
    return datasets.FGVCAircraft(root, split=split, annotation_level=level, transform=transform,
                                 loader=functools.partial(load_image, banner_px=banner_px))


def build_imagefolder(root: str | Path, split: str, transform: Callable | None = None) -> datasets.ImageFolder:
    """A user's own photos laid out as ``root/<split>/<class>/<image>``."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} not found: expected {root}/{split}/<class name>/<image files>")
    return datasets.ImageFolder(folder, transform=transform, loader=load_image)


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
        transforms.RandomAffine(degrees=affine_degrees, translate=(0.05, 0.05), scale=(0.9, 1.1),
                                shear=affine_degrees / 2, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(),
        transforms.Normalize(norm.mean, norm.std),
    ])


def eval_transform(img_size: int, norm: Normalization) -> transforms.Compose:
    """Resize the short side to ``img_size`` and take the centre crop."""
    return transforms.Compose([
        transforms.Resize(img_size, interpolation=norm.interpolation),
        transforms.CenterCrop(img_size),
        transforms.ToTensor(),
        transforms.Normalize(norm.mean, norm.std),
    ])


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


def build_loaders(cfg: TrainConfig, norm: Normalization, generator: torch.Generator | None = None) -> Loaders:
    """Augmented, shuffled training loader and a plain evaluation loader for ``cfg``.

    ``generator`` drives shuffling and worker seeds; ``fit`` reseeds it every epoch so a
    resumed run sees the same batches as an uninterrupted one.
    """
    augment = train_transform(cfg.img_size, norm, cfg.min_crop_scale, cfg.affine_degrees)
    train_set = build_split(cfg, cfg.train_split, augment)
    eval_set = build_split(cfg, cfg.eval_split, eval_transform(cfg.img_size, norm))
    if train_set.classes != eval_set.classes:
        raise DatasetError(f"the classes of split {cfg.train_split!r} and {cfg.eval_split!r} differ under "
                           f"{cfg.data_root}: every split must hold the same class folders")
    if len(train_set) < cfg.batch_size:
        raise DatasetError(f"batch_size={cfg.batch_size} is larger than split {cfg.train_split!r} "
                           f"({len(train_set)} images under {cfg.data_root}): expected a smaller batch")
    # Workers are not persistent: each epoch's workers take their seeds from the reseeded generator.
    common = dict(num_workers=cfg.workers, pin_memory=torch.cuda.is_available())
    train = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                       generator=generator, **common)
    evaluation = DataLoader(eval_set, batch_size=cfg.batch_size, shuffle=False, **common)
    return Loaders(train, evaluation, list(train_set.classes))
