"""The synthetic aircraft (``fgvc.data.synthetic``): the classes, their names at the three levels and the shape
parameters each level fixes, and each class's outline as polygons in its own frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
class Variant:
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


def classes(num_classes: int, difficulty: str = "easy") -> list[Variant]:
    """The class list: about 3 variants per family, 2 families per manufacturer, at least 2 of each.

    ``difficulty="hard"``: engines and stretch follow the family, the tail the variant's place in it.
    """
    hard = difficulty == "hard"
    n_families = min(max(2, math.ceil(num_classes / 3)), len(_MANUFACTURERS) * _PER_LEVEL)
    n_manufacturers = min(max(2, math.ceil(n_families / 2)), len(_MANUFACTURERS))
    variant_counts = iter(_split_evenly(num_classes, n_families))
    variants: list[Variant] = []
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
                variants.append(Variant(
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


def aircraft(var: Variant, stripe: bool) -> list[tuple[list[Point], str]]:
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
