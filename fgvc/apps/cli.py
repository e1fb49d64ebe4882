"""The ``fgvc`` command line: thin wrappers over the package.

    fgvc synth --out data/synthetic                 # offline dataset in the FGVC-Aircraft layout
    fgvc synth --out data/synthetic --difficulty hard   # variants of a family differ only by a tail, at times hidden
    fgvc download --data-root data                  # the real FGVC-Aircraft (2.6 GB)
    fgvc train --preset b4                          # fine-tune EfficientNet-B4
    fgvc train --preset demo --epochs 3             # minutes on a CPU
    fgvc train --config my.yaml --lr 0.01           # preset < config file < flags
    fgvc train --resume logs/<run>/last.pt          # continue an interrupted run
    fgvc train --resume logs/<run>/last.pt --epochs 80   # ...and train longer
    fgvc status logs/<run>                          # exit status 0 once finished, 75 if a signal stopped it, 1 if not
    torchrun --nproc_per_node=4 -m fgvc train --preset b4   # 4 GPUs, one run
    fgvc check-data --data-root data                # list annotation lines and images that are bad
    fgvc split photos                               # photos/<class>/*.jpg -> photos/splits.csv, copies kept together
    fgvc prepare --data-root data --out data/prepared-448 --img-size 448   # once: faster training input
    fgvc audit --dataset imagefolder --data-root ROOT --out audit   # copies across splits, doubtful labels, ...
    fgvc evaluate --checkpoint logs/<run>/last.pt --split test
    fgvc compare logs/<run-a> logs/<run-b>          # is B better than A? paired test on the same images
    fgvc study studies/warbirds20.yaml --data-root DATA --out logs/study   # recipes compared, table + figure
    fgvc evaluate --checkpoint logs/<run>/last.pt --weights raw   # not the EMA weights the run kept
    fgvc evaluate --checkpoint logs/<run>/last.pt --zoom          # a second look, zoomed on the object
    fgvc calibrate --checkpoint logs/<run>/last.pt    # temperature and unknown-type threshold, fitted on val
    fgvc predict --checkpoint logs/<run>/last.pt photo.jpg --topk 5
    fgvc export --checkpoint logs/<run>/last.pt --onnx model.onnx   # ONNX, dynamic batch size
    fgvc predict --checkpoint model.onnx photos/    # the same predictions, run by ONNX Runtime
    fgvc gradcam --checkpoint logs/<run>/last.pt photo.jpg --out cams/
    fgvc bench data                                 # input pipeline images/s against today's baseline
    fgvc serve --checkpoint logs/<run>/last.pt      # a web demo on http://127.0.0.1:7860
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fgvc.core.config import (
    AUDIT_FOLDS,
    AUDIT_MAX_ASPECT,
    AUDIT_MIN_SIDE,
    AUDIT_SIMILARITY,
    CAM_BUDGET_S,
    CAM_METHODS,
    DATASETS,
    DEVICES,
    DIFFICULTIES,
    EVAL_VIEWS,
    MAX_UPLOAD_MB,
    NEAR_BITS,
    PER_CHANNEL_METHODS,
    PRECISIONS,
    PRESETS,
    QUEUE_SIZE,
    SPLIT_FILE,
    TEST_SHARE,
    UNKNOWN_KEEP,
    UNKNOWN_SCORE,
    UNKNOWN_SCORES,
    VAL_SHARE,
    WEIGHTS,
    ZOOM_PAD,
    ZOOM_THRESHOLD,
    TrainConfig,
    flag,
    make_config,
)
from fgvc.core.errors import ConfigError, FgvcError, Preempted

if TYPE_CHECKING:
    from fgvc.models.zoom import Zoom

REQUEUE_EXIT = 75  # EX_TEMPFAIL: a temporary failure, try again (requeue and resume); also fgvc status's for it
UNFINISHED_EXIT = 1  # fgvc status: the run has epochs (or its start) left to train, and no signal stopped it

BENCHMARKS = ("data", "train", "predict")
FLAG_TYPES = {"int": int, "float": float, "str": str}


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is invalid: expected WIDTHxHEIGHT, e.g. 160x140") from None
    return width, height


def _shared_flags() -> dict[str, argparse.ArgumentParser]:
    """The flags several subcommands share, each declared once, as argparse parents (``parents=[...]``): the
    checkpoint, the photos to read, the view, the weights, mirror TTA, the zoom (--zoom/--no-zoom with its
    settings, or the settings alone: ``fgvc.models.zoom.Zoom``'s) and the device."""
    shared = {name: argparse.ArgumentParser(add_help=False)
              for name in ("checkpoint", "photos", "view", "weights", "tta", "zoom_settings", "device")}
    shared["checkpoint"].add_argument("--checkpoint", required=True, help="a run's last.pt or best.pt")
    shared["photos"].add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders searched for "
                                  "images")
    shared["photos"].add_argument(
        "--crop-banner", action=argparse.BooleanOptionalAction, default=None,
        help="cut the run's FGVC-Aircraft banner (its banner_px rows) from every image; --no-crop-banner: from none "
        "(default: from the dataset's own photos, those in fgvc-aircraft-2013b/data/images/ and not a fgvc "
        "prepare'd copy, when the run trained on FGVC-Aircraft; a line on stderr says how many)")
    shared["view"].add_argument("--view", choices=EVAL_VIEWS, help="what the network sees of each photo: squash, "
                                "whole or crop (default: the run's eval_view)")
    shared["weights"].add_argument("--weights", choices=WEIGHTS, help="raw: the trained weights; ema: their moving "
                                   "average, kept by a run with --ema-decay (default: ema when the checkpoint has it)")
    shared["tta"].add_argument("--tta", action="store_true", help="average the predictions of each image and its "
                               "mirror")
    shared["zoom_settings"].add_argument("--zoom-threshold", type=float, metavar="T", help=f"the box holds the map's "
                                         f"values of at least T x its peak (default {ZOOM_THRESHOLD})")
    shared["zoom_settings"].add_argument("--zoom-pad", type=float, metavar="P", help=f"the box grows by P x its "
                                         f"width (height) on each side (default {ZOOM_PAD})")
    shared["zoom"] = argparse.ArgumentParser(add_help=False, parents=[shared["zoom_settings"]])
    shared["zoom"].add_argument("--zoom", action=argparse.BooleanOptionalAction, default=None,
                                help="look twice: also classify the box around where the network found its top "
                                "class (its activation map), cut from the photo at full resolution, and average the "
                                "two views' logits (default: the run's eval_zoom, on in the cpu preset)")
    shared["device"].add_argument("--device", default="auto", choices=DEVICES)
    shared["calibration"] = argparse.ArgumentParser(add_help=False)
    shared["calibration"].add_argument(
        "--calibrated", action=argparse.BooleanOptionalAction, default=None,
        help="divide the logits by the temperature fgvc calibrate fitted for these settings (default: where the "
        "checkpoint holds one; --calibrated requires it)")
    shared["calibration"].add_argument(
        "--unknown", action=argparse.BooleanOptionalAction, default=None,
        help="answer 'unknown' for a photo whose score lies below the threshold fgvc calibrate fitted (default: "
        "where the checkpoint holds one; --unknown requires it)")
    return shared


