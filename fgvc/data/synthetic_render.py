"""Drawing one image of a synthetic aircraft (``fgvc.data.synthetic``): the sky, the livery, the pose, the cloud
over a hidden tail, the noise and the copyright banner."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fgvc.data.synthetic_aircraft import Point, Variant, aircraft

BANNER_HEIGHT = 20  # px, like the real images

_CLOUD_RADIUS = 0.32  # the cloud over a hidden tail, centred on the fuselage's end, in fuselage lengths

_SUPERSAMPLE = 2  # the aircraft is drawn at this multiple of the size, then box-filtered down


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


def render(var: Variant, size: tuple[int, int], rng: np.random.Generator,
            banner_colour: tuple[int, int, int] | None = None,
            hide_tail: float = 0.0) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Draw one image of ``var``; return it and the aircraft's 1-based inclusive box. With probability
    ``hide_tail`` a cloud in front of the aircraft hides its tail (the box still holds the whole aircraft)."""
    width, height = size
    pic_h = height - BANNER_HEIGHT
    sky = _sky(rng, width, pic_h)
    tones = _colours(rng, sky)
    parts = aircraft(var, stripe=rng.random() < 0.5)

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
