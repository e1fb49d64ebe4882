"""Temperature scaling: fitted on deliberately over-confident logits it is above 1 and lowers the NLL and ECE; it
never changes a top-1 class; ``fgvc calibrate`` stores it in the checkpoint (refusing test, and photos the run
trained on), and Predictor, predict, evaluate, the web demo and ONNX all use it, within the stated tolerance of one
computation from the logits; a checkpoint without it predicts as before."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import NUM_CLASSES, PROBABILITY_TOLERANCE, tiny_config

from fgvc.apps.cam_examples import load_split_images
from fgvc.apps.cli import main
from fgvc.apps.serve import describe
from fgvc.evaluation import metrics
from fgvc.models.calibration import (
    CALIBRATION_KEY,
    calibrated,
    fit_temperature,
    log_probabilities,
    negative_log_likelihood,
)
from fgvc.models.checkpoint import load_checkpoint
from fgvc.models.export import export_onnx
from fgvc.models.predictor import Predictor


def overconfident(count: int = 3000, classes: int = 10, sharpen: float = 3.0, seed: int = 0
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """View logits (1, N, C) whose labels are drawn from softmax(z), then sharpened ``sharpen`` times: a model
    ``sharpen`` times too sure of itself (the right temperature is about ``sharpen``)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(count, classes))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(classes, p=row) for row in probabilities])
    return torch.from_numpy(logits * sharpen)[None], targets


def ece(probabilities: np.ndarray, targets: np.ndarray) -> float:
    return metrics.expected_calibration_error(probabilities.max(axis=1), probabilities.argmax(axis=1) == targets)


def test_a_temperature_fitted_on_overconfident_logits_is_above_1_and_lowers_nll_and_ece() -> None:
    logits, targets = overconfident()
    log_probs = log_probabilities(logits)
    temperature = fit_temperature(log_probs, targets)
    assert 2.5 < temperature < 3.5
    assert negative_log_likelihood(log_probs, targets, temperature) < 0.8 * negative_log_likelihood(log_probs, targets)
    assert ece(calibrated(log_probs, temperature), targets) < 0.5 * ece(calibrated(log_probs, 1.0), targets)
    under = log_probabilities(logits / 9)  # three times too unsure: T below 1 sharpens
    assert 0.25 < fit_temperature(under, targets) < 0.45
    assert fit_temperature(log_probs, targets) == temperature  # deterministic


@pytest.mark.parametrize("views", [1, 2])
def test_a_temperature_never_changes_the_top1_class(views: int) -> None:
    logits = torch.from_numpy(np.random.default_rng(1).normal(0, 4, size=(views, 2000, 30)))
    log_probs = log_probabilities(logits)
    top1 = calibrated(log_probs, 1.0).argmax(axis=1)
    for temperature in (0.05, 0.3, 0.7, 1.5, 4.0, 50.0):
        assert (calibrated(log_probs, temperature).argmax(axis=1) == top1).all()
    if views == 1:  # one view: exactly softmax(logits / T)
        expected = (logits[0] / 2.0).softmax(dim=1).numpy()
        assert np.abs(calibrated(log_probs, 2.0) - expected).max() <= PROBABILITY_TOLERANCE


