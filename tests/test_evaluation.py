"""The full evaluation: files written, test-time augmentation, hierarchy carried by checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PROBABILITY_TOLERANCE
from torch.utils.data import DataLoader, TensorDataset

from fgvc.core.runtime import Runtime
from fgvc.data import FGVC_FOLDER
from fgvc.evaluation.analysis import (
    analyse,
    format_confusions,
    format_report,
    format_worst,
    read_confusion,
    read_report,
)
from fgvc.evaluation.evaluate import evaluate_checkpoint
from fgvc.models.checkpoint import load_trained
from fgvc.models.scoring import predict_scores

REPORT_FILES = ("metrics.json", "per_class.csv", "confusion.csv", "confusions.csv", "confusion.png", "reliability.png")


def test_fit_ends_with_the_full_analysis(short_run: Path) -> None:
    folder = short_run / "eval-test"
    for name in REPORT_FILES:
        assert (folder / name).stat().st_size > 0, name
    report = json.loads((folder / "metrics.json").read_text())
    final_epoch = (short_run / "epochs.csv").read_text().splitlines()[-1].split(",")
    assert report["top1"] == pytest.approx(float(final_epoch[3]))
    low, high = report["top1_ci"]
    assert low <= report["top1"] <= high
    assert 0 <= report["family_top1"] <= 1 and report["family_top1"] >= report["top1"]
    confusion, classes, families = read_confusion(folder)
    assert confusion.sum() == report["num_samples"] and len(classes) == len(families) == confusion.shape[0]


def test_evaluate_writes_every_file_and_tta_into_its_own_folder(short_run: Path, tmp_path: Path) -> None:
    analysis = evaluate_checkpoint(short_run / "last.pt", split="val", out=tmp_path / "plain")
    flipped = evaluate_checkpoint(short_run / "last.pt", split="val", tta=True)
    for name in REPORT_FILES:
        assert (tmp_path / "plain" / name).exists() and (short_run / "eval-val-tta" / name).exists()
    assert flipped.report["tta"] is True and analysis.report["num_samples"] == flipped.report["num_samples"]
    text = "\n".join([format_report(analysis.report), format_worst(analysis.report, 3),
                      format_confusions(analysis.report, 3)])
    assert "mean per-class" in text and "family top-1" in text and "worst 3 classes" in text
    per_class = (tmp_path / "plain" / "per_class.csv").read_text().splitlines()
    accuracies = [float(line.split(",")[-2]) for line in per_class[1:]]
    assert accuracies == sorted(accuracies)  # worst first


def test_the_analysis_measures_calibration_and_draws_the_reliability_diagram(tmp_path: Path) -> None:
    # 8 images, 2 classes, every guess class 0 at probability 0.75 (bin (11/15, 12/15]); 4 right: ECE |0.5 - 0.75|.
    # Brier: a right image 0.25^2 + 0.25^2 = 0.125, a wrong one 0.75^2 + 0.75^2 = 1.125; mean 0.625.
    scores = np.tile([0.75, 0.25], (8, 1))
    targets = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    analysis = analyse(scores, targets, ["A320", "A321"], None, tmp_path / "eval-test", extra={"split": "test"})
    assert (tmp_path / "eval-test" / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = read_report(tmp_path / "eval-test")
    assert report["ece"] == pytest.approx(0.25, abs=1e-9) and report["brier"] == pytest.approx(0.625, abs=1e-9)
    assert [b["images"] for b in report["reliability_bins"]] == [0] * 11 + [8, 0, 0, 0]
    text = format_report(analysis.report)
    assert "  ECE               25.00%  (95% CI " in text and "  Brier score       0.6250  (95% CI " in text
    older = {key: value for key, value in report.items() if not key.startswith(("ece", "brier"))}
    assert format_report(older).splitlines() == [line for line in text.splitlines()
                                                 if not line.startswith(("  ECE", "  Brier"))]


class FlipInvariant(torch.nn.Module):
    """A model that cannot tell an image from its mirror: TTA must change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3 * 8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((x + x.flip(3)).mean(dim=3).flatten(1))


def test_tta_on_a_flip_invariant_model_changes_nothing() -> None:
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(20, 3, 8, 8), torch.randint(0, 4, (20,))), batch_size=8)
    model, cpu = FlipInvariant(), torch.device("cpu")
    plain, _ = predict_scores(model, loader, Runtime(cpu))
    flipped, _ = predict_scores(model, loader, Runtime(cpu), tta=True)
    np.testing.assert_allclose(plain, flipped, rtol=0, atol=PROBABILITY_TOLERANCE)
    class_changing = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    assert not np.allclose(predict_scores(class_changing, loader, Runtime(cpu))[0],
                           predict_scores(class_changing, loader, Runtime(cpu), tta=True)[0])


def test_checkpoint_carries_the_hierarchy_of_the_dataset(short_run: Path) -> None:
    trained = load_trained(short_run / "last.pt")
    meta = Path(trained.cfg.data_root) / FGVC_FOLDER / "data"
    family_of_image = dict(line.split(" ", 1) for line in (meta / "images_family_test.txt").read_text().splitlines())
    for line in (meta / "images_variant_test.txt").read_text().splitlines():
        image_id, variant = line.split(" ", 1)
        assert trained.hierarchy["family"][trained.classes.index(variant)] == family_of_image[image_id]
