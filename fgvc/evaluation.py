"""Evaluate a trained checkpoint on a split, and predict the variant of single images.

    analysis = evaluate_checkpoint("logs/<run>/last.pt", split="test")   # writes logs/<run>/eval-test/
    results = predict_files("logs/<run>/last.pt", ["plane.jpg"], topk=5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fgvc.analysis import Analysis, analyse
from fgvc.checkpoint import load_trained
from fgvc.config import TrainConfig
from fgvc.data import BadImageError, build_split, dataset_hierarchy, eval_transform, load_image
from fgvc.engine import predict_scores, resolve_device
from fgvc.model import model_spec


def evaluate_checkpoint(checkpoint: str | Path, split: str = "test", data_root: str | Path | None = None,
                        device: str = "auto", out: str | Path | None = None, tta: bool = False,
                        progress: bool = False) -> Analysis:
    """Evaluate a checkpoint on ``split`` and write the analysis to ``out``
    (default: ``eval-<split>/`` beside the checkpoint, ``eval-<split>-tta/`` with ``tta``)."""
    trained = load_trained(checkpoint)
    model, cfg, classes = trained.model, trained.cfg, trained.classes
    root = Path(data_root) if data_root is not None else Path(cfg.data_root)
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "data_root": str(root), "download": False})
    dataset = build_split(cfg, split, eval_transform(cfg.img_size, model_spec(cfg.arch).norm))
    if list(dataset.classes) != classes:
        raise ValueError(f"the classes under {root} (split {split!r}) differ from the {len(classes)} classes "
                         f"{checkpoint} was trained on")
    torch_device = resolve_device(device)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=min(cfg.workers, 4))
    scores, targets = predict_scores(model.to(torch_device), loader, device=torch_device, progress=progress,
                                     tta=tta)
    default = Path(checkpoint).parent / (f"eval-{split}-tta" if tta else f"eval-{split}")
    extra = {"checkpoint": str(checkpoint), "split": split, "data_root": str(root), "tta": tta}
    return analyse(scores, targets, classes, dataset_hierarchy(cfg, split), out or default, cfg.seed, extra)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def expand_images(paths: list[str | Path]) -> list[Path]:
    """Files as given; folders replaced by the image files below them, sorted."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def predict_files(checkpoint: str | Path, paths: list[str | Path], topk: int = 5, banner_px: int = 0,
                  device: str = "auto") -> list[dict[str, Any]]:
    """Top-k classes with probabilities for each image (folders are searched for images).

    Each guess names the family and manufacturer of its class where the dataset has them; an
    unreadable file gets an ``error`` entry instead and the others are still predicted.
    """
    trained = load_trained(checkpoint)
    torch_device = resolve_device(device)
    model = trained.model.to(torch_device)
    transform = eval_transform(trained.cfg.img_size, model_spec(trained.cfg.arch).norm)
    k = min(topk, len(trained.classes))
    results: list[dict[str, Any]] = []
    for path in expand_images(paths):
        try:
            image = transform(load_image(path, banner_px)).unsqueeze(0)
        except BadImageError as err:  # names the file and what is wrong with it
            results.append({"file": str(path), "error": str(err)})
            continue
        with torch.no_grad():
            probs = model(image.to(torch_device)).float().softmax(dim=1)[0].cpu()
        values, indices = probs.topk(k)
        top = []
        for probability, index in zip(values.tolist(), indices.tolist()):
            parents = {level: names[index] for level, names in trained.hierarchy.items()}
            top.append({"class": trained.classes[index], "probability": probability, **parents})
        results.append({"file": str(path), "top": top})
    return results