# held_out_run must learn, which puts every test of it in the slow tier (the Makefile's rule); the fast tier keeps the
# tests above and the one of val_run at the end
ON_THE_LEARNT_RUN = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out_run(make_dataset: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs of Lite0 at 64 px trained on the ``train`` split alone (10 photos per class), so that ``val`` is
    held out: a model that has learnt something, so its temperature lies well inside the searched range; left
    uncalibrated (``calibrate=False``) for ``fgvc calibrate`` to fit."""
    from fgvc.training.engine import fit

    data = make_dataset(NUM_CLASSES, 30, size=(128, 116))
    run = fit(tiny_config(data, tmp_path_factory.mktemp("runs") / "held-out", epochs=2, batch_size=8,
                          arch="efficientnet-lite0", pretrained=True, train_split="train", eval_split="val",
                          calibrate=False),
              progress=False)
    return run


@pytest.fixture(scope="module")
def calibrated_run(held_out_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``held_out_run``'s checkpoint after ``fgvc calibrate`` (its folder)."""
    folder = tmp_path_factory.mktemp("calibrated")
    shutil.copy(held_out_run / "last.pt", folder / "last.pt")
    assert main(["calibrate", "--checkpoint", str(folder / "last.pt"), "--device", "cpu"]) == 0
    return folder


def expected_probabilities(checkpoint: Path, images: list, temperature: float) -> np.ndarray:
    """softmax(logits / T) of the raw model on ``images``, computed here once from the logits."""
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", calibrated=False)
    with torch.no_grad():
        logits = predictor.model(torch.stack([predictor.transform(image) for image in images])).float()
    return (logits / temperature).softmax(dim=1).numpy()


@ON_THE_LEARNT_RUN
def test_calibrate_stores_the_temperature_and_keeps_everything_else(held_out_run: Path, calibrated_run: Path) -> None:
    before, after = load_checkpoint(held_out_run / "last.pt"), load_checkpoint(calibrated_run / "last.pt")
    assert CALIBRATION_KEY not in before  # trained with calibrate=False
    assert set(after) == set(before) | {CALIBRATION_KEY}
    assert all(torch.equal(after["model"][key], value) for key, value in before["model"].items())
    [(setting, record)] = after[CALIBRATION_KEY].items()
    assert setting == "raw squash 64px" and 0.05 < record["temperature"] < 20 and record["temperature"] != 1
    assert record["facts"]["split"] == "val" and record["score"] == "energy"
    stored = json.loads((calibrated_run / "calibration.json").read_text())
    assert stored[setting]["temperature"] == record["temperature"]


@ON_THE_LEARNT_RUN
def test_every_inference_path_divides_by_the_stored_temperature(calibrated_run: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = calibrated_run / "last.pt"
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", unknown=False)
    temperature = predictor.temperature
    dataset = load_split_images(predictor.cfg, "test")
    images = [dataset[i][0] for i in range(len(dataset))]
    files = [path for path, _ in dataset.samples]
    expected = expected_probabilities(checkpoint, images, temperature)
    uncalibrated = expected_probabilities(checkpoint, images, 1.0)
    assert np.abs(expected - uncalibrated).max() > 100 * PROBABILITY_TOLERANCE  # the temperature shows

    assert np.abs(predictor.scores(images) - expected).max() <= PROBABILITY_TOLERANCE
    off = Predictor.from_checkpoint(checkpoint, device="cpu", calibrated=False)
    assert np.abs(off.scores(images) - uncalibrated).max() <= PROBABILITY_TOLERANCE

    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(checkpoint), *files, "--json", "--topk", "1", "--no-unknown"]) == 0
    by_predict = [result["top"][0]["probability"] for result in json.loads(capsys.readouterr().out)]
    assert np.abs(np.array(by_predict) - expected.max(axis=1)).max() <= PROBABILITY_TOLERANCE

    assert main(["evaluate", "--checkpoint", str(checkpoint), "--split", "test", "--out", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["temperature"] == temperature
    with (tmp_path / "eval" / "predictions.csv").open(newline="") as f:
        by_file = {row["file"]: float(row["probability"]) for row in csv.DictReader(f)}
    assert max(abs(by_file[file] - p) for file, p in zip(files, expected.max(axis=1), strict=True)) <= 2e-6 + (
        PROBABILITY_TOLERANCE)

    shown = describe(predictor, files[0])
    assert abs(max(shown.confidences.values()) - expected[0].max()) <= PROBABILITY_TOLERANCE


@pytest.mark.slow  # exporting takes 15 s and more, as for test_export.py's exported files
def test_an_onnx_file_exported_afterwards_divides_by_the_stored_temperature(calibrated_run: Path,
                                                                            tmp_path: Path) -> None:
    checkpoint = calibrated_run / "last.pt"
    temperature = Predictor.from_checkpoint(checkpoint, device="cpu", unknown=False).temperature
    dataset = load_split_images(Predictor.from_checkpoint(checkpoint, device="cpu").cfg, "test")
    images = [dataset[i][0] for i in range(len(dataset))]
    onnx = Predictor.from_checkpoint(export_onnx(checkpoint, tmp_path / "model.onnx"), unknown=False)
    assert onnx.temperature == temperature
    assert np.abs(onnx.scores(images) - expected_probabilities(checkpoint, images, temperature)).max() <= (
        PROBABILITY_TOLERANCE)


@ON_THE_LEARNT_RUN
def test_a_checkpoint_without_a_temperature_predicts_as_before(held_out_run: Path) -> None:
    predictor = Predictor.from_checkpoint(held_out_run / "last.pt", device="cpu")
    assert predictor.temperature == 1.0 and predictor.unknown_check is None
    images = [image for image, _ in list(load_split_images(predictor.cfg, "test"))[:8]]
    with torch.no_grad():
        logits = predictor.model(torch.stack([predictor.transform(image) for image in images])).float()
    assert np.array_equal(predictor.scores(images), logits.softmax(dim=1).numpy())
    with pytest.raises(Exception, match="holds no temperature"):
        Predictor.from_checkpoint(held_out_run / "last.pt", device="cpu", calibrated=True)


@ON_THE_LEARNT_RUN
def test_calibrate_refuses_test_and_photos_the_run_trained_on(held_out_run: Path, short_run: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(held_out_run / "last.pt", tmp_path / "last.pt")
    capsys.readouterr()
    assert main(["calibrate", "--checkpoint", str(tmp_path / "last.pt"), "--split", "test"]) == 2
    assert "never fitted on test" in capsys.readouterr().err
    assert main(["calibrate", "--checkpoint", str(tmp_path / "last.pt"), "--split", "train"]) == 2
    assert "shares 60 photos with the training split 'train'" in capsys.readouterr().err
    shutil.copy(short_run / "last.pt", tmp_path / "trainval.pt")  # trained on trainval, which holds val
    assert main(["calibrate", "--checkpoint", str(tmp_path / "trainval.pt")]) == 2
    assert "with the training split 'trainval'" in capsys.readouterr().err
    assert CALIBRATION_KEY not in load_checkpoint(tmp_path / "last.pt")


@ON_THE_LEARNT_RUN
def test_a_temperature_fitted_with_zoom_is_not_used_without(calibrated_run: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(calibrated_run / "last.pt", tmp_path / "last.pt")
    assert main(["calibrate", "--checkpoint", str(tmp_path / "last.pt"), "--zoom", "--unknown-score", "none"]) == 0
    settings = load_checkpoint(tmp_path / "last.pt")[CALIBRATION_KEY]
    assert set(settings) == {"raw squash 64px", "raw squash 64px zoom"}
    zoomed = Predictor.from_checkpoint(tmp_path / "last.pt", zoom=True)
    plain = Predictor.from_checkpoint(tmp_path / "last.pt", zoom=False)
    assert zoomed.temperature == settings["raw squash 64px zoom"]["temperature"]
    assert plain.temperature == settings["raw squash 64px"]["temperature"]
    assert zoomed.unknown_check is None and plain.unknown_check is not None
    capsys.readouterr()
    Predictor.from_checkpoint(tmp_path / "last.pt", tta=True)
    assert "not for 'raw squash 64px tta'" in capsys.readouterr().err


def test_training_ends_by_calibrating_on_a_held_out_evaluation_split_only(val_run: Path, short_run: Path) -> None:
    """``val_run`` is evaluated on val, which it did not train on; ``short_run`` on test, never fitted on."""
    said = (val_run / "train.log").read_text()
    [(setting, record)] = load_checkpoint(val_run / "last.pt")[CALIBRATION_KEY].items()
    assert record["facts"]["split"] == "val" and record["score"] == "energy"
    assert f"setting {setting!r}: temperature {record['temperature']:.4f}, fitted on val" in said
    assert json.loads((val_run / "calibration.json").read_text())[setting]["temperature"] == record["temperature"]
    assert CALIBRATION_KEY not in load_checkpoint(short_run / "last.pt")
    assert not (short_run / "calibration.json").exists()
    assert "not calibrated: --split test is refused: a temperature or threshold is never fitted on test" in (
        short_run / "train.log").read_text()
