"""The ``fgvc`` command line: thin wrappers over the package.

    fgvc synth --out data/synthetic                 # offline dataset in the FGVC-Aircraft layout
    fgvc download --data-root data                  # the real FGVC-Aircraft (2.6 GB)
    fgvc train --preset b4                          # fine-tune EfficientNet-B4
    fgvc train --preset demo --epochs 3             # minutes on a CPU
    fgvc train --resume logs/<run>/last.pt          # continue an interrupted run
    fgvc check-data --data-root data                # list annotation lines and images that are bad
    fgvc evaluate --checkpoint logs/<run>/last.pt --split test
    fgvc predict --checkpoint logs/<run>/last.pt photo.jpg --topk 5
    fgvc gradcam --checkpoint logs/<run>/last.pt photo.jpg --out cams/
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence

from fgvc.config import ARCHS, CAM_METHODS, DATASETS, DEVICES, LEVELS, OPTIMIZERS, PRECISIONS, PRESETS, make_config

# Errors that mean "the user asked for something that cannot be done": one line, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, RuntimeError)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is invalid: expected WIDTHxHEIGHT, e.g. 160x140") from None
    return width, height


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune an EfficientNet (or resume a run)",
                       description="Train with a preset; every flag overrides the preset's value.")
    p.add_argument("--preset", default="b4", choices=sorted(PRESETS), help="b4: the FGVC-Aircraft recipe; "
                   "demo: synthetic data on a CPU in minutes (default: b4)")
    p.add_argument("--data-root", help="folder holding fgvc-aircraft-2013b/ (or split folders for imagefolder)")
    p.add_argument("--dataset", choices=DATASETS, help="fgvc-aircraft, or imagefolder for your own photos "
                   "laid out as ROOT/<split>/<class>/*.jpg")
    p.add_argument("--level", choices=LEVELS, help="FGVC-Aircraft label level (default: variant)")
    p.add_argument("--arch", choices=ARCHS, metavar="NAME", help="efficientnet-b0..b7 (efficientnet_pytorch) or "
                   "tv_efficientnet_b0..b7 (torchvision)")
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None,
                   help="start from ImageNet weights (downloaded into TORCH_HOME)")
    p.add_argument("--weights", metavar="FILE", help="ImageNet weights from a local file (offline clusters)")
    p.add_argument("--img-size", type=int, help="training and evaluation resolution in pixels")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="images per optimizer step")
    p.add_argument("--lr", type=float, help="peak learning rate after warmup")
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=int)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--precision", choices=PRECISIONS, help="auto: bf16 (or fp16) on GPUs, fp32 on the CPU")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory layout (faster on recent GPUs)")
    p.add_argument("--device", choices=DEVICES, help="auto: CUDA, then MPS, then CPU")
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument("--seed", type=int)
    p.add_argument("--train-split", help="split to train on (default trainval)")
    p.add_argument("--eval-split", help="split evaluated every epoch (default test; val enables best.pt)")
    p.add_argument("--log-every", type=int, help="write a steps.csv row every N batches (default 5)")
    p.add_argument("--run-dir", help="run folder (default logs/<time>-<preset>)")
    p.add_argument("--resume", metavar="FILE", help="continue the run of this last.pt at its next epoch "
                   "(its config is used; other flags are ignored)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs of this call; continue later "
                   "with --resume (for cluster jobs with a time limit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--skip-bad-images", action="store_true", default=None, help="leave out images that do not "
                   "decode (each is logged and counted) instead of stopping")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="fgvc", description="Fine-grained aircraft classification with "
                                     "EfficientNet: synthesise or download data, train, evaluate, predict.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic dataset in the FGVC-Aircraft layout")
    p.add_argument("--out", required=True, help="folder to write fgvc-aircraft-2013b/ into")
    p.add_argument("--classes", type=int, default=12, help="number of variants (default 12)")
    p.add_argument("--per-class", type=int, default=30, help="images per variant (default 30)")
    p.add_argument("--size", type=_size, default=(160, 140), help="image size WxH including the 20-px banner")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("download", help="download FGVC-Aircraft 2013b (2.6 GB)")
    p.add_argument("--data-root", default="data", help="folder to unpack into (default data)")

    _add_train(sub)

    p = sub.add_parser("check-data", help="decode every image of a dataset and list the bad files",
                       description="Check annotation files and decode every image; exit status 1 if any is bad.")
    p.add_argument("--data-root", default="data", help="folder holding fgvc-aircraft-2013b/ (or split folders "
                   "for imagefolder; default data)")
    p.add_argument("--dataset", default="fgvc-aircraft", choices=DATASETS)

    p = sub.add_parser("evaluate", help="full evaluation of a checkpoint: metrics, per-class, confusions")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-root", help="dataset folder (default: the one the run trained on)")
    p.add_argument("--split", default="test", metavar="SPLIT",
                   help="split to evaluate: train, val, trainval, test, or an imagefolder split (default test)")
    p.add_argument("--tta", action="store_true", help="average the predictions of each image and its mirror")
    p.add_argument("--out", help="folder for the report (default: eval-<split>/ beside the checkpoint)")
    p.add_argument("--device", default="auto", choices=DEVICES)

    p = sub.add_parser("predict", help="top-k variants of images (files or folders)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders searched for images")
    p.add_argument("--topk", type=int, default=5)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON instead of text")
    output.add_argument("--csv", action="store_true", help="print CSV: file, rank, class, probability, family, "
                        "manufacturer")
    p.add_argument("--crop-banner", action="store_true", help="cut the 20-px FGVC-Aircraft banner first")
    p.add_argument("--device", default="auto", choices=DEVICES)

    p = sub.add_parser("gradcam", help="Grad-CAM overlays of images, one PNG each")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="folder for the overlay PNGs")
    p.add_argument("--method", default="gradcam", choices=CAM_METHODS, help="CAM method (default gradcam)")
    p.add_argument("--class", dest="class_name", metavar="NAME", help="explain this class (default: the prediction)")
    p.add_argument("--crop-banner", action="store_true", help="cut the 20-px FGVC-Aircraft banner first")

    p = sub.add_parser("figures", help="regenerate the README figures and the cover from a run folder")
    p.add_argument("--run", required=True, help="run folder (make figures uses a demo run)")
    p.add_argument("--out", default="source", help="folder for the figures (default source)")
    p.add_argument("--cover", default="cover.jpg", help="cover image path (default cover.jpg)")
    return parser


def _train(args: argparse.Namespace) -> int:
    from fgvc.engine import fit

    options = {"progress": not args.no_progress, "stop_after": args.stop_after}
    if args.resume:
        run_dir = fit(make_config(), resume=args.resume, **options)
    else:
        overrides = {k: v for k, v in vars(args).items()
                     if k not in ("command", "preset", "resume", "no_progress", "stop_after")}
        run_dir = fit(make_config(args.preset, **overrides), **options)
    print(f"run folder: {run_dir}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fgvc.evaluation import predict_files

    results = predict_files(args.checkpoint, args.images, args.topk, 20 if args.crop_banner else 0, args.device)
    if args.json:
        print(json.dumps(results, indent=2))
    writer = csv.writer(sys.stdout) if args.csv else None
    if writer:
        writer.writerow(["file", "rank", "class", "probability", "family", "manufacturer"])
    for result in results:
        if "error" in result:
            print(f"fgvc: error: {result['error']}", file=sys.stderr)
            continue
        for rank, guess in enumerate(result["top"], start=1):
            parents = [guess.get("family", ""), guess.get("manufacturer", "")]
            if writer:
                writer.writerow([result["file"], rank, guess["class"], f"{guess['probability']:.6f}", *parents])
            elif not args.json:
                if rank == 1:
                    print(result["file"])
                lineage = " / ".join(p for p in parents if p)
                print(f"  {rank}. {guess['class']:<28} {100 * guess['probability']:6.2f}%  {lineage}")
    return 1 if any("error" in r for r in results) else 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "synth":
        from fgvc.synthetic import write_synthetic_dataset

        folder = write_synthetic_dataset(args.out, args.classes, args.per_class, args.size, args.seed)
        print(f"synthetic dataset written to {folder}")
        return 0
    if args.command == "download":
        from fgvc.data import download_fgvc

        print(f"FGVC-Aircraft is in {download_fgvc(args.data_root)}")
        return 0
    if args.command == "train":
        return _train(args)
    if args.command == "check-data":
        from fgvc.data import check_data

        checked, problems = check_data(args.data_root, args.dataset)
        for problem in problems:
            print(problem)
        print(f"{checked} images checked under {args.data_root}: {len(problems)} problem(s)")
        return 1 if problems else 0
    if args.command == "evaluate":
        from fgvc.analysis import format_confusions, format_report, format_worst
        from fgvc.evaluation import evaluate_checkpoint

        analysis = evaluate_checkpoint(args.checkpoint, args.split, args.data_root, args.device, args.out, args.tta)
        print("\n\n".join([format_report(analysis.report), format_worst(analysis.report),
                            format_confusions(analysis.report)]))
        return 0
    if args.command == "gradcam":
        from fgvc.gradcam import write_overlays

        results = write_overlays(args.checkpoint, args.images, args.out, args.method, args.class_name,
                                 20 if args.crop_banner else 0)
        for result in results:
            if "error" in result:
                print(f"fgvc: error: {result['error']}", file=sys.stderr)
            else:
                print(f"{result['overlay']}: {args.method} for {result['explained']} "
                      f"(predicted {result['predicted']}, {100 * result['probability']:.1f}%)")
        return 1 if any("error" in r for r in results) else 0
    if args.command == "figures":
        from fgvc.figures import write_figures

        for path in write_figures(args.run, args.out, args.cover):
            print(f"wrote {path}")
        return 0
    return _predict(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the process exit status (2 for a user error, with a one-line message;
    130 for Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except USER_ERRORS as err:
        print(f"fgvc: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # fgvc train has already logged how to resume
        print("fgvc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
