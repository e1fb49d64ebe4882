"""Shared fixtures: synthetic datasets and the short and the long training run, each made once per test session,
also across pytest-xdist's workers. pytest-xdist's controller loads this file too, and runs no test: what needs
torch (``helpers``, training) is imported where a fixture needs it, in the workers alone."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import pytest
from filelock import FileLock

matplotlib.use("Agg")
os.environ.setdefault("TORCH_HOME", "/nonexistent-fgvc-test-torch-home")  # a test must never download weights
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # make test runs pytest-xdist's workers: share the cores among them
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)  # the processes a test starts
    import torch

    torch.set_num_threads(_threads)

from fgvc.data.synthetic import write_synthetic_dataset

if TYPE_CHECKING:
    from helpers import MakeDataset


def made_once(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], object]) -> Path:
    """The folder ``name`` that ``make(folder)`` fills once per test session: under the temporary folder that
    pytest-xdist's workers share, behind a file lock, so that the first worker to ask makes it and the others
    wait for it and read it. A test that changes the folder works on a copy."""
    root = factory.getbasetemp()
    root = root.parent if "PYTEST_XDIST_WORKER" in os.environ else root
    folder, done = root / name, root / f"{name}.done"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed left
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def make_dataset(tmp_path_factory: pytest.TempPathFactory) -> MakeDataset:
    """``make_dataset(num_classes, per_class, size=(80, 76), **options)``: a synthetic FGVC-Aircraft in the real
    on-disk layout (``write_synthetic_dataset``'s arguments), written once per session for each set of
    arguments and shared: a test that damages or renames files works on a copy."""

    def make(num_classes: int, per_class: int, size: tuple[int, int] = (80, 76), **options: object) -> Path:
        name = "-".join(map(str, (num_classes, per_class, *size, *(f"{k}={v}" for k, v in sorted(options.items())))))
        return made_once(tmp_path_factory, f"synthetic-{name}".replace(" ", ""), lambda folder: write_synthetic_dataset(
            folder, num_classes=num_classes, per_class=per_class, size=size, **options))

    return make


@pytest.fixture(scope="session")
def synthetic_root(make_dataset: MakeDataset) -> Path:
    """A 6-class synthetic FGVC-Aircraft (90 images per class): enough to learn from."""
    from helpers import NUM_CLASSES

    return make_dataset(NUM_CLASSES, 90, size=(128, 116))


@pytest.fixture(scope="session")
def tiny_root(make_dataset: MakeDataset) -> Path:
    """3 classes, 12 trainval and 6 test images: for runs whose learning does not matter."""
    return make_dataset(3, 6)


@pytest.fixture(scope="session")
def short_run(make_dataset: MakeDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs of what the demo trains (Lite0 fine-tuned from its ImageNet weights) at 64 px on 6 synthetic
    classes of 12 images (6 steps of 8 an epoch): a real run folder and a checkpoint whose scores depend on the
    image, with clear winners (no near-ties between classes), for the tests of what comes after training and of
    the step log; its folder."""
    from helpers import NUM_CLASSES, tiny_config

    from fgvc.training.engine import fit

    data = make_dataset(NUM_CLASSES, 12, size=(128, 116))
    return made_once(tmp_path_factory, "short-run", lambda folder: fit(
        tiny_config(data, folder, epochs=2, batch_size=8, arch="efficientnet-lite0", pretrained=True), progress=False))


@pytest.fixture(scope="session")
def val_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch at 32 px trained on ``train`` (one batch of 4 of its 6 images) and evaluated on ``val``, the split
    held out for choosing and calibrating, without TensorBoard events (``tiny_config`` with ``SMALL``): its folder."""
    from helpers import SMALL, tiny_config

    from fgvc.training.engine import fit

    options = {"epochs": 1, "train_split": "train", "eval_split": "val", "tensorboard": False, **SMALL}
    return made_once(tmp_path_factory, "val-run", lambda folder: fit(tiny_config(tiny_root, folder, **options),
                                                                       progress=False))


@pytest.fixture(scope="session")
def trained_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``learning_config``'s run, for the tests that need learning (test_engine.py) or compare with it
    (test_pretrained.py). (Training from random weights learns too, slowly: test_gradcam.py shows it.) Its folder."""
    from helpers import learning_config

    from fgvc.training.engine import fit

    return made_once(tmp_path_factory, "trained-run", lambda folder: fit(learning_config(synthetic_root, folder),
                                                                           progress=False))
