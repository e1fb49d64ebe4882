"""Finding and decoding image files: 8-bit RGB, EXIF orientation applied, a banner cut off, bad files named.

    files = expand_images(["plane.jpg", "photos/"])      # folders searched for image files
    image = load_image("0034309.jpg", banner_px=20)      # FGVC-Aircraft's banner gone
    bad = find_bad_images(paths, threads=4)              # every file decoded once, the failures named
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fgvc.core.errors import BadImageError

# What PIL raises for a file it cannot decode (missing, truncated, damaged, not an image, too many pixels).
DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError)
EXIF_ORIENTATION = 0x0112
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def expand_images(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders replaced by the image files below them, sorted."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


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


def fit_short_side(image: Image.Image, short_side: int) -> Image.Image:
    """``image`` shrunk (area averaging) so that its short side is ``short_side``; a smaller one is kept as it is."""
    scale = short_side / min(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return Image.fromarray(cv2.resize(np.asarray(image), size, interpolation=cv2.INTER_AREA))


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
