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
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fgvc.core.config import DIFFICULTIES, FGVC_SPLITS, LEVELS
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

BANNER_HEIGHT = 20  # px, like the real images
MIN_PICTURE = 48  # px, smallest width and height of the picture above the banner

HARD_HIDDEN = 0.2  # share of the hard set's images whose tail a cloud hides
_CLOUD_RADIUS = 0.32  # the cloud over a hidden tail, centred on the fuselage's end, in fuselage lengths

_SUPERSAMPLE = 2  # the aircraft is drawn at this multiple of the size, then box-filtered down

# Manufacturer names (first words distinct) and two-letter codes (distinct).
_MANUFACTURERS = (
    ("Aerion", "AR"), ("Boreal Aircraft", "BA"), ("Condor", "CD"), ("Dorado Aviation", "DV"),
    ("Egret", "EG"), ("Falco Aerospace", "FA"), ("Gannet", "GN"), ("Heron Aero", "HA"),
    ("Ibis", "IB"), ("Jabiru Aircraft", "JA"), ("Kestrel", "KS"), ("Lanner Aviation", "LV"),
    ("Merlin", "MR"), ("Nightjar Aerospace", "NJ"), ("Osprey", "OS"), ("Petrel Aero", "PA"),
    ("Quillon", "QL"), ("Raven Aircraft", "RA"), ("Sparrow", "SP"), ("Tern Aviation", "TV"),
    ("Umbra", "UM"), ("Vireo Aerospace", "VA"), ("Wren", "WR"), ("Xenon Aero", "XA"),
)
# Each level's shape choices are indexed so that 24 consecutive indices give 24 distinct
# combinations (4 x 3 by the Chinese remainder theorem, times 2): siblings never look alike.
_PER_LEVEL = 24
MAX_CLASSES = len(_MANUFACTURERS) * _PER_LEVEL * _PER_LEVEL

_NOSES = ("pointed", "round", "blunt", "needle")
_HALF_WIDTHS = (0.045, 0.064, 0.084)  # fuselage half-width, in fuselage lengths
_SWEEPS = ("straight", "swept", "highly swept", "delta")
_WING_X = (0.15, 0.05, -0.05)  # wing root centre along the fuselage (nose at +0.5)
_ENGINES = ("none", "two underwing", "four underwing", "two rear")
_TAILS = ("conventional", "t-tail", "v-tail")
MAX_HARD_CLASSES = len(_MANUFACTURERS) * _PER_LEVEL * len(_TAILS)  # the hard set: one tail per variant of a family

Point = tuple[float, float]


@dataclass(frozen=True)
class _Variant:
    """One class: its names at the three levels and the shape parameters they fix."""

    name: str
    family: str
    manufacturer: str
    nose: int
    width: int
    canopy: bool
    sweep: int
    wing_x: int
    long_span: bool
    engines: int
    tail: int
    stretch: bool

    @property
    def length(self) -> float:
        """Fuselage length, in the unstretched fuselage's lengths."""
        return 1.22 if self.stretch else 1.0

    def label(self, level: str) -> str:
        """This class's name at annotation ``level`` (variant, family or manufacturer)."""
        return self.name if level == "variant" else getattr(self, level)


