"""The measurements behind docs/calibration.md ("How sure is it?") on warbirds20 (run from the repository root).

    python studies/results/calibration-warbirds20/measure.py calibration NAME CHECKPOINT [--zoom] [--weights raw|ema]
    python studies/results/calibration-warbirds20/measure.py unknown NAME CHECKPOINT --unseen DIR
    python studies/results/calibration-warbirds20/measure.py figure NAME      # source/reliability-warbirds20.png

``calibration``: copies CHECKPOINT to logs/calibration-warbirds20/NAME/last.pt (the studies' own files stay as they
are), fits its temperature on val with ``fgvc.evaluation.evaluate.calibrate_checkpoint`` (what ``fgvc calibrate`` runs), then
reads test once and writes NAME[-zoom][-raw].json here: top-1, ECE and Brier (95 % bootstrap intervals) before and
after, the paired ECE difference, and a CSV of each test photo's top-1 probability before and after.

``unknown``: the model trained without some types; its val photos fit the temperature and each score's threshold
(95 % kept), the training split the Mahalanobis statistics; test photos of the known types are the in-distribution
set, those of the unseen types (DIR/test/<type>/) and scikit-image's non-aircraft photos the unknowns. Writes
NAME-unknown.json (AUROC, FPR at 95 % recall, shares below the val threshold) and the per-photo scores as CSV.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from fgvc.evaluation import analysis, metrics, statistics
from fgvc.models import calibration
from fgvc.core.defaults import UNKNOWN_SCORES
from fgvc.data.datasets import keep_samples, per_class_subset
from fgvc.data.kinds import build_split
from fgvc.data.images import load_image
from fgvc.evaluation.evaluate import calibrate_checkpoint
from fgvc.models.predictor import Outputs, Predictor

HERE = Path(__file__).resolve().parent
WORK = Path("logs/calibration-warbirds20")
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text")


def _copy(name: str, checkpoint: str) -> Path:
    copy = WORK / name / "last.pt"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkpoint, copy)
    return copy


def _split_outputs(predictor: Predictor, split: str, features: bool = False, subset: bool = False
                   ) -> tuple[Outputs, np.ndarray, list[str]]:
    dataset = build_split(predictor.cfg, split, predictor.dataset_transform)
    if subset and predictor.cfg.train_per_class is not None:
        keep_samples(dataset, per_class_subset(dataset.targets, predictor.cfg.train_per_class, predictor.cfg.seed))
    outputs, targets = predictor.loader_outputs(predictor.loader(dataset, 2), features=features)
    return outputs, targets, [path for path, _ in dataset.samples]


def _summary(probabilities: np.ndarray, targets: np.ndarray, classes: list[str]) -> dict:
    report = analysis.summarize(probabilities, targets, classes, None, seed=0)
    return {key: report[key] for key in ("top1", "top1_ci", "ece", "ece_ci", "brier", "brier_ci")} | {
        "mean_confidence": float(probabilities.max(axis=1).mean())}


def measure_calibration(name: str, checkpoint: str, zoom: bool, weights: str | None) -> Path:
    copy = _copy(name, checkpoint)
    setting, fitted = calibrate_checkpoint(copy, "val", zoom=zoom, weights=weights, score=None)
    predictor = Predictor.from_checkpoint(copy, zoom=zoom, weights=weights, calibrated=False, unknown=False)
    outputs, targets, files = _split_outputs(predictor, "test")
    log_probs = calibration.log_probabilities(outputs.logits)
    before = calibration.calibrated(log_probs, 1.0)
    after = calibration.calibrated(log_probs, fitted.temperature)
    assert (before.argmax(axis=1) == after.argmax(axis=1)).all()
    right = before.argmax(axis=1) == targets
    record = {"checkpoint": checkpoint, "setting": setting, "temperature": fitted.temperature, "val": fitted.facts,
              "test_before": _summary(before, targets, predictor.classes),
              "test_after": _summary(after, targets, predictor.classes),
              "test_paired_ece": statistics.paired_ece(before.max(axis=1), right, after.max(axis=1), right),
              "test_nll_before": calibration.negative_log_likelihood(log_probs, targets, 1.0),
              "test_nll_after": calibration.negative_log_likelihood(log_probs, targets, fitted.temperature)}
    stem = name + ("-zoom" if zoom else "") + (f"-{weights}" if weights else "")
    (HERE / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    with (HERE / f"{stem}-test.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "true", "predicted", "probability_before", "probability_after"])
        writer.writerows([Path(file).name, predictor.classes[t], predictor.classes[p], f"{b:.6f}", f"{a:.6f}"]
                         for file, t, p, b, a in zip(files, targets, before.argmax(axis=1), before.max(axis=1),
                                                     after.max(axis=1), strict=True))
    return HERE / f"{stem}.json"


def _skimage_photos() -> list[Image.Image]:
    from skimage import data

    photos = []
    for name in SKIMAGE_PHOTOS:
        pixels = getattr(data, name)()
        photos.append(Image.fromarray(pixels).convert("RGB"))
    return photos


def measure_unknown(name: str, checkpoint: str, unseen: str, scores: tuple[str, ...]) -> Path:
    copy = _copy(name, checkpoint)
    predictor = Predictor.from_checkpoint(copy, calibrated=False, unknown=False)
    val, val_targets, _ = _split_outputs(predictor, "val", features=True)
    stats = None
    if "mahalanobis" in scores:
        train, train_targets, _ = _split_outputs(predictor, predictor.cfg.train_split, features=True, subset=True)
        stats = calibration.fit_mahalanobis(train.features.numpy(), train_targets, len(predictor.classes))
    test, _, test_files = _split_outputs(predictor, "test", features=True)
    unseen_files = sorted((Path(unseen) / "test").glob("*/*"))  # its type folders are links, which rglob skips
    unseen_out = predictor.outputs([load_image(path) for path in unseen_files], features=True)
    skimage_out = predictor.outputs(_skimage_photos(), features=True)
    temperature = calibration.fit_temperature(calibration.log_probabilities(val.logits), val_targets)
    record: dict = {"checkpoint": checkpoint, "temperature": temperature, "images": {
        "val": len(val_targets), "test_known": len(test_files),
        "test_unseen": len(unseen_files), "skimage": len(SKIMAGE_PHOTOS)}, "scores": {}}
    rows = {}
    for score in scores:
        def scored(outputs: Outputs, score: str = score) -> np.ndarray:
            return calibration.known_scores(score, outputs.logits, temperature, outputs.features, stats)

        threshold = calibration.keep_threshold(scored(val))
        known, others, photos = scored(test), scored(unseen_out), scored(skimage_out)
        record["scores"][score] = {
            "threshold_on_val": threshold, "test_known_kept": float((known >= threshold).mean()),
            "unseen": {"auroc": calibration.auroc(known, others),
                       "fpr_at_95_recall": calibration.false_positive_rate(known, others),
                       "kept_by_val_threshold": float((others >= threshold).mean())},
            "skimage": {"auroc": calibration.auroc(known, photos),
                        "fpr_at_95_recall": calibration.false_positive_rate(known, photos),
                        "kept_by_val_threshold": float((photos >= threshold).mean())}}
        rows[score] = np.concatenate([known, others, photos])
    (HERE / f"{name}-unknown.json").write_text(json.dumps(record, indent=2) + "\n")
    sets = [("test_known", Path(file).parent.name, Path(file).name) for file in test_files]
    sets += [("test_unseen", path.parent.name, path.name) for path in unseen_files]
    sets += [("skimage", "", photo) for photo in SKIMAGE_PHOTOS]
    with (HERE / f"{name}-unknown-scores.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["set", "type", "file", *scores])
        writer.writerows([*entry, *(f"{rows[score][i]:.6g}" for score in scores)]
                         for i, entry in enumerate(sets))
    return HERE / f"{name}-unknown.json"


def reliability_figure(name: str, out: Path = Path("source/reliability-warbirds20.png")) -> Path:
    """Before and after side by side: ``fgvc.evaluation.plots.reliability_figure`` (what ``fgvc evaluate`` draws) of the test
    predictions recorded in NAME-test.csv."""
    from fgvc.evaluation import plots

    with (HERE / f"{name}-test.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    right = np.array([row["true"] == row["predicted"] for row in rows])
    panels = []
    for column in ("probability_before", "probability_after"):
        confidence = np.array([float(row[column]) for row in rows])
        figure = plots.reliability_figure(metrics.reliability_bins(confidence, right),
                                          metrics.expected_calibration_error(confidence, right))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
        panels.append(Image.open(buffer).convert("RGB"))
    joined = Image.new("RGB", (sum(panel.width for panel in panels), max(panel.height for panel in panels)), "white")
    joined.paste(panels[0], (0, 0))
    joined.paste(panels[1], (panels[0].width, 0))
    joined.save(out, optimize=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("calibration", "unknown", "figure"))
    parser.add_argument("name")
    parser.add_argument("checkpoint", nargs="?")
    parser.add_argument("--zoom", action="store_true")
    parser.add_argument("--weights", choices=("raw", "ema"))
    parser.add_argument("--unseen", help="the held-out types' imagefolder (its test/ is read)")
    parser.add_argument("--scores", nargs="+", default=list(UNKNOWN_SCORES), choices=UNKNOWN_SCORES)
    args = parser.parse_args()
    if args.what == "calibration":
        print(f"wrote {measure_calibration(args.name, args.checkpoint, args.zoom, args.weights)}")
    elif args.what == "unknown":
        print(f"wrote {measure_unknown(args.name, args.checkpoint, args.unseen, tuple(args.scores))}")
    else:
        print(f"wrote {reliability_figure(args.name)}")


if __name__ == "__main__":
    main()
