"""``fgvc predict``'s output: a checkpoint's answers for image files, and the text, JSON and CSV it prints.

    predictor = Predictor.from_checkpoint("logs/<run>/last.pt")
    results = predict_files(predictor, ["plane.jpg", "photos/"], topk=5)     # one entry per file
    print(format_predictions(results, "text"), end="")

``fgvc serve`` shows the same lines for an uploaded photo.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from fgvc.apps.banner import banner_cuts
from fgvc.core.config import PARENT_LEVELS
from fgvc.core.errors import BadImageError
from fgvc.data.images import expand_images, load_image
from fgvc.models.predictor import Prediction, Predictor
from fgvc.models.zoom import format_box

COARSE_FIELDS = tuple(field for level in PARENT_LEVELS for field in (f"top_{level}", f"top_{level}_probability"))


def lineage(guess: dict[str, Any]) -> str:
    """"family / manufacturer" of one of ``Predictor.top``'s guesses ("" when the checkpoint has no hierarchy)."""
    return " / ".join(guess[level] for level in PARENT_LEVELS if guess.get(level))


def format_guess(rank: int, guess: dict[str, Any]) -> str:
    """One line of ``fgvc predict``'s text output: rank, class, probability in percent, family / manufacturer."""
    return f"  {rank}. {guess['class']:<28} {100 * guess['probability']:6.2f}%  {lineage(guess)}"


def format_coarse(coarse: dict[str, dict[str, Any]]) -> str:
    """The line of ``fgvc predict``'s text output with ``Predictor.coarse``'s answer, e.g.
    "  family 737 96.00%, manufacturer Boeing 99.10%" ("" when the checkpoint has no hierarchy)."""
    parts = [f"{level} {best['name']} {100 * best['probability']:.2f}%" for level, best in coarse.items()]
    return "  " + ", ".join(parts) if parts else ""


def coarse_cells(coarse: dict[str, dict[str, Any]]) -> list[str]:
    """The ``COARSE_FIELDS`` columns of ``fgvc predict --csv`` for ``Predictor.coarse``'s answer ("" for a level
    the checkpoint does not have)."""
    return [cell for level in PARENT_LEVELS for cell in
            ((coarse[level]["name"], f"{coarse[level]['probability']:.6f}") if level in coarse else ("", ""))]


def format_unknown(entry: dict[str, Any]) -> str:
    """The line of ``fgvc predict``'s text output for a photo below the unknown-type threshold (the ``unknown`` of a
    ``prediction_entry``), e.g. "  unknown: none of the types it knows (energy 3.21, below 4.05)"."""
    return (f"  unknown: none of the types it knows ({entry['score']} {entry['value']:.4g}, "
            f"below {entry['threshold']:.4g})")


def format_predictions(results: Sequence[dict[str, Any]], output: str = "text", zoom: bool = False,
                       unknown: bool = False) -> str:
    """What ``fgvc predict`` prints of ``predict_files``' results: ``text`` (each file, then a line per guess, the
    top family and manufacturer where the checkpoint has them, with ``zoom`` the box of the second look and, with
    ``unknown``, ``format_unknown``'s line for a photo below the threshold), ``json`` (every entry, errors too) or
    ``csv`` (file, rank, class, probability, family, manufacturer, ``COARSE_FIELDS``, with ``zoom`` zoom_box and
    with ``unknown`` the columns unknown (0 or 1) and unknown_score). Text and CSV leave an ``error`` entry out:
    the CLI prints it on stderr."""
    if output == "json":
        return json.dumps(list(results), indent=2) + "\n"
    found = [result for result in results if "error" not in result]
    if output == "text":
        lines = []
        for result in found:
            lines += [result["file"], *(format_guess(rank, guess) for rank, guess in enumerate(result["top"], 1))]
            lines += [format_coarse(result["coarse"])] if result["coarse"] else []
            lines += [f"  {format_box(tuple(result['box']))}"] if zoom else []
            lines += [format_unknown(result["unknown"])] if unknown and result["unknown"]["flagged"] else []
        return "".join(line + "\n" for line in lines)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["file", "rank", "class", "probability", "family", "manufacturer", *COARSE_FIELDS,
                     *(["zoom_box"] if zoom else []), *(["unknown", "unknown_score"] if unknown else [])])
    for result in found:
        box = [" ".join(map(str, result["box"]))] if zoom else []
        flag = [int(result["unknown"]["flagged"]), f"{result['unknown']['value']:.6g}"] if unknown else []
        writer.writerows([result["file"], rank, guess["class"], f"{guess['probability']:.6f}",
                          guess.get("family", ""), guess.get("manufacturer", ""), *coarse_cells(result["coarse"]), *box,
                          *flag]
                         for rank, guess in enumerate(result["top"], start=1))
    return text.getvalue()


def prediction_entry(predictor: Predictor, file: str, prediction: Prediction, topk: int) -> dict[str, Any]:
    """What ``fgvc predict`` and the demo say of one photo that ``predictor`` predicted: its ``file``, its ``top``
    ``topk`` guesses (``Predictor.top``), its ``coarse`` answer (``Predictor.coarse``), with zoom the ``box`` of its
    second look and, with an unknown-type threshold, ``unknown``: ``{"flagged", "score" (its name), "value",
    "threshold"}``."""
    entry = {"file": file, "top": predictor.top(prediction.probabilities, topk),
             "coarse": predictor.coarse(prediction.probabilities)}
    if prediction.box is not None:
        entry["box"] = list(prediction.box)
    check = predictor.unknown_check
    if prediction.known is not None and check is not None:
        entry["unknown"] = {"flagged": prediction.unknown, "score": check.score, "value": prediction.known,
                            "threshold": check.threshold}
    return entry


def predict_files(predictor: Predictor, paths: Sequence[str | Path], topk: int = 5, crop_banner: bool | None = None
                  ) -> list[dict[str, Any]]:
    """Top-k classes of each image (folders are searched for images), ``predictor.batch_size`` files at a time.

    ``crop_banner`` cuts the run's FGVC-Aircraft banner (``cfg.banner_px`` rows) first: True from every
    image, False from none, None (auto) from the dataset's own photos (``fgvc.apps.banner``; stderr says how
    many). Each result is the ``prediction_entry`` of a file; an unreadable file gets an ``error`` entry naming
    it, and the others are still predicted.
    """
    files = expand_images(paths)
    photos = list(zip(files, banner_cuts(predictor.cfg, files, crop_banner), strict=True))  # (file, banner rows)
    results: list[dict[str, Any]] = []
    for start in range(0, len(photos), predictor.batch_size):
        loaded: list[tuple[Path, Image.Image]] = []
        for path, banner in photos[start:start + predictor.batch_size]:
            try:
                loaded.append((path, load_image(path, banner)))
            except BadImageError as err:
                results.append({"file": str(path), "error": str(err)})
        predictions = predictor.predict([image for _, image in loaded])
        results.extend(prediction_entry(predictor, str(path), prediction, topk)
                       for (path, _), prediction in zip(loaded, predictions, strict=True))
    order = {str(path): i for i, path in enumerate(files)}
    return sorted(results, key=lambda result: order[result["file"]])
