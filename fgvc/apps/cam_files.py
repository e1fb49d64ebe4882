"""``fgvc gradcam``'s files: one overlay PNG per image, at paths that never collide.

    results = write_overlays("logs/<run>/last.pt", ["photos/"], "cams/", method="gradcam++")

The maps are ``fgvc.models.gradcam``'s, the overlay drawn by ``fgvc.models.heatmap``; this module reads the images
and writes the PNGs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image

from fgvc.apps.banner import banner_cuts
from fgvc.core.errors import BadImageError, ConfigError
from fgvc.data.images import expand_images, load_image
from fgvc.models.gradcam import Explanation, explain
from fgvc.models.predictor import Predictor


def save_overlay(explanation: Explanation, path: str | Path) -> Path:
    """Write the overlay as a PNG (RGB order on disk, as every viewer expects)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(explanation.overlay).save(path)
    return path


def overlay_paths(files: list[Path], out: str | Path, method: str) -> list[Path]:
    """Where the overlay of each file goes: ``out/<folders below the files' common parent>/<stem>-<method>.png``,
    so photos of the same name in different folders never overwrite each other."""
    resolved = [path.resolve() for path in files]
    if not resolved:
        return []
    base = Path(os.path.commonpath([path.parent for path in resolved]))
    paths = [Path(out) / path.parent.relative_to(base) / f"{path.stem}-{method}.png" for path in resolved]
    sources: dict[Path, set[Path]] = {}
    for path, file in zip(paths, resolved):
        sources.setdefault(path, set()).add(file)
    # a.jpg and a.png in one folder would share a name: those keep their suffix
    return [path.with_name(f"{file.name}-{method}.png") if len(sources[path]) > 1 else path
            for path, file in zip(paths, resolved)]


def write_overlays(checkpoint: str | Path, images: list[str | Path], out: str | Path, method: str = "gradcam",
                   class_name: str | None = None, crop_banner: bool | None = None, device: str = "auto",
                   view: str | None = None, weights: str | None = None) -> list[dict[str, Any]]:
    """One overlay PNG per image (folders are searched for images) under ``out``; an unreadable image gets an
    ``error`` entry instead. ``crop_banner`` cuts the run's FGVC-Aircraft banner first (True: from every image;
    None, auto: from the dataset's own photos, as ``fgvc.apps.predict_output.predict_files``); ``weights`` as in
    ``Predictor.from_checkpoint``."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device, view=view, weights=weights)
    classes = predictor.classes
    if class_name is not None and class_name not in classes:
        raise ConfigError(f"class {class_name!r} is not one of the {len(classes)} classes of {checkpoint}")
    target = None if class_name is None else classes.index(class_name)
    files = expand_images(images)
    rows = banner_cuts(predictor.cfg, files, crop_banner)
    results: list[dict[str, Any]] = []
    for path, banner, destination in zip(files, rows, overlay_paths(files, out, method), strict=True):
        try:
            image = load_image(path, banner)
        except BadImageError as err:  # names the file and what is wrong with it
            results.append({"file": str(path), "error": str(err)})
            continue
        explanation = explain(predictor, image, target, method)
        results.append({"file": str(path), "overlay": str(save_overlay(explanation, destination)),
                        "explained": classes[explanation.target], "predicted": classes[explanation.predicted],
                        "probability": explanation.probability})
    return results
