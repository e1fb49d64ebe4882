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
import json
import logging
import math
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision import datasets, transforms
from torchvision.transforms import v2

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
# Training decodes (and `fgvc prepare` stores) images with their short side this many times the training size.
PREPARED_SCALE = 1.15
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
    return img if img.mode == "RGB" else img.convert("RGB")


EXIF_ORIENTATION = 0x0112


def _draft(img: Image.Image, banner_px: int, shrink_to: int) -> int:
    """Have the JPEG decoder of ``img`` (not yet loaded) give it at 1/2 or 1/4 size, which decodes several
    times faster, while its picture keeps a short side of at least ``shrink_to``. Returns the reduction
    (1 where there is none)."""
    if img.format != "JPEG":
        return 1
    width, height = img.size
    reduction = 1
    while reduction < 4 and min(width, height - banner_px) >= 2 * reduction * shrink_to:
        reduction *= 2
    if reduction > 1:
        img.draft("RGB", (width // reduction, height // reduction))
    return reduction


def load_image(path: str | Path, banner_px: int = 0, shrink_to: int | None = None) -> Image.Image:
    """Open an image as 8-bit RGB with its EXIF orientation applied and ``banner_px`` rows cut from the bottom.

    With ``shrink_to``, a JPEG much larger than that short side may come decoded at 1/2 or 1/4 size
    (PIL's ``draft``: the decoder averages 2x2 or 4x4 blocks), never below ``shrink_to``; the block row
    that straddles the banner's top edge is cut with the banner (up to 3 rows of picture). Raises
    ``BadImageError`` naming the file when it is missing, empty, not an image, truncated, beyond PIL's
    pixel limit (twice ``Image.MAX_IMAGE_PIXELS``) or no taller than the banner.
    """
    try:
        with Image.open(path) as img:
            height, orientation = img.height, img.getexif().get(EXIF_ORIENTATION, 1)
            drafted = shrink_to and height > banner_px and orientation == 1
            reduction = _draft(img, banner_px, shrink_to) if drafted else 1
            img.load()
            img = to_rgb(ImageOps.exif_transpose(img) if orientation != 1 else img)  # no copy where nothing changes
    except DECODE_ERRORS as err:
        raise BadImageError(path, _decode_failure(path, err)) from err
    if banner_px:
        if img.height <= banner_px:
            raise BadImageError(path, f"{img.height} px tall, expected more than the {banner_px}-px banner")
        img = img.crop((0, 0, img.width, img.height - banner_px if reduction == 1 else
                        (height - banner_px) // reduction))
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
        loader = functools.partial(load_image, banner_px=0 if prepared_info(root) else banner_px)
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


PREPARED_MARKER = "prepared.json"


def prepared_info(root: str | Path) -> dict[str, object] | None:
    """What ``fgvc prepare`` recorded about the dataset under ``root``, or None for an original one."""
    marker = Path(root) / FGVC_FOLDER / PREPARED_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def prepare_fgvc(root: str | Path, out: str | Path, img_size: int, banner_px: int = 20,
                 threads: int = 4) -> Path:
    """Store FGVC-Aircraft under ``root`` again under ``out`` for training at ``img_size`` and below: every image
    banner-cropped and shrunk to a short side of ``prepared_short_side(img_size)`` (JPEG quality 95, no chroma
    subsampling), the annotation files copied. Training on ``out`` decodes a few times faster and draws
    the same augmentations; evaluation inputs match the original's within about 1.5 grey levels on
    average (tested).
    A bad image raises ``BadImageError`` naming it. Returns ``out``."""
    source, target = Path(root) / FGVC_FOLDER / "data", Path(out) / FGVC_FOLDER / "data"
    if not source.is_dir():
        raise DatasetError(fgvc_missing_message(Path(root), source))
    if prepared_info(root):
        raise DatasetError(f"{root} is already prepared (it holds {FGVC_FOLDER}/{PREPARED_MARKER}): "
                           f"expected the original dataset")
    if Path(out).resolve() == Path(root).resolve():
        raise DatasetError(f"--out {out} is the dataset itself: expected another folder")
    (target / "images").mkdir(parents=True, exist_ok=True)
    for annotation in source.glob("*.txt"):
        shutil.copyfile(annotation, target / annotation.name)
    short_side = prepared_short_side(img_size)

    def store(path: Path) -> None:
        image = fit_short_side(load_image(path, banner_px, shrink_to=short_side), short_side)
        image.save(target / "images" / path.name, quality=95, subsampling=0)

    pool = ThreadPoolExecutor(max(1, threads))
    try:
        list(pool.map(store, sorted(source.glob("images/*.jpg"))))
    finally:
        pool.shutdown(cancel_futures=True)
    info = {"source": str(Path(root).resolve()), "img_size": img_size, "short_side": short_side,
            "banner_px_removed": banner_px}
    (Path(out) / FGVC_FOLDER / PREPARED_MARKER).write_text(json.dumps(info, indent=1) + "\n")
    return Path(out)


def build_dataset(root: str | Path, split: str, level: str = "variant", transform: Callable | None = None,
                  download: bool = False, banner_px: int = 20, shrink_to: int | None = None) -> datasets.FGVCAircraft:
    """FGVC-Aircraft ``split`` at ``level``; images come banner-cropped (unless ``fgvc prepare`` wrote ``root``:
    its images have no banner left), decoded for ``shrink_to`` (see ``load_image``), then through ``transform``.

    ``.classes`` follows the line order of ``variants.txt`` (or families / manufacturers).
    """
    if download:
        download_fgvc(root)
    check_fgvc_files(root, split, level)
    problems = fgvc_annotation_problems(root, split, level)
    if problems:
        more = f" ({len(problems) - 1} more: `fgvc check-data --data-root {root}` lists them all)"
        raise DatasetError(problems[0] + (more if len(problems) > 1 else ""))
    banner_px = 0 if prepared_info(root) else banner_px
    return datasets.FGVCAircraft(root, split=split, annotation_level=level, transform=transform,
                                 loader=functools.partial(load_image, banner_px=banner_px, shrink_to=shrink_to))


def build_imagefolder(root: str | Path, split: str, transform: Callable | None = None,
                      shrink_to: int | None = None) -> datasets.ImageFolder:
    """A user's own photos laid out as ``root/<split>/<class>/<image>``."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} not found: expected {root}/{split}/<class name>/<image files>")
    return datasets.ImageFolder(folder, transform=transform, loader=functools.partial(load_image, shrink_to=shrink_to))


def dataset_labels(dataset: Dataset) -> list[int]:
    """The label of every item without decoding any image (ImageFolder ``targets``, FGVCAircraft ``_labels``)."""
    if isinstance(dataset, AugmentedSplit):
        return dataset_labels(dataset.base)
    if hasattr(dataset, "targets"):
        return list(dataset.targets)
    return list(dataset._labels)


@dataclass(frozen=True)
class Normalization:
    """What the backbone's weights expect of an input image."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: transforms.InterpolationMode = transforms.InterpolationMode.BICUBIC


@dataclass(frozen=True)
class Augmentation:
    """One draw of the three augmentations for one image, in torchvision's terms."""

    crop: tuple[float, float, float, float]  # random resized crop: left, top, width, height in the image's pixels
    flip: bool  # horizontal flip
    angle: float  # random affine, applied to the img_size x img_size crop: rotation in degrees,
    translate: tuple[int, int]  # shift in pixels,
    scale: float  # zoom,
    shear: float  # and shear along x in degrees


def draw_augmentation(rng: np.random.Generator, width: int, height: int, img_size: int, min_crop_scale: float,
                      affine_degrees: float) -> Augmentation:
    """The parameters torchvision's ``RandomResizedCrop(scale=(min_crop_scale, 1))``, ``RandomHorizontalFlip``
    and ``RandomAffine(affine_degrees, AFFINE_TRANSLATE, AFFINE_SCALE, shear=affine_degrees / 2)`` would draw
    for a ``width`` x ``height`` image, by the same algorithm, from ``rng``."""
    area, log_ratio = width * height, (math.log(3 / 4), math.log(4 / 3))
    crop = None
    for _ in range(10):  # torchvision's rejection sampling, then its fallback
        target = area * rng.uniform(min_crop_scale, 1.0)
        ratio = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            crop = (float(rng.integers(0, width - w + 1)), float(rng.integers(0, height - h + 1)), float(w), float(h))
            break
    if crop is None:  # the whole image, clipped to the ratio range
        w, h = width, height
        if width / height < 3 / 4:
            h = round(w / (3 / 4))
        elif width / height > 4 / 3:
            w = round(h * (4 / 3))
        crop = (float((width - w) // 2), float((height - h) // 2), float(w), float(h))
    shift = [round(rng.uniform(-f * img_size, f * img_size)) for f in AFFINE_TRANSLATE]
    return Augmentation(crop=crop, flip=bool(rng.random() < 0.5),
                        angle=float(rng.uniform(-affine_degrees, affine_degrees)),
                        translate=(shift[0], shift[1]), scale=float(rng.uniform(*AFFINE_SCALE)),
                        shear=float(rng.uniform(-affine_degrees / 2, affine_degrees / 2)))


def augmentation_matrix(aug: Augmentation, img_size: int) -> np.ndarray:
    """The 2x3 matrix that maps each output pixel to its source pixel in the image (OpenCV's
    ``WARP_INVERSE_MAP`` convention, pixel centres at integers): the crop resized to ``img_size``, the
    flip and the affine, composed, as torchvision applies them one after the other."""
    def homogeneous(m: Sequence[float]) -> np.ndarray:
        return np.array([m[:3], m[3:6], [0.0, 0.0, 1.0]])

    centre = img_size / 2
    affine = homogeneous(transforms.functional._get_inverse_affine_matrix(
        [centre, centre], aug.angle, list(aug.translate), aug.scale, [aug.shear, 0.0]))
    flip = homogeneous([-1.0, 0.0, img_size, 0.0, 1.0, 0.0]) if aug.flip else np.eye(3)
    left, top, width, height = aug.crop
    crop = homogeneous([width / img_size, 0.0, left, 0.0, height / img_size, top])
    to_centre, from_centre = homogeneous([1, 0, 0.5, 0, 1, 0.5]), homogeneous([1, 0, -0.5, 0, 1, -0.5])
    return (from_centre @ crop @ flip @ affine @ to_centre)[:2]


def fit_short_side(image: Image.Image, short_side: int) -> Image.Image:
    """``image`` shrunk (area averaging) so that its short side is ``short_side``; a smaller one is kept as it is."""
    scale = short_side / min(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return Image.fromarray(cv2.resize(np.asarray(image), size, interpolation=cv2.INTER_AREA))


def prepared_short_side(img_size: int) -> int:
    """The short side images are stored at (``fgvc prepare``) and decoded to for training at ``img_size``."""
    return math.ceil(PREPARED_SCALE * img_size)


class Augment:
    """The three training augmentations (random resized crop, horizontal flip, random affine) as one affine
    warp per image, to a uint8 ``(3, img_size, img_size)`` tensor; ``normalize`` makes it a float input on
    the device. Images larger than training needs are first shrunk to ``prepared_short_side`` (as
    ``fgvc prepare`` stores them), so the bilinear warp never shrinks by much."""

    def __init__(self, img_size: int, min_crop_scale: float = 0.25, affine_degrees: float = 10.0) -> None:
        self.img_size, self.min_crop_scale, self.affine_degrees = img_size, min_crop_scale, affine_degrees

    def draw(self, rng: np.random.Generator, image: Image.Image) -> Augmentation:
        """This image's augmentation parameters."""
        return draw_augmentation(rng, image.width, image.height, self.img_size, self.min_crop_scale,
                                 self.affine_degrees)

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        image = fit_short_side(image, prepared_short_side(self.img_size))
        matrix = augmentation_matrix(self.draw(rng, image), self.img_size)
        warped = cv2.warpAffine(np.asarray(image), matrix, (self.img_size, self.img_size),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        return torch.from_numpy(warped).permute(2, 0, 1)


class AugmentedSplit(Dataset):
    """A training split whose item ``(epoch, index)`` is image ``index`` augmented by ``augment`` with the
    randomness of ``(seed, epoch, index)``: the same in any worker, process or resumed run, so DataLoader
    workers can live across epochs. A plain ``index`` means epoch 0."""

    def __init__(self, base: Dataset, augment: Augment, seed: int) -> None:
        self.base, self.augment, self.seed = base, augment, seed
        self.classes = base.classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, label = self.base[index]
        return self.augment(image, np.random.default_rng([self.seed, epoch, index])), label


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` keys from a ``DistributedSampler`` (its epoch is set by ``set_epoch``)."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.sampler.epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def normalize(images: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """A uint8 ``(N, 3, H, W)`` batch as the float input the weights expect, computed where the batch is."""
    mean, std = torch.tensor(norm.mean).view(1, 3, 1, 1), torch.tensor(norm.std).view(1, 3, 1, 1)
    scale, shift = (1 / (255 * std)).to(images.device), (-mean / std).to(images.device)
    return images.float().mul_(scale).add_(shift)  # in place: one float tensor, no temporaries


BatchAugment = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def batch_augmentation(cfg: TrainConfig, num_classes: int) -> BatchAugment | None:
    """``cfg``'s augmentations of a whole normalised batch on the device, after the one-warp pipeline:
    torchvision's ``RandomErasing`` (each image on its own, erased to the mean colour), then ``MixUp`` or
    ``CutMix`` (one of them per batch when both are on; the labels become class probabilities). Their
    randomness comes from torch's generator, which the loop reseeds from ``(seed, epoch)``, so a resumed
    run draws the same. ``None`` when all are off."""
    mixes = [mix(alpha=alpha, num_classes=num_classes)
             for mix, alpha in ((v2.MixUp, cfg.mixup_alpha), (v2.CutMix, cfg.cutmix_alpha)) if alpha > 0]
    mix = None if not mixes else mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
    erase = v2.RandomErasing(p=cfg.random_erasing, value=0) if cfg.random_erasing > 0 else None
    if mix is None and erase is None:
        return None

    def augment(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if erase is not None:
            images = torch.stack([erase(image) for image in images])
        return (images, targets) if mix is None else mix(images, targets)

    return augment


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


def visible_box(width: int, height: int, view: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the part of a ``width`` x ``height`` photo that ``view`` shows the network:
    all of it, or the centre square for ``crop``."""
    if view != "crop":
        return 0, 0, width, height
    side = min(width, height)
    left, top = round((width - side) / 2), round((height - side) / 2)
    return left, top, left + side, top + side


def visible_part(image: Image.Image, view: str) -> Image.Image:
    """The part of ``image`` that ``view`` shows the network (the centre square for ``crop``)."""
    return image if view != "crop" else image.crop(visible_box(image.width, image.height, view))


def build_split(cfg: TrainConfig, split: str, transform: Callable | None, shrink_to: int | None = None) -> Dataset:
    """The dataset named by ``cfg`` for one split (``shrink_to``: see ``load_image``)."""
    if cfg.dataset == "imagefolder":
        return build_imagefolder(cfg.data_root, split, transform, shrink_to)
    return build_dataset(cfg.data_root, split, cfg.level, transform, download=cfg.download,
                         banner_px=cfg.banner_px, shrink_to=shrink_to)


def training_split(cfg: TrainConfig) -> Dataset:
    """``cfg``'s training split as decoded images (see ``augmented``)."""
    return build_split(cfg, cfg.train_split, None, shrink_to=prepared_short_side(cfg.img_size))


def augmented(cfg: TrainConfig, split: Dataset) -> AugmentedSplit:
    """``split`` (from ``training_split``) with ``cfg``'s augmentations."""
    return AugmentedSplit(split, Augment(cfg.img_size, cfg.min_crop_scale, cfg.affine_degrees), cfg.seed)


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
    if isinstance(dataset, AugmentedSplit):
        return image_files(dataset.base)
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
                sampler: Sampler[int] | None = None, collate_fn: Callable | None = None) -> DataLoader:
    """In-order batches of ``dataset`` (one image a batch for the ``whole`` view, whose widths differ); its
    workers live as long as the loader. ``collate_fn`` replaces PyTorch's default one."""
    return DataLoader(dataset, batch_size=1 if view == "whole" else batch_size, shuffle=False, sampler=sampler,
                      num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
                      collate_fn=collate_fn)


def build_loaders(cfg: TrainConfig, norm: Normalization, ranks: Dist = SINGLE) -> Loaders:
    """Augmented, shuffled training loader and a plain evaluation loader (``cfg.eval_view``) for ``cfg``.

    The training order is a permutation drawn from ``(cfg.seed, epoch)`` (``loader.sampler.set_epoch``),
    and each image's augmentation comes from ``(cfg.seed, epoch, index)``, so a resumed run sees the same
    batches as an uninterrupted one; under torchrun (``ranks``) each process trains on every
    ``world_size``-th image of it and evaluates every ``world_size``-th image, with no padding. Training
    batches are uint8: ``normalize`` them on the device.
    Every annotation file is read (the family and manufacturer files too) before any image is
    decoded; then every image is decoded once (``cfg.workers`` threads), so a bad file stops the
    run before training starts.
    """
    train_set = training_split(cfg)
    eval_set = build_split(cfg, cfg.eval_split, eval_transform(cfg.eval_size, norm, cfg.eval_view))
    if train_set.classes != eval_set.classes:
        raise DatasetError(f"the classes of split {cfg.train_split!r} and {cfg.eval_split!r} differ under "
                           f"{cfg.data_root}: every split must hold the same class folders")
    info = prepared_info(cfg.data_root) if cfg.dataset == "fgvc-aircraft" else None
    if info and int(info["img_size"]) < cfg.img_size:
        log.warning("%s was prepared for img_size %s, smaller than %d: training crops are upsampled; "
                    "run `fgvc prepare` again with --img-size %d", cfg.data_root, info["img_size"], cfg.img_size,
                    cfg.img_size)
    hierarchy = dataset_hierarchy(cfg, cfg.eval_split)
    _check_sizes(cfg, train_set, eval_set, ranks)
    skipped = drop_bad_images(train_set, cfg, cfg.train_split) + drop_bad_images(eval_set, cfg, cfg.eval_split)
    _check_sizes(cfg, train_set, eval_set, ranks)
    # One sampler for 1 process or N: the permutation depends on (seed, epoch) alone, and rank r takes every
    # N-th index of it, so global batch k holds the same images on 1 process as on N; and image i's
    # augmentation in epoch e depends on (seed, e, i) alone, so the workers persist across epochs.
    shard = EpochSampler(DistributedSampler(train_set, ranks.world_size, ranks.rank, shuffle=True, seed=cfg.seed,
                                            drop_last=True))
    train = DataLoader(augmented(cfg, train_set), batch_size=cfg.batch_size, sampler=shard, drop_last=True,
                       num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
                       pin_memory=torch.cuda.is_available())
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
