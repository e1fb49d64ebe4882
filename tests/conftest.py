"""Shared fixtures: one small synthetic dataset and one short demo run for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TORCH_HOME", "/nonexistent-fgvc-test-torch-home")  # a test must never download weights

from fgvc.config import TrainConfig, make_config
from fgvc.synthetic import write_synthetic_dataset

NUM_CLASSES = 6


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-class synthetic FGVC-Aircraft (90 images per class) in the real on-disk layout."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(root, num_classes=NUM_CLASSES, per_class=90, size=(128, 116), seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes, 12 trainval and 6 test images: for runs whose learning does not matter."""
    root = tmp_path_factory.mktemp("tiny")
    write_synthetic_dataset(root, num_classes=3, per_class=6, size=(80, 76))
    return root


def tiny_config(data_root: Path, run_dir: Path, **overrides: object) -> TrainConfig:
    """The demo preset shrunk for tests: 64-px images, in-process loading; B0 from random weights, so the
    engine's tests show that the loop itself learns (the demo fine-tunes Lite0: see test_pretrained.py)."""
    values = {"data_root": str(data_root), "run_dir": str(run_dir), "img_size": 64, "batch_size": 16,
              "workers": 0, "epochs": 2, "warmup_epochs": 0, "log_every": 5, "arch": "efficientnet-b0",
              "pretrained": False}
    return make_config("demo", **{**values, **overrides})


@pytest.fixture(scope="session")
def trained_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo run long enough to learn the synthetic classes; its folder."""
    from fgvc.engine import fit

    run_dir = tmp_path_factory.mktemp("runs") / "trained"
    return fit(tiny_config(synthetic_root, run_dir, epochs=24), progress=False)