def _split_evenly(total: int, parts: int) -> list[int]:
    """``total`` items in ``parts`` groups whose sizes differ by at most one, larger first."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def _family_name(code: str, word: str, m: int, f: int, i: int) -> str:
    """Name of the ``i``-th family of manufacturer ``m`` (global family index ``f``)."""
    style = f % 4
    if style == 0:
        return f"{code}{i + 3}{(3 * m) % 10}0"
    if style == 1:
        return f"{code}-{8 + 2 * i}"
    if style == 2:
        return f"{word} {120 + 13 * i + m}"
    return f"{code[0]}/{code[1]}-{11 + 3 * i}"


def _variant_name(family: str, v: int, j: int) -> str:
    """Name of the ``j``-th variant of ``family`` (global variant index ``v``)."""
    style = v % 3
    if style == 0:
        return f"{family}-{j + 1}00"
    if style == 1:
        return f"{family}{chr(65 + j)}/{chr(66 + j)}"
    return f"{family} Mk {j + 1}"


def _classes(num_classes: int, difficulty: str = "easy") -> list[_Variant]:
    """The class list: about 3 variants per family, 2 families per manufacturer, at least 2 of each.

    ``difficulty="hard"``: engines and stretch follow the family, the tail the variant's place in it.
    """
    hard = difficulty == "hard"
    n_families = min(max(2, math.ceil(num_classes / 3)), len(_MANUFACTURERS) * _PER_LEVEL)
    n_manufacturers = min(max(2, math.ceil(n_families / 2)), len(_MANUFACTURERS))
    variant_counts = iter(_split_evenly(num_classes, n_families))
    variants: list[_Variant] = []
    f = 0
    for m, n_fam in enumerate(_split_evenly(n_families, n_manufacturers)):
        word, code = _MANUFACTURERS[m]
        for i in range(n_fam):
            family = _family_name(code, word.split()[0], m, f, i)
            wing = f % _PER_LEVEL
            for j in range(next(variant_counts)):
                v = len(variants)
                detail = (f if hard else v) % _PER_LEVEL
                tail = (detail + j) % len(_TAILS) if hard else detail % len(_TAILS)
                variants.append(_Variant(
                    name=_variant_name(family, v, j), family=family, manufacturer=word,
                    nose=m % 4, width=m % 3, canopy=m < 12,
                    sweep=wing % 4, wing_x=wing % 3, long_span=wing < 12,
                    engines=detail % 4, tail=tail, stretch=detail >= 12,
                ))
            f += 1
    return variants


def _half_outline(right: list[Point]) -> list[Point]:
    """Close a shape symmetric about the x axis from its y >= 0 half."""
    return right + [(x, -y) for x, y in reversed(right)]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 16) -> list[Point]:
    """Polygon approximating an axis-aligned ellipse."""
    return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _wing(x_root: float, y_root: float, root_chord: float, tip_chord: float, span: float,
          sweep_deg: float) -> list[Point]:
    """Right-hand wing (or stabiliser) panel: root leading edge at ``x_root + root_chord / 2``."""
    le = x_root + root_chord / 2
    tip_le = le - span * math.tan(math.radians(sweep_deg))
    return [(le, y_root), (tip_le, y_root + span), (tip_le - tip_chord, y_root + span),
            (x_root - root_chord / 2, y_root)]


def _mirror(poly: list[Point]) -> list[Point]:
    """Reflect a polygon across the fuselage axis."""
    return [(x, -y) for x, y in poly]


def _aircraft(var: _Variant, stripe: bool) -> list[tuple[list[Point], str]]:
    """Polygons of the aircraft in its own frame (nose towards +x, length about 1), with a tone each.

    Tones: ``wing``, ``body``, ``engine``, ``stripe``, ``glass``; drawn in list order. The livery
    ``stripe`` along the fuselage is a nuisance, not class signal.
    """
    length = var.length
    w = _HALF_WIDTHS[var.width]
    tip, tail_x = length / 2, -length / 2
    parts: list[tuple[list[Point], str]] = []

    # Wings (family): sweep or delta, root position along the fuselage, span.
    xw = _WING_X[var.wing_x]
    if _SWEEPS[var.sweep] == "delta":
        span = 0.32 if var.long_span else 0.25
        wing = _wing(xw - 0.04, 0.0, 0.56, 0.05, span, 58)
    else:
        span = 0.48 if var.long_span else 0.37
        sweep, root, taper = {"straight": (4, 0.2, 0.7), "swept": (27, 0.24, 0.4),
                              "highly swept": (42, 0.28, 0.3)}[_SWEEPS[var.sweep]]
        wing = _wing(xw, 0.0, root, root * taper, span, sweep)
    parts += [(wing, "wing"), (_mirror(wing), "wing")]

    # Tail (variant).
    tail = _TAILS[var.tail]
    if tail == "conventional":
        stab = _wing(tail_x + 0.1, 0.0, 0.13, 0.05, 0.17, 32)
    elif tail == "t-tail":
        stab = _wing(tail_x + 0.05, 0.0, 0.09, 0.08, 0.26, 4)
    else:
        stab = _wing(tail_x + 0.09, 0.0, 0.065, 0.06, 0.16, 60)
    parts += [(stab, "wing"), (_mirror(stab), "wing")]

    # Fuselage (manufacturer): nose shape and width; tail cone tapers to 40 %.
    nose = _NOSES[var.nose]
    nose_len = {"pointed": 0.17, "round": 1.3 * w, "blunt": 0.035, "needle": 0.26}[nose]
    xn = tip - nose_len
    right: list[Point] = [(tail_x, 0.4 * w), (tail_x + 0.16, w), (xn, w)]
    if nose == "pointed":
        right += [(tip, 0.0)]
    elif nose == "round":
        right += [(xn + nose_len * math.sin(a), w * math.cos(a)) for a in np.linspace(0.2, math.pi / 2, 6)]
    elif nose == "blunt":
        right += [(tip, 0.6 * w), (tip, 0.0)]
    else:
        right += [(xn + 0.12, 0.55 * w), (tip - 0.07, 0.22 * w), (tip - 0.07, 0.012), (tip, 0.012), (tip, 0.0)]
    parts.append((_half_outline(right), "body"))

    # Engines (variant): nacelles under the wings or beside the rear fuselage.
    def wing_le(y: float) -> float:
        """Leading-edge x of the right wing at span position ``y``."""
        (x0, y0), (x1, y1) = wing[0], wing[1]
        return x0 + (x1 - x0) * (y - y0) / (y1 - y0)

    engines = _ENGINES[var.engines]
    nacelles: list[Point] = []
    if engines == "two underwing":
        nacelles = [(wing_le(0.42 * span) + 0.025, 0.42 * span)]
    elif engines == "four underwing":
        nacelles = [(wing_le(y) + 0.025, y) for y in (0.3 * span, 0.64 * span)]
    elif engines == "two rear":
        nacelles = [(tail_x + 0.2, w + 0.038)]
    for x, y in nacelles:
        parts += [(_ellipse(x, y, 0.095, 0.045), "engine"), (_ellipse(x, -y, 0.095, 0.045), "engine")]

    if stripe:
        parts.append(([(tail_x + 0.12, 0.3 * w), (xn - 0.1, 0.3 * w), (xn - 0.1, -0.3 * w),
                       (tail_x + 0.12, -0.3 * w)], "stripe"))
    if var.canopy:  # the manufacturer's cockpit glazing
        parts.append((_ellipse(xn - 0.035, 0.0, 0.045, 0.65 * w, 12), "glass"))
    return parts


def _luma(rgb: np.ndarray) -> float:
    """Rec. 601 luma of an RGB triple."""
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _sky(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Background: a vertical sky gradient with soft clouds, float32 HxWx3 in 0..255."""
    kind = rng.integers(4)
    top = {0: [70, 130, 210], 1: [150, 175, 205], 2: [135, 140, 150], 3: [110, 100, 150]}[int(kind)]
    bottom = {0: [185, 210, 240], 1: [215, 222, 230], 2: [190, 192, 198], 3: [235, 170, 120]}[int(kind)]
    top = np.clip(np.array(top) + rng.normal(0, 18, 3), 0, 255)
    bottom = np.clip(np.array(bottom) + rng.normal(0, 14, 3), 0, 255)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None] ** rng.uniform(0.6, 1.6)
    sky = (top * (1 - t) + bottom * t).astype(np.float32) * np.ones((1, width, 1), np.float32)
    n_clouds = int(rng.integers(0, 4))
    if n_clouds:
        mask = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(mask)
        for _ in range(n_clouds):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            for _ in range(int(rng.integers(2, 5))):
                rx, ry = rng.uniform(0.06, 0.16) * width, rng.uniform(0.03, 0.08) * height
                x, y = cx + rng.normal(0, rx / 2), cy + rng.normal(0, ry / 2)
                draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=int(rng.integers(90, 170)))
        soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(rng.uniform(2, 5))), np.float32)[..., None] / 255
        sky = sky * (1 - soft) + 245 * soft
    return sky


