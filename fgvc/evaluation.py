"""Evaluate a trained checkpoint on a whole split and write the report.

    analysis = evaluate_checkpoint("logs/<run>/last.pt", split="test")   # writes logs/<run>/eval-test/
    analysis = evaluate_checkpoint("logs/<run>/last.pt", weights="raw")  # not the EMA: eval-test-raw/
    analysis = evaluate_checkpoint("logs/<run>/last.pt", zoom=Zoom())    # a second, zoomed look: eval-test-zoom/
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fgvc import provenance
from fgvc.analysis import Analysis, analyse
from fgvc.data.datasets import build_split, image_files
from fgvc.data.hierarchy import dataset_hierarchy
from fgvc.errors import DatasetError
from fgvc.predict import Predictor
from fgvc.zoom import Zoom


def evaluate_checkpoint(checkpoint: str | Path, split: str = "test", data_root: str | Path | None = None,
                        device: str = "auto", out: str | Path | None = None, tta: bool = False,
                        view: str | None = None, progress: bool = False, weights: str | None = None,
                        img_size: int | None = None, zoom: Zoom | bool | None = None) -> Analysis:
    """Evaluate a checkpoint on ``split`` (with the run's view and evaluation size unless ``view`` or
    ``img_size`` is given, with its EMA weights when it has them unless ``weights`` says ``raw``, with the
    zoomed second look of ``fgvc.zoom`` as ``zoom`` or else the run's ``eval_zoom`` says) and write the analysis
    to ``out`` (default: ``eval-<split>/`` beside the checkpoint; ``-tta``, ``-<view>``, ``-<weights>``,
    ``-<img_size>px`` and ``-zoom`` (``Zoom.name``) or ``-nozoom`` added when set).

    ``metrics.json`` also records the split's data fingerprint and what trained the checkpoint
    (``provenance.evaluation_facts``), for ``fgvc compare`` to check."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device, view=view, tta=tta, weights=weights,
                                          img_size=img_size, zoom=zoom)
    cfg = predictor.cfg
    root = Path(data_root) if data_root is not None else Path(cfg.data_root)
    cfg = dataclasses.replace(cfg, data_root=str(root), download=False)
    dataset = build_split(cfg, split, predictor.dataset_transform)
    if list(dataset.classes) != predictor.classes:
        raise DatasetError(f"the classes under {root} (split {split!r}) differ from the {len(predictor.classes)} "
                           f"classes {checkpoint} was trained on")
    scores, targets = predictor.loader_scores(predictor.loader(dataset, min(cfg.workers, 4)), progress)
    zoomed = "" if zoom is None else f"-{predictor.zoom.name}" if zoom else "-nozoom"
    suffix = ("-tta" if tta else "") + (f"-{view}" if view else "") + (f"-{weights}" if weights else "") + (
        f"-{img_size}px" if img_size else "") + zoomed
    extra = {"checkpoint": str(checkpoint), "split": split, "data_root": str(root), "tta": tta,
             "view": predictor.view, "weights": predictor.weights, "img_size": cfg.eval_size,
             **provenance.evaluation_facts(provenance.checkpoint_record(checkpoint),
                                           provenance.split_fingerprint(dataset, predictor.classes, root, split)),
             **({"zoom": dataclasses.asdict(predictor.zoom)} if predictor.zoom else {})}
    return analyse(scores, targets, predictor.classes, dataset_hierarchy(cfg, split),
                   out or Path(checkpoint).parent / f"eval-{split}{suffix}", cfg.seed, extra,
                   files=image_files(dataset))
