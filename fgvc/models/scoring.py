"""The scoring kernel of the training loop's evaluation: a model's softmax probabilities over a loader.

    scores, targets = predict_scores(model, loaders.eval, runtime, tta=True)    # (N, C), (N,)

Inference from a checkpoint goes through ``fgvc.models.predictor.Predictor`` instead, which adds the run's
preprocessing, calibration, zoom and unknown-type threshold.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fgvc.core.runtime import Runtime


@torch.no_grad()
def predict_scores(model: nn.Module, loader: DataLoader, runtime: Runtime, tta: bool = False,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N, C) and targets (N,) of ``model`` over ``loader``.

    ``tta`` averages the softmax of each image and of its horizontal mirror.
    """
    model.eval()
    all_scores, all_targets = [], []
    for images, targets in tqdm(loader, desc="eval", leave=False, disable=not progress):
        all_scores.append(_probabilities(model, runtime.inputs(images), runtime, tta).cpu())
        all_targets.append(targets)
    return torch.cat(all_scores).numpy(), torch.cat(all_targets).numpy()


def _probabilities(model: nn.Module, inputs: torch.Tensor, runtime: Runtime, tta: bool) -> torch.Tensor:
    """The softmax of ``inputs``, with ``tta`` averaged with that of their mirror."""
    with runtime.autocast():
        probs = model(inputs).float().softmax(dim=1)
        if tta:
            probs = (probs + model(inputs.flip(3)).float().softmax(dim=1)) / 2
    return probs