def _colours(rng: np.random.Generator, sky: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """Tones of one aircraft: a livery that stands out from ``sky`` (luma differs by >= 60)."""
    sky_luma = _luma(sky.reshape(-1, 3).mean(0))
    palette = np.array([[245, 245, 245], [200, 200, 205], [150, 152, 158], [90, 92, 98], [45, 50, 58],
                        [40, 55, 100], [85, 95, 60], [170, 40, 40], [225, 200, 120], [60, 110, 120]])
    candidates = [c for c in palette if abs(_luma(c) - sky_luma) >= 70]
    body = candidates[int(rng.integers(len(candidates)))] + rng.normal(0, 10, 3)
    body = np.clip(body, 0, 255)
    shortfall = 60 - abs(_luma(body) - sky_luma)  # the jitter may eat into the contrast
    if shortfall > 0:
        body = np.clip(body + math.copysign(shortfall, _luma(body) - sky_luma), 0, 255)
    engine = body * 0.5 if _luma(body) > 110 else body + (255 - body) * 0.45
    stripe = body if rng.random() < 0.4 else rng.uniform(20, 235, 3)
    tones = {"body": body, "wing": body * rng.uniform(0.86, 1.0), "engine": engine,
             "stripe": stripe, "glass": np.array([35.0, 40.0, 55.0])}
    return {k: tuple(int(c) for c in np.clip(v, 0, 255)) for k, v in tones.items()}


def _banner(rng: np.random.Generator, width: int, colour: tuple[int, int, int] | None = None) -> np.ndarray:
    """A dark copyright strip with light pseudo-text, uint8 BANNER_HEIGHT x width x 3; or, with
    ``colour``, a plain strip of that colour."""
    if colour is not None:
        return np.full((BANNER_HEIGHT, width, 3), colour, dtype=np.uint8)
    base = rng.integers(8, 45)
    strip = Image.new("RGB", (width, BANNER_HEIGHT), tuple(int(base + d) for d in rng.integers(0, 8, 3)))
    draw = ImageDraw.Draw(strip)
    ink = int(rng.integers(160, 235))
    glyph_h = int(rng.integers(5, 9))
    top = (BANNER_HEIGHT - glyph_h) // 2 + int(rng.integers(-2, 3))
    for x, words in ((int(rng.integers(2, 8)), int(rng.integers(2, 5))), (int(width * rng.uniform(0.6, 0.7)), 1)):
        for _ in range(words):
            for _ in range(int(rng.integers(2, 7))):
                glyph_w = int(rng.integers(2, 5))
                if x + glyph_w >= width - 2:
                    break
                draw.rectangle((x, top + int(rng.integers(0, 3)), x + glyph_w - 1, top + glyph_h - 1), fill=(ink,) * 3)
                x += glyph_w + 1
            x += int(rng.integers(3, 6))
    return np.asarray(strip)


def _cloud(picture: np.ndarray, centre: Point, radius: float, rng: np.random.Generator) -> np.ndarray:
    """``picture`` (float HxWx3) with an opaque soft cloud of about ``radius`` pixels over ``centre``."""
    height, width = picture.shape[:2]
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    puffs = [(0.0, 0.0, radius)] + [(*rng.normal(0, 0.4 * radius, 2), radius * rng.uniform(0.5, 0.7))
                                    for _ in range(int(rng.integers(2, 5)))]
    for dx, dy, r in puffs:
        x, y = centre[0] + dx, centre[1] + dy
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(max(1.0, 0.1 * radius))), np.float32)[..., None] / 255
    return picture * (1 - soft) + np.float32(rng.uniform(225, 250)) * soft


