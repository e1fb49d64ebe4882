"""The label hierarchy of a dataset: each class's family and manufacturer, where the data says them."""

from __future__ import annotations

import numpy as np

from fgvc.config import TrainConfig
from fgvc.data.layout import read_hierarchy

Hierarchy = dict[str, tuple[np.ndarray, list[str]]]  # {parent level: (parent index of each class, parent names)}


def dataset_hierarchy(cfg: TrainConfig, split: str) -> Hierarchy | None:
    """The family / manufacturer hierarchy of ``cfg``'s dataset, or None where it has none."""
    if cfg.dataset != "fgvc-aircraft" or cfg.level == "manufacturer":
        return None
    return read_hierarchy(cfg.data_root, split, cfg.level)


def hierarchy_names(hierarchy: Hierarchy) -> dict[str, list[str]]:
    """``{level: parent name of each class}``, the form checkpoints and predictions carry."""
    return {level: [names[i] for i in parent_of] for level, (parent_of, names) in hierarchy.items()}
