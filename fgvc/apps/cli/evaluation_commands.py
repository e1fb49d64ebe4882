"""fgvc evaluate, calibrate, compare, study and learning-curve: how good a run is, and against which; their
flags and what each runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from fgvc.apps.cli.flags import add_config_flags, config_overrides, zoom_choice
from fgvc.core.config import DEVICES
from fgvc.core.defaults import UNKNOWN_KEEP, UNKNOWN_SCORE, UNKNOWN_SCORES
from fgvc.core.errors import ConfigError
from fgvc.core.presets import PRESETS


def add_evaluation(sub: argparse._SubParsersAction, shared: dict[str, argparse.ArgumentParser]) -> None:
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


def _evaluate(args: argparse.Namespace) -> int:
    from fgvc.evaluation.analysis import format_confusions, format_report, format_worst
    from fgvc.evaluation.evaluate import evaluate_checkpoint

    analysis = evaluate_checkpoint(args.checkpoint, args.split, args.data_root, args.device, args.out, args.tta,
                                   args.view, weights=args.weights, img_size=args.img_size, zoom=zoom_choice(args),
                                   calibrated=args.calibrated, unknown=args.unknown)
    print("\n\n".join([format_report(analysis.report), format_worst(analysis.report),
                        format_confusions(analysis.report)]))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from fgvc.evaluation.evaluate import calibrate_checkpoint, format_calibration

    setting, fitted = calibrate_checkpoint(args.checkpoint, args.split, args.data_root, args.device, args.tta,
                                           args.view, args.weights, args.img_size, zoom_choice(args),
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

    fields = {**(read_config_file(args.config) if args.config else {}), **config_overrides(args)}
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