def _zoom_settings(args: argparse.Namespace) -> Zoom:
    """The ``Zoom`` of --zoom-threshold and --zoom-pad (the defaults where unset)."""
    from fgvc.models.zoom import Zoom

    return Zoom(ZOOM_THRESHOLD if args.zoom_threshold is None else args.zoom_threshold,
                ZOOM_PAD if args.zoom_pad is None else args.zoom_pad)


def _zoom(args: argparse.Namespace) -> Zoom | bool | None:
    """--zoom with its settings (--zoom-threshold or --zoom-pad alone imply it), --no-zoom (``False``), or
    ``None``: the run's own ``eval_zoom``. Settings with --no-zoom are refused."""
    given = [name for name in ("zoom_threshold", "zoom_pad") if getattr(args, name) is not None]
    if args.zoom is False and given:
        raise ConfigError(f"{flag(given[0])} {getattr(args, given[0])} has no effect with --no-zoom: expected "
                          f"--zoom, or no {flag(given[0])}")
    return _zoom_settings(args) if args.zoom or given else args.zoom


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field (``img_size`` -> ``--img-size``), with the help text kept beside the
    field; every default is ``None``, so an unset flag keeps the preset's (or config file's) value."""
    for item in dataclasses.fields(TrainConfig):
        if item.name == "preset":
            continue
        kind = str(item.type).split(" | ")[0]
        choices, help_text = item.metadata["choices"], item.metadata["help"]
        if kind == "bool":
            parser.add_argument(flag(item.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            metavar = None if choices is None or len(choices) <= 8 else "NAME"
            parser.add_argument(flag(item.name), type=FLAG_TYPES[kind], choices=choices, metavar=metavar,
                                help=help_text)


def _add_data(sub: argparse._SubParsersAction) -> None:
    """fgvc synth, download, check-data and prepare: the datasets."""
    p = sub.add_parser("synth", help="write a synthetic dataset in the FGVC-Aircraft layout")
    p.add_argument("--out", required=True, help="folder to write fgvc-aircraft-2013b/ into")
    p.add_argument("--classes", type=int, default=12, help="number of variants (default 12)")
    p.add_argument("--per-class", type=int, default=30, help="images per variant (default 30)")
    p.add_argument("--size", type=_size, default=(160, 140), help="image size WxH including the 20-px banner")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", choices=DIFFICULTIES, default="easy", help="easy: each variant its own engines, "
                   "tail and length; hard: the variants of a family differ only by their tail, which a cloud hides in "
                   "some images (default easy)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("download", help="download FGVC-Aircraft 2013b (2.6 GB)")
    p.add_argument("--data-root", default="data", help="folder to unpack into (default data)")
    p.set_defaults(func=_download)

    p = sub.add_parser("check-data", help="decode every image of a dataset and list the bad files",
                       description="Check annotation files and decode every image; exit status 1 if any is bad.")
    p.add_argument("--data-root", default="data", help="folder holding fgvc-aircraft-2013b/ (or an imagefolder's "
                   "class folders and splits.csv, or its split folders; default data)")
    p.add_argument("--dataset", default="fgvc-aircraft", choices=DATASETS)
    p.set_defaults(func=_check_data)

    p = sub.add_parser("prepare", help="store FGVC-Aircraft banner-cropped and shrunk for faster training",
                       description="Write a copy of FGVC-Aircraft for training at --img-size and below: every "
                       "image banner-cropped, its short side shrunk to 1.15 x the size. Train on it with "
                       "--data-root OUT; the original stays as it is.")
    p.add_argument("--data-root", default="data", help="folder holding the original fgvc-aircraft-2013b/")
    p.add_argument("--out", required=True, help="folder for the prepared copy")
    p.add_argument("--img-size", type=int, default=448, help="the largest training size it serves (default 448)")
    p.add_argument("--banner-px", type=int, default=20, help="rows of banner to cut (default 20)")
    p.set_defaults(func=_prepare)


def _add_audit(sub: argparse._SubParsersAction, shared: dict[str, argparse.ArgumentParser]) -> None:
    """fgvc audit: what is wrong with a data set."""
    p = sub.add_parser("audit", help="find copies across splits and under two labels, doubtful labels, bad files",
                       description="Audit a data set: exact and near copies across splits (leaks) and under two "
                       "labels in one split (conflicts), labels a classifier on pretrained features doubts, files "
                       "that do not decode, tiny or stretched photos, the classes of each split. Writes OUT/audit.md, "
                       "audit.html (a contact sheet), audit.json and exclude.txt (suggested, for --exclude); no photo "
                       "is moved or deleted.", parents=[shared["device"]])
    p.add_argument("--data-root", default="data", help="folder holding fgvc-aircraft-2013b/ (or the imagefolder's "
                   "splits; default data)")
    p.add_argument("--dataset", default="fgvc-aircraft", choices=DATASETS)
    p.add_argument("--out", required=True, help="folder for the report (and the cached embeddings)")
    p.add_argument("--splits", nargs="+", metavar="SPLIT", help="the splits to audit (default: all; FGVC-Aircraft: "
                   "train val test)")
    p.add_argument("--near-bits", type=int, default=NEAR_BITS, help=f"near copies: 64-bit dHashes that differ in "
                   f"at most this many bits (default {NEAR_BITS}, as fgvc split's)")
    p.add_argument("--min-similarity", type=float, default=AUDIT_SIMILARITY, help=f"near copies: the cosine "
                   f"similarity of two photos' pretrained features is at least this (default {AUDIT_SIMILARITY:g}; "
                   f"finds crops, recolours and mirror images too)")
    p.add_argument("--min-side", type=int, default=AUDIT_MIN_SIDE, help=f"flag photos whose short side is under "
                   f"this many pixels (default {AUDIT_MIN_SIDE})")
    p.add_argument("--max-aspect", type=float, default=AUDIT_MAX_ASPECT, help=f"flag photos whose long side is more "
                   f"than this times the short one (default {AUDIT_MAX_ASPECT:g})")
    p.add_argument("--folds", type=int, default=AUDIT_FOLDS, help=f"folds of the out-of-fold probabilities behind "
                   f"the doubtful labels (default {AUDIT_FOLDS})")
    p.add_argument("--top", type=int, default=50, help="doubtful labels shown in audit.md and audit.html "
                   "(default 50; all are in audit.json)")
    p.add_argument("--batch-size", type=int, default=32, help="photos per forward pass of the backbone (default 32)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding photos (default 0)")
    p.set_defaults(func=_audit)


def _add_split(sub: argparse._SubParsersAction) -> None:
    """fgvc split: a flat folder of photos into train, val and test, copies kept together."""
    p = sub.add_parser("split", help="split a flat folder ROOT/<class>/<image> into train, val and test (a file)",
                       description=f"Write ROOT/{SPLIT_FILE} (path,class,split for each photo), seeded and "
                       "stratified by class, for `fgvc train --dataset imagefolder --data-root ROOT`. Exact and near "
                       "duplicates land in the same split. Nothing is copied or moved, and an existing split file is "
                       "never rewritten silently: --update gives only new photos a split, --force draws afresh.")
    p.add_argument("root", metavar="ROOT", help="folder of class folders of photos")
    p.add_argument("--val", type=float, help=f"share of each class for val (default {VAL_SHARE}; with --update, the "
                   f"file's own)")
    p.add_argument("--test", type=float, help=f"share of each class for test (default {TEST_SHARE}; with --update, "
                   f"the file's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0): the same seed, photos and "
                   "flags give the same file")
    p.add_argument("--near-bits", type=int, default=NEAR_BITS, help=f"near duplicates: photos whose 64-bit dHashes "
                   f"differ in at most this many bits (default {NEAR_BITS}: resized and recompressed copies, and some "
                   f"look-alikes; 0: exact copies and identical hashes only)")
    p.add_argument("--exclude", metavar="FILE", help="exclusion list (fgvc audit's exclude.txt): its photos are "
                   "listed as excluded, in no split")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--update", action="store_true", help="keep every listed photo's split; give new photos one "
                      "(a near copy of a listed photo joins its split); drop the lines of photos that are gone")
    mode.add_argument("--force", action="store_true", help="draw every split afresh over an existing file (runs "
                      "trained on the old split are no longer comparable)")
    p.add_argument("--threads", type=int, default=4, help="photos hashed at a time (default 4)")
    p.set_defaults(func=_split)


def _add_train(sub: argparse._SubParsersAction) -> None:
    """fgvc train and fgvc status."""
    p = sub.add_parser("train", help="fine-tune an EfficientNet (or resume a run)",
                       description="Train with a preset, then a --config file, then flags, each overriding the one "
                       "before. With --resume the run's own config is used; flags that can safely change on "
                       "resume (--device, --workers, --data-root, a longer --epochs) are honoured, others refused.")
    p.add_argument("--preset", choices=sorted(PRESETS), help="b4: the FGVC-Aircraft recipe on a GPU; cpu: pretrained "
                   "Lite0 for a machine without a GPU; demo: synthetic data on a CPU in minutes, offline (default: "
                   "the config file's, else b4)")
    p.add_argument("--config", metavar="FILE", help="a JSON or YAML file of config fields (a run's config.json is one)")
    add_config_flags(p)
    p.add_argument("--resume", metavar="FILE", help="continue the run of this last.pt at its next epoch")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs of this call; continue later "
                   "with --resume (for cluster jobs with a time limit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = sub.add_parser("status", help="has a run finished? exit status 0 if so, 75 or 1 if it has epochs left",
                       description="Say where a run folder stands. Exit status 0: its last epoch is trained and its "
                       f"final analysis written; {REQUEUE_EXIT}: unfinished, and its last session was stopped by "
                       "SIGTERM or SIGUSR1 (a scheduler's preemption: requeue the job to resume it), whichever "
                       f"process got the signal; {UNFINISHED_EXIT}: unfinished otherwise (it failed, was interrupted, "
                       "stopped after --stop-after, or is still running; resume it, or start it again if no epoch "
                       "finished); 2: no run there, or a run whose final analysis is missing.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (fgvc train --run-dir)")
    p.set_defaults(func=_status)


def _add_evaluation(sub: argparse._SubParsersAction, shared: dict[str, argparse.ArgumentParser]) -> None:
    """fgvc evaluate, compare and study: how good a run is, and against which."""
    p = sub.add_parser("evaluate", help="full evaluation of a checkpoint: metrics, per-class, confusions",
                       parents=[shared[name] for name in ("checkpoint", "view", "weights", "tta", "zoom", "device",
                                                          "calibration")])
    p.add_argument("--data-root", help="dataset folder (default: the one the run trained on)")
    p.add_argument("--split", default="test", metavar="SPLIT",
                   help="split to evaluate: train, val, trainval, test, or an imagefolder split (default test)")
    p.add_argument("--img-size", type=int, help="evaluation resolution in pixels (default: the run's eval_img_size, "
                   "else its img_size)")
    p.add_argument("--out", help="folder for the report (default: eval-<split>/ beside the checkpoint; -zoom "
                   "added with --zoom)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("calibrate", help="fit a temperature and an unknown-type threshold on val, into the checkpoint",
                       description="Fit, on a held-out split (val; never test), the temperature that makes the "
                       "probabilities calibrated (lowest negative log-likelihood) and the threshold of an unknown-type "
                       "score below which a photo is 'none of the types I know', for the inference setting the flags "
                       "give (weights, view, size, --tta, --zoom). Both go into the checkpoint, which predict, "
                       "evaluate, serve and export then use; calibration.json beside it lists them.",
                       parents=[shared[name] for name in ("checkpoint", "view", "weights", "tta", "zoom", "device")])
    p.add_argument("--data-root", help="dataset folder (default: the one the run trained on)")
    p.add_argument("--split", default="val", metavar="SPLIT", help="the held-out split to fit on (default val; "
                   "test is refused)")
    p.add_argument("--img-size", type=int, help="evaluation resolution in pixels (default: the run's)")
    p.add_argument("--unknown-score", default=UNKNOWN_SCORE, choices=(*UNKNOWN_SCORES, "none"),
                   help=f"the unknown-type score: msp (top probability), energy (T x logsumexp(logits / T)), "
                   f"mahalanobis (distance of the pooled features to the nearest class, fitted on a pass over the "
                   f"training split), or none (default {UNKNOWN_SCORE})")
    p.add_argument("--keep", type=float, default=UNKNOWN_KEEP, metavar="SHARE", help=f"the share of the split's "
                   f"photos the threshold keeps as known (default {UNKNOWN_KEEP})")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("compare", help="is run B better than run A? paired test on the same images",
                       description="Compare two evaluations of the same images image by image: the differences "
                       "(B - A) in top-1 and mean per-class accuracy with paired bootstrap 95 % intervals, McNemar's "
                       "exact test, the classes that gained and lost most, and a verdict. Prints the report and "
                       "writes it as JSON and text. Evaluations of different splits, classes or images are refused.")
    for name in ("a", "b"):
        p.add_argument(name, metavar=name.upper(), help=f"run {name.upper()}: a run folder (its "
                       f"eval-<eval_split>/ is read) or an evaluation folder such as <run>/eval-test-tta")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdict (default 0.05)")
    p.add_argument("--top", type=int, default=5, help="classes listed as gained and as lost (default 5)")
    p.add_argument("--out", metavar="FILE", help="the JSON report; the text goes beside it as .txt (default: "
                   "compare-vs-<A's run>-<A's eval folder>.json in B's evaluation folder)")
    p.set_defaults(func=_compare)

    p = sub.add_parser("study", help="train a list of recipes on one dataset and compare each with the first",
                       description="Run the recipes of a study file (YAML: `base:` config fields on a preset, "
                       "`recipes:` name -> fields changed; the first is the reference; `evaluate: NAME` re-evaluates "
                       "a trained recipe with img_size, tta, view or weights; optional `seeds: [0, 1, 2]` runs every "
                       "recipe once per seed into OUT/seed-<k>/<name>/). Each recipe trains into OUT/<name>/ "
                       "and is compared with the reference image by image (paired intervals, McNemar's test; with "
                       "seeds, within each seed, then averaged across them). "
                       "Writes OUT/study.md (the table), OUT/study.png (top-1 against wall-clock minutes) and "
                       "OUT/study.json. Run it again after a stop: finished recipes are skipped, an unfinished "
                       "one resumes from its last.pt.")
    p.add_argument("study", metavar="STUDY.yaml", help="the study file (studies/ holds the project's)")
    p.add_argument("--data-root", required=True, help="the dataset every recipe trains and evaluates on")
    p.add_argument("--out", required=True, help="the study folder: one subfolder per recipe, and the table")
    p.add_argument("--device", choices=DEVICES, help="where to train (default: the base's device)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the comparisons (default 0.05)")
    p.set_defaults(func=_study)

    p = sub.add_parser("learning-curve", help="how many photos do I need? one recipe trained on N photos per class, "
                       "for a few N", description="Train one recipe (a preset, a --config file and config flags, as "
                       "fgvc train takes them) on --per-class N photos of each class (a seeded, stratified subset of "
                       "the training split; the evaluation split stays whole) and on all of them, as a study written "
                       "to OUT/curve.yaml: each point is compared with the smallest on the same images. Writes "
                       "OUT/learning_curve.md, OUT/learning_curve.png and the study's files; run it again after a "
                       "stop to continue.")
    p.add_argument("--preset", choices=sorted(PRESETS), help="the recipe's preset (default: the config file's, "
                   "else cpu)")
    p.add_argument("--config", metavar="FILE", help="a JSON or YAML file of config fields")
    p.add_argument("--per-class", type=int, nargs="+", required=True, metavar="N",
                   help="photos per class of each point, e.g. 10 25 50 (all of them is always a point)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="train each point once per seed (two or "
                   "more: mean and spread; default: the recipe's seed)")
    p.add_argument("--out", required=True, help="the curve's folder: one run folder per point, and the table")
    add_config_flags(p)
    p.set_defaults(func=_learning_curve)


def _add_inference(sub: argparse._SubParsersAction, shared: dict[str, argparse.ArgumentParser]) -> None:
    """fgvc predict, export, gradcam and serve: a trained checkpoint put to use."""
    p = sub.add_parser("predict", help="top-k variants of images (files or folders)",
                       description="--checkpoint may also be an .onnx file from fgvc export (run with ONNX Runtime "
                       "on the CPU).", parents=[shared[name] for name in ("checkpoint", "photos", "view", "weights",
                                                                           "tta", "zoom", "device", "calibration")])
    p.add_argument("--topk", type=int, default=5)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON instead of text")
    output.add_argument("--csv", action="store_true", help="print CSV: file, rank, class, probability, family, "
                        "manufacturer")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default: the run's batch size)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="autocast precision (default auto: "
                   "bf16 or fp16 on GPUs, fp32 on the CPU)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("export", help="write a checkpoint's model as ONNX, for fgvc predict or other runtimes",
                       description="Export with a dynamic batch size, height and width; the file's metadata holds "
                       "the class names, their hierarchy and the preprocessing (size, normalisation, view).",
                       parents=[shared["checkpoint"]])
    p.add_argument("--onnx", required=True, metavar="FILE", help="the ONNX file to write")
    p.set_defaults(func=_export)

    p = sub.add_parser("gradcam", help="Grad-CAM overlays of images, one PNG each",
                       parents=[shared[name] for name in ("checkpoint", "photos", "view", "weights", "device")])
    p.add_argument("--out", required=True, help="folder for the overlay PNGs (sub-folders mirror the inputs')")
    p.add_argument("--method", default="gradcam", choices=CAM_METHODS, help="CAM method (default gradcam)")
    p.add_argument("--class", dest="class_name", metavar="NAME", help="explain this class (default: the prediction)")
    p.set_defaults(func=_gradcam)

    p = sub.add_parser("serve", help="a web demo of a checkpoint: top-5 and Grad-CAM of a photo you drop in",
                       parents=[shared[name] for name in ("checkpoint", "view", "zoom_settings", "device",
                                                          "calibration")])
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                   "only); 0.0.0.0 lets anyone who can reach this machine use the demo, with no password")
    p.add_argument("--examples", nargs="+", metavar="IMAGE", default=[],
                   help="example images (files, or folders searched for images) to pick from")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, metavar="MB",
                   help=f"refuse uploads over this size (default {MAX_UPLOAD_MB:g})")
    p.add_argument("--cam-budget", type=float, default=CAM_BUDGET_S, metavar="SECONDS",
                   help=f"refuse {' and '.join(PER_CHANNEL_METHODS)} (one forward pass per channel) when their "
                   f"measured estimate exceeds this (default {CAM_BUDGET_S:g})")
    p.add_argument("--queue-size", type=int, default=QUEUE_SIZE, metavar="N",
                   help=f"clicks that may wait while one photo is worked on; more are told the queue is full "
                   f"(default {QUEUE_SIZE})")
    p.set_defaults(func=_serve)


def _add_tools(sub: argparse._SubParsersAction, shared: dict[str, argparse.ArgumentParser]) -> None:
    """fgvc figures and bench: the README's figures and the speed benchmarks."""
    p = sub.add_parser("figures", help="regenerate the README figures and the cover from a run folder")
    p.add_argument("--run", required=True, help="run folder (make figures uses a demo run)")
    p.add_argument("--out", default="source", help="folder for the figures (default source)")
    p.add_argument("--cover", default="cover.jpg", help="cover image path (default cover.jpg)")
    p.set_defaults(func=_figures)

    p = sub.add_parser("bench", help="benchmarks: images/s against a baseline measured in the same run",
                       parents=[shared["device"]])
    p.add_argument("benchmark", choices=BENCHMARKS, help="data: the training input pipeline; train: one "
                   "optimisation step; predict: inference and ONNX Runtime")
    p.add_argument("--img-size", type=int, help="input size (default: 448 for data, per benchmark otherwise)")
    p.add_argument("--batch-size", type=int, help="images per batch (default: per benchmark)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats after the warm-up; rows give the median")
    p.add_argument("--workdir", default="data/bench", help="folder for the generated images (kept and reused)")
    p.add_argument("--arch", action="append", help="architecture(s) to measure, repeatable (default: per benchmark)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, help="train: also measure torch.compile "
                   "(default: on GPUs only; compiling B4 on a CPU takes minutes)")
    p.add_argument("--quick", action="store_true", help="tiny inputs, to check that the benchmark runs")
    p.add_argument("--out", help="also append the table to this Markdown file")
    p.set_defaults(func=_bench)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="fgvc", description="Fine-grained aircraft classification with "
                                     "EfficientNet: synthesise or download data, train, evaluate, predict.")
    sub = parser.add_subparsers(dest="command", required=True)
    shared = _shared_flags()

    _add_data(sub)
    _add_split(sub)
    _add_audit(sub, shared)
    _add_train(sub)
    _add_evaluation(sub, shared)
    _add_inference(sub, shared)
    _add_tools(sub, shared)
    return parser


