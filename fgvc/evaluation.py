"""Evaluate a trained checkpoint on a split, and predict the variant of single images.

    report = evaluate_checkpoint("logs/<run>/last.pt", split="test")   # also writes eval-test.json
    results = predict_files("logs/<run>/last.pt", ["plane.jpg"], topk=5)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from fgvc import metrics
from fgvc.checkpoint import model_from_checkpoint
from fgvc.config import TrainConfig
from fgvc.data import FGVC_FOLDER, build_split, eval_transform, load_image
from fgvc.engine import predict_scores, resolve_device
from fgvc.model import model_spec


def read_hierarchy(root: str | Path, split: str, level: str = "variant") -> dict[str, tuple[np.ndarray, list[str]]]:
    """For FGVC-Aircraft: map each class of ``level`` to its family and manufacturer.

    The mapping joins the annotation files of the levels by image id, so it holds exactly
    what the dataset says. Returns ``{parent_level: (parent_of, parent_names)}``.
    """
    data = Path(root) / FGVC_FOLDER / "data"
    files = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}

    def labels(name: str) -> dict[str, str]:
        with (data / f"images_{name}_{split}.txt").open() as f:
            return dict(line.rstrip("\n").split(" ", 1) for line in f if line.strip())

    child_names = (data / files[level]).read_text().splitlines()
    children = labels(level)
    hierarchy = {}
    for parent in ("family", "manufacturer")[("variant", "family", "manufacturer").index(level):]:
        parent_names = (data / files[parent]).read_text().splitlines()
        parents = labels(parent)
        pairs = {(children[image], parents[image]) for image in children}
        hierarchy[parent] = (metrics.parent_index(child_names, parent_names, pairs), parent_names)
    return hierarchy


def evaluate_checkpoint(checkpoint: str | Path, split: str = "test", data_root: str | Path | None = None,
                        device: str = "auto", out: str | Path | None = None, progress: bool = False
                        ) -> dict[str, Any]:
    """Metrics of a checkpoint on ``split``, written to ``out`` (default: beside the checkpoint)."""
    model, cfg, classes = model_from_checkpoint(checkpoint)
    root = Path(data_root) if data_root is not None else Path(cfg.data_root)
    eval_cfg = TrainConfig.from_dict({**cfg.to_dict(), "data_root": str(root), "download": False})
    dataset = build_split(eval_cfg, split, eval_transform(cfg.img_size, model_spec(cfg.arch).norm))
    if list(dataset.classes) != classes:
        raise ValueError(f"the classes under {root} (split {split!r}) differ from the {len(classes)} classes "
                         f"{checkpoint} was trained on")
    torch_device = resolve_device(device)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=min(cfg.workers, 4))
    scores, targets = predict_scores(model.to(torch_device), loader, device=torch_device, progress=progress)
    parents = read_hierarchy(root, split, cfg.level) if cfg.dataset == "fgvc-aircraft" else None
    report = {"checkpoint": str(checkpoint), "split": split, "data_root": str(root),
              **metrics.summarize(scores, targets, classes, parents, seed=cfg.seed)}
    out_dir = Path(out) if out is not None else Path(checkpoint).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"eval-{split}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def predict_files(checkpoint: str | Path, paths: list[str | Path], topk: int = 5, banner_px: int = 0,
                  device: str = "auto") -> list[dict[str, Any]]:
    """Top-k classes with probabilities for each image; an unreadable file gets an ``error`` entry instead."""
    model, cfg, classes = model_from_checkpoint(checkpoint)
    torch_device = resolve_device(device)
    model = model.to(torch_device)
    transform = eval_transform(cfg.img_size, model_spec(cfg.arch).norm)
    k = min(topk, len(classes))
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            image = transform(load_image(path, banner_px)).unsqueeze(0)
        except (OSError, ValueError) as err:
            results.append({"file": str(path), "error": f"{path}: not a readable image ({err})"})
            continue
        with torch.no_grad():
            probs = model(image.to(torch_device)).float().softmax(dim=1)[0].cpu()
        values, indices = probs.topk(k)
        results.append({"file": str(path), "top": [{"class": classes[i], "probability": float(p)}
                                                   for p, i in zip(values.tolist(), indices.tolist())]})
    return results


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines: the headline metrics with their 95 % intervals, and the hierarchy."""
    lines = [f"{report['split']} split, {report['num_samples']} images"]
    for key, name in (("top1", "top-1"), ("top5", "top-5"), ("mean_class_acc", "mean per-class")):
        low, high = report[f"{key}_ci"]
        lines.append(f"  {name:<16} {100 * report[key]:6.2f}%  (95% CI {100 * low:.2f}-{100 * high:.2f}%)")
    for level in ("family", "manufacturer"):
        if f"{level}_top1" in report:
            within = report[f"{level}_errors_within"]
            share = "no errors" if within is None else f"{100 * within:.1f}% of variant errors stay in the {level}"
            lines.append(f"  {level + ' top-1':<16} {100 * report[f'{level}_top1']:6.2f}%  ({share})")
    return "\n".join(lines)
