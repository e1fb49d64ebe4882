"""The flags several subcommands share, declared once, and what their values mean: the config fields as flags,
the zoom settings."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from fgvc.core.config import DEVICES, EVAL_VIEWS, TrainConfig, flag
from fgvc.core.defaults import WEIGHTS, ZOOM_PAD, ZOOM_THRESHOLD
from fgvc.core.errors import ConfigError

if TYPE_CHECKING:
    from fgvc.models.zoom import Zoom

FLAG_TYPES = {"int": int, "float": float, "str": str}


def shared_flags() -> dict[str, argparse.ArgumentParser]:
    """The flags several subcommands share, each declared once, as argparse parents (``parents=[...]``): the
    checkpoint, the photos to read, the view, the weights, mirror TTA, the zoom (--zoom/--no-zoom with its
    settings, or the settings alone: ``fgvc.models.zoom.Zoom``'s) and the device."""
    shared = {name: argparse.ArgumentParser(add_help=False)
              for name in ("checkpoint", "photos", "view", "weights", "tta", "zoom_settings", "device")}
    shared["checkpoint"].add_argument("--checkpoint", required=True, help="a run's last.pt or best.pt")
    shared["photos"].add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders searched for "
                                  "images")
    shared["photos"].add_argument(
        "--crop-banner", action=argparse.BooleanOptionalAction, default=None,
        help="cut the run's FGVC-Aircraft banner (its banner_px rows) from every image; --no-crop-banner: from none "
        "(default: from the dataset's own photos, those in fgvc-aircraft-2013b/data/images/ and not a fgvc "
        "prepare'd copy, when the run trained on FGVC-Aircraft; a line on stderr says how many)")
    shared["view"].add_argument("--view", choices=EVAL_VIEWS, help="what the network sees of each photo: squash, "
                                "whole or crop (default: the run's eval_view)")
    shared["weights"].add_argument("--weights", choices=WEIGHTS, help="raw: the trained weights; ema: their moving "
                                   "average, kept by a run with --ema-decay (default: ema when the checkpoint has it)")
    shared["tta"].add_argument("--tta", action="store_true", help="average the predictions of each image and its "
                               "mirror")
    shared["zoom_settings"].add_argument("--zoom-threshold", type=float, metavar="T", help=f"the box holds the map's "
                                         f"values of at least T x its peak (default {ZOOM_THRESHOLD})")
    shared["zoom_settings"].add_argument("--zoom-pad", type=float, metavar="P", help=f"the box grows by P x its "
                                         f"width (height) on each side (default {ZOOM_PAD})")
    shared["zoom"] = argparse.ArgumentParser(add_help=False, parents=[shared["zoom_settings"]])
    shared["zoom"].add_argument("--zoom", action=argparse.BooleanOptionalAction, default=None,
                                help="look twice: also classify the box around where the network found its top "
                                "class (its activation map), cut from the photo at full resolution, and average the "
                                "two views' logits (default: the run's eval_zoom, on in the cpu preset)")
    shared["device"].add_argument("--device", default="auto", choices=DEVICES)
    shared["calibration"] = argparse.ArgumentParser(add_help=False)
    shared["calibration"].add_argument(
        "--calibrated", action=argparse.BooleanOptionalAction, default=None,
        help="divide the logits by the temperature fgvc calibrate fitted for these settings (default: where the "
        "checkpoint holds one; --calibrated requires it)")
    shared["calibration"].add_argument(
        "--unknown", action=argparse.BooleanOptionalAction, default=None,
        help="answer 'unknown' for a photo whose score lies below the threshold fgvc calibrate fitted (default: "
        "where the checkpoint holds one; --unknown requires it)")
    return shared


def zoom_settings(args: argparse.Namespace) -> Zoom:
    """The ``Zoom`` of --zoom-threshold and --zoom-pad (the defaults where unset)."""
    from fgvc.models.zoom import Zoom

    return Zoom(ZOOM_THRESHOLD if args.zoom_threshold is None else args.zoom_threshold,
                ZOOM_PAD if args.zoom_pad is None else args.zoom_pad)


def zoom_choice(args: argparse.Namespace) -> Zoom | bool | None:
    """--zoom with its settings (--zoom-threshold or --zoom-pad alone imply it), --no-zoom (``False``), or
    ``None``: the run's own ``eval_zoom``. Settings with --no-zoom are refused."""
    given = [name for name in ("zoom_threshold", "zoom_pad") if getattr(args, name) is not None]
    if args.zoom is False and given:
        raise ConfigError(f"{flag(given[0])} {getattr(args, given[0])} has no effect with --no-zoom: expected "
                          f"--zoom, or no {flag(given[0])}")
    return zoom_settings(args) if args.zoom or given else args.zoom


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field (``img_size`` -> ``--img-size``), with the help text kept beside the
    field; every default is ``None``, so an unset flag keeps the preset's (or config file's) value."""
    for item in dataclasses.fields(TrainConfig):
        if item.name == "preset":
            continue
        kind = str(item.type).split(" | ")[0]
        choices, help_text = item.metadata["choices"], item.metadata["help"]
        if kind == "bool":
            parser.add_argument(flag(item.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            metavar = None if choices is None or len(choices) <= 8 else "NAME"
            parser.add_argument(flag(item.name), type=FLAG_TYPES[kind], choices=choices, metavar=metavar,
                                help=help_text)


def config_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The config fields set on the command line."""
    return {item.name: getattr(args, item.name) for item in dataclasses.fields(TrainConfig)
            if item.name != "preset" and getattr(args, item.name) is not None}