def _config_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The config fields set on the command line."""
    return {item.name: getattr(args, item.name) for item in dataclasses.fields(TrainConfig)
            if item.name != "preset" and getattr(args, item.name) is not None}


def _train(args: argparse.Namespace) -> int:
    from fgvc.core import distributed
    from fgvc.training.engine import fit

    options = {"progress": not args.no_progress, "stop_after": args.stop_after}
    try:
        if args.resume:
            if args.preset or args.config:
                raise ConfigError(f"--{'preset' if args.preset else 'config'} cannot be used with --resume: the "
                                  f"run keeps its own config")
            run_dir = fit(resume=args.resume, overrides=_config_overrides(args), **options)
        else:
            run_dir = fit(make_config(args.preset, args.config, **_config_overrides(args)), **options)
    finally:
        distributed.shutdown()  # under torchrun: leave the process group
    if distributed.from_environment().primary:
        print(f"run folder: {run_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from fgvc.runs.tracking import run_status, stop_signal

    finished, line = run_status(args.run_dir)
    print(line)
    if finished:
        return 0
    signal_name = stop_signal(args.run_dir)
    if signal_name is None:
        return UNFINISHED_EXIT
    print(f"stopped by {signal_name}: exit status {REQUEUE_EXIT}, requeue the job to resume the run")
    return REQUEUE_EXIT


def _synth(args: argparse.Namespace) -> int:
    from fgvc.data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(args.out, args.classes, args.per_class, args.size, args.seed,
                                     difficulty=args.difficulty)
    print(f"synthetic dataset written to {folder}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from fgvc.data.prepare import download_fgvc

    print(f"FGVC-Aircraft is in {download_fgvc(args.data_root)}")
    return 0


def _split(args: argparse.Namespace) -> int:
    from fgvc.data.split import split_folder

    report = split_folder(args.root, args.val, args.test, args.seed, args.near_bits, args.exclude, args.update,
                          args.force, args.threads)
    counts = ", ".join(f"{split} {count}" for split, count in sorted(report.counts.items()))
    print(f"{report.path}: {counts}; {report.groups} duplicate group(s) of {report.grouped} photos, each in one split")
    if args.update:
        print(f"{report.added} new photo(s) given a split; {len(report.dropped)} line(s) of photos gone dropped"
              + "".join(f"\n  dropped {photo}" for photo in report.dropped))
    if report.spanning:
        print(f"warning: {report.spanning} duplicate group(s) span two splits, as listed before this update: "
              f"`fgvc audit` shows them; --force draws every split afresh")
    return 0


def _check_data(args: argparse.Namespace) -> int:
    from fgvc.data.checks import check_data

    checked, problems = check_data(args.data_root, args.dataset)
    for problem in problems:
        print(problem)
    print(f"{checked} images checked under {args.data_root}: {len(problems)} problem(s)")
    return 1 if problems else 0


def _audit(args: argparse.Namespace) -> int:
    from fgvc.apps.audit import run_audit
    from fgvc.apps.audit_report import write_audit

    audit = run_audit(args.data_root, args.dataset, args.out, args.splits, args.near_bits, args.min_similarity,
                      args.min_side, args.max_aspect, args.folds, args.device, args.batch_size, args.workers)
    paths = write_audit(audit, args.out, args.top)
    print(paths[0].read_text(), end="")
    print(f"\nwritten to {', '.join(str(path) for path in paths)}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from fgvc.data.prepare import prepare_fgvc

    print(f"prepared copy written to {prepare_fgvc(args.data_root, args.out, args.img_size, args.banner_px)}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from fgvc.evaluation.analysis import format_confusions, format_report, format_worst
    from fgvc.evaluation.evaluate import evaluate_checkpoint

    analysis = evaluate_checkpoint(args.checkpoint, args.split, args.data_root, args.device, args.out, args.tta,
                                   args.view, weights=args.weights, img_size=args.img_size, zoom=_zoom(args),
                                   calibrated=args.calibrated, unknown=args.unknown)
    print("\n\n".join([format_report(analysis.report), format_worst(analysis.report),
                        format_confusions(analysis.report)]))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from fgvc.evaluation.evaluate import calibrate_checkpoint, format_calibration

    setting, fitted = calibrate_checkpoint(args.checkpoint, args.split, args.data_root, args.device, args.tta,
                                           args.view, args.weights, args.img_size, _zoom(args),
                                           None if args.unknown_score == "none" else args.unknown_score, args.keep)
    print(format_calibration(setting, fitted))
    print(f"stored in {args.checkpoint} (and {Path(args.checkpoint).parent / 'calibration.json'})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from fgvc.evaluation.compare import compare, format_comparison, write_comparison

    comparison = compare(args.a, args.b, args.alpha)
    print(format_comparison(comparison, args.top))
    print(f"\nwritten to {write_comparison(comparison, args.out, args.top)} (and .txt)")
    return 0


def _study(args: argparse.Namespace) -> int:
    from fgvc.studies.study import run_study

    run_study(args.study, args.data_root, args.out, args.device, args.alpha)
    print((Path(args.out) / "study.md").read_text(), end="")
    print(f"\nwritten to {args.out}/study.md, study.png and study.json")
    return 0


def _learning_curve(args: argparse.Namespace) -> int:
    from fgvc.core.config import read_config_file
    from fgvc.studies.learning_curve import run_learning_curve

    fields = {**(read_config_file(args.config) if args.config else {}), **_config_overrides(args)}
    if fields.pop("run_dir", None) is not None:
        raise ConfigError("--run-dir cannot be used with learning-curve: each point trains into OUT/<point>")
    data_root = fields.pop("data_root", None)
    if data_root is None:
        raise ConfigError("learning-curve needs --data-root: the dataset every point trains and evaluates on")
    preset = args.preset or fields.pop("preset", None) or "cpu"
    run_learning_curve({**fields, "preset": preset}, args.per_class, data_root, args.out, args.seeds)
    print((Path(args.out) / "learning_curve.md").read_text(), end="")
    print(f"\nwritten to {args.out}/learning_curve.md, learning_curve.png and the study's study.md")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fgvc.apps.predict_output import format_predictions, predict_files
    from fgvc.models.predictor import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision,
                                          view=args.view, tta=args.tta, batch_size=args.batch_size,
                                          weights=args.weights, zoom=_zoom(args), calibrated=args.calibrated,
                                          unknown=args.unknown)
    results = predict_files(predictor, args.images, args.topk, args.crop_banner)
    for result in results:
        if "error" in result:
            print(f"fgvc: error: {result['error']}", file=sys.stderr)
    sys.stdout.write(format_predictions(results, "json" if args.json else "csv" if args.csv else "text",
                                        zoom=predictor.zoom is not None, unknown=predictor.unknown_check is not None))
    return 1 if any("error" in r for r in results) else 0


def _export(args: argparse.Namespace) -> int:
    from fgvc.models.export import export_onnx

    print(f"wrote {export_onnx(args.checkpoint, args.onnx)}")
    return 0


def _gradcam(args: argparse.Namespace) -> int:
    from fgvc.apps.cam_files import write_overlays

    results = write_overlays(args.checkpoint, args.images, args.out, args.method, args.class_name,
                             args.crop_banner, args.device, args.view, args.weights)
    for result in results:
        if "error" in result:
            print(f"fgvc: error: {result['error']}", file=sys.stderr)
        else:
            print(f"{result['overlay']}: {args.method} for {result['explained']} "
                  f"(predicted {result['predicted']}, {100 * result['probability']:.1f}%)")
    return 1 if any("error" in r for r in results) else 0


def _serve(args: argparse.Namespace) -> int:
    from fgvc.apps.serve import serve

    serve(args.checkpoint, args.host, args.port, args.examples, args.device, args.view, _zoom_settings(args),
          args.max_upload_mb, args.cam_budget, args.queue_size, args.calibrated, args.unknown)
    return 0


def _figures(args: argparse.Namespace) -> int:
    from fgvc.apps.figures import write_figures

    for path in write_figures(args.run, args.out, args.cover):
        print(f"wrote {path}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import importlib

    run = importlib.import_module(f"fgvc.apps.benchmarks.{args.benchmark}").run
    options = ({"archs": args.arch, "with_compile": args.compile} if args.benchmark == "train"
               else {"workdir": args.workdir})
    report = run(repeats=args.repeats, device=args.device, img_size=args.img_size, batch_size=args.batch_size,
                 quick=args.quick, **options)
    print(report)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(report + "\n\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the process exit status (2 for a user error, with a one-line message;
    130 for Ctrl-C; 75 when preempted by SIGTERM or SIGUSR1). Anything that is not an ``FgvcError`` is a
    bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FgvcError as err:
        print(f"fgvc: error: {err}", file=sys.stderr)
        return 2
    except Preempted:  # fgvc train has already logged how to resume
        print(f"fgvc: preempted: exit status {REQUEUE_EXIT} asks the scheduler to requeue the job", file=sys.stderr)
        return REQUEUE_EXIT
    except KeyboardInterrupt:  # fgvc train has already logged how to resume
        print("fgvc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
