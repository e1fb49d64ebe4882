"""Choosing which images of a split to explain, and explaining them: examples the model gets right and wrong,
the most-confused pairs (for ``gradcam.ipynb`` and ``fgvc figures``).

    images = load_split_images(predictor.cfg, "test")
    picked = pick_examples(predictor, images, 6)                 # half right, half wrong
    explanations, labels = explain_examples(predictor, images, picked)

The maps themselves are ``fgvc.models.gradcam``'s; drawing them is ``fgvc.evaluation.plots``'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from fgvc.core.config import TrainConfig
from fgvc.data.datasets import dataset_labels
from fgvc.data.kinds import build_split
from fgvc.models.gradcam import Explanation, explain
from fgvc.models.predictor import Predictor


def load_split_images(cfg: TrainConfig, split: str, data_root: str | Path | None = None) -> Dataset:
    """The images of ``split`` as banner-cropped PIL images (no transform), for explaining."""
    root = data_root if data_root is not None else cfg.data_root
    return build_split(dataclasses.replace(cfg, data_root=str(root), download=False), split, None)


def predicted_classes(predictor: Predictor, dataset: Dataset, indices: list[int]) -> list[int]:
    """The predicted class of each chosen image, ``predictor.batch_size`` images at a time."""
    predicted: list[int] = []
    for start in range(0, len(indices), predictor.batch_size):
        chunk = [dataset[i][0] for i in indices[start:start + predictor.batch_size]]
        predicted.extend(int(i) for i in predictor.scores(chunk).argmax(axis=1))
    return predicted


def pick_examples(predictor: Predictor, dataset: Dataset, count: int, seed: int = 0) -> list[int]:
    """Indices of up to ``count`` images, half that the model classifies correctly and half it gets wrong
    (topped up from the other kind when one runs short), in a seeded random order."""
    order = np.random.default_rng(seed).permutation(len(dataset)).tolist()
    labels = dataset_labels(dataset)
    correct: list[int] = []
    wrong: list[int] = []
    for start in range(0, len(order), predictor.batch_size):
        chunk = order[start:start + predictor.batch_size]
        for index, predicted in zip(chunk, predicted_classes(predictor, dataset, chunk)):
            (correct if predicted == labels[index] else wrong).append(index)
        if len(correct) >= count and len(wrong) >= count:
            break
    half = count // 2
    take_wrong = min(len(wrong), max(half, count - len(correct)))
    take_correct = min(len(correct), count - take_wrong)
    return correct[:take_correct] + wrong[:take_wrong]


def explain_examples(predictor: Predictor, dataset: Dataset, indices: list[int],
                     method: str = "gradcam") -> tuple[list[Explanation], list[int]]:
    """Explain the predicted class of each chosen image; returns the explanations and the true labels."""
    explanations, labels = [], []
    for index in indices:
        image, label = dataset[index]
        explanations.append(explain(predictor, image, method=method))
        labels.append(label)
    return explanations, labels


def explain_confusions(predictor: Predictor, dataset: Dataset, confusions: list[dict[str, Any]], count: int = 3,
                       method: str = "gradcam") -> list[tuple[Explanation, Explanation]]:
    """For each of the first ``count`` most-confused pairs that has a misclassified image in ``dataset``:
    that image explained for the predicted class and for the true class."""
    classes, labels = predictor.classes, dataset_labels(dataset)
    pairs = []
    for confusion in confusions:
        true, predicted = classes.index(confusion["true"]), classes.index(confusion["predicted"])
        candidates = [i for i, label in enumerate(labels) if label == true]
        for index, guess in zip(candidates, predicted_classes(predictor, dataset, candidates)):
            if guess == predicted:
                image = dataset[index][0]
                pairs.append((explain(predictor, image, predicted, method), explain(predictor, image, true, method)))
                break
        if len(pairs) == count:
            break
    return pairs