def _render(var: _Variant, size: tuple[int, int], rng: np.random.Generator,
            banner_colour: tuple[int, int, int] | None = None,
            hide_tail: float = 0.0) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Draw one image of ``var``; return it and the aircraft's 1-based inclusive box. With probability
    ``hide_tail`` a cloud in front of the aircraft hides its tail (the box still holds the whole aircraft)."""
    width, height = size
    pic_h = height - BANNER_HEIGHT
    sky = _sky(rng, width, pic_h)
    tones = _colours(rng, sky)
    parts = _aircraft(var, stripe=rng.random() < 0.5)

    # Pose: nose right or left, +-12 degrees; scale and position keep it inside a 3-px margin.
    theta = math.radians(rng.uniform(-12, 12) + 180 * int(rng.integers(2)))
    cos, sin = math.cos(theta), math.sin(theta)
    rotated = [[(x * cos - y * sin, x * sin + y * cos) for x, y in poly] for poly, _ in parts]
    pts = np.array([p for poly in rotated for p in poly])
    lo, hi = pts.min(0), pts.max(0)
    margin = 3
    scale = min((width - 2 * margin) / (hi[0] - lo[0]), (pic_h - 2 * margin) / (hi[1] - lo[1]))
    scale *= rng.uniform(0.85, 1.0)
    ox = rng.uniform(margin - lo[0] * scale, width - margin - hi[0] * scale)
    oy = rng.uniform(margin - lo[1] * scale, pic_h - margin - hi[1] * scale)

    big = (width * _SUPERSAMPLE, pic_h * _SUPERSAMPLE)
    colour = Image.new("RGB", big, tones["body"])
    alpha = Image.new("L", big, 0)
    paint, cut = ImageDraw.Draw(colour), ImageDraw.Draw(alpha)
    for poly, (_, tone) in zip(rotated, parts, strict=True):
        xy = [((ox + x * scale) * _SUPERSAMPLE, (oy + y * scale) * _SUPERSAMPLE) for x, y in poly]
        paint.polygon(xy, fill=tones[tone])
        cut.polygon(xy, fill=255)
    colour, alpha = colour.reduce(_SUPERSAMPLE), alpha.reduce(_SUPERSAMPLE)

    a = np.asarray(alpha, np.float32)[..., None] / 255
    picture = sky * (1 - a) + np.asarray(colour, np.float32) * a
    if hide_tail and rng.random() < hide_tail:
        tail_x = -var.length / 2
        centre = (ox + tail_x * cos * scale, oy + tail_x * sin * scale)
        picture = _cloud(picture, centre, float(_CLOUD_RADIUS * scale), rng)
    picture += rng.standard_normal(picture.shape, dtype=np.float32) * np.float32(rng.uniform(1.5, 5))
    image = np.concatenate([np.clip(picture, 0, 255).astype(np.uint8), _banner(rng, width, banner_colour)])

    ys, xs = np.nonzero(np.asarray(alpha))
    box = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)
    return Image.fromarray(image), box


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
    variants = _classes(num_classes, difficulty)
    rng = np.random.default_rng(seed)
    ids = [f"{i:07d}" for i in rng.choice(10**7, size=num_classes * per_class, replace=False)]

    splits: dict[str, list[tuple[str, _Variant]]] = {s: [] for s in FGVC_SPLITS}
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
            image, box = _render(var, size, draw, banner_colour, HARD_HIDDEN if difficulty == "hard" else 0.0)
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
