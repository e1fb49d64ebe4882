"""fgvc predict, export, gradcam and serve (a trained checkpoint put to use), figures and bench: their flags and
what each runs."""

from __future__ import annotations

import argparse
import sys

from fgvc.apps.cli.flags import zoom_choice, zoom_settings
from fgvc.core.config import PRECISIONS
from fgvc.core.defaults import CAM_BUDGET_S, CAM_METHODS, MAX_UPLOAD_MB, PER_CHANNEL_METHODS, QUEUE_SIZE

BENCHMARKS = ("data", "train", "recipe", "predict")


def add_inference(sub: argparse._SubParsersAction, shared: dict[str, argparse.ArgumentParser]) -> None:
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


def add_tools(sub: argparse._SubParsersAction, shared: dict[str, argparse.ArgumentParser]) -> None:
    """fgvc figures and bench: the README's figures and the speed benchmarks."""
    p = sub.add_parser("figures", help="regenerate the README figures and the cover from a run folder")
    p.add_argument("--run", required=True, help="run folder (make figures uses a demo run)")
    p.add_argument("--out", default="source", help="folder for the figures (default source)")
    p.add_argument("--cover", default="cover.jpg", help="cover image path (default cover.jpg)")
    p.set_defaults(func=_figures)

    p = sub.add_parser("bench", help="benchmarks: images/s against a baseline measured in the same run",
                       parents=[shared["device"]])
    p.add_argument("benchmark", choices=BENCHMARKS, help="data: the training input pipeline; train: one "
                   "optimisation step; recipe: the cpu preset's step against smaller inputs and frozen stages; "
                   "predict: inference and ONNX Runtime")
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


def _predict(args: argparse.Namespace) -> int:
    from fgvc.apps.predict_output import format_predictions, predict_files
    from fgvc.models.predictor import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision,
                                          view=args.view, tta=args.tta, batch_size=args.batch_size,
                                          weights=args.weights, zoom=zoom_choice(args), calibrated=args.calibrated,
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

    serve(args.checkpoint, args.host, args.port, args.examples, args.device, args.view, zoom_settings(args),
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
               else {} if args.benchmark == "recipe" else {"workdir": args.workdir})
    report = run(repeats=args.repeats, device=args.device, img_size=args.img_size, batch_size=args.batch_size,
                 quick=args.quick, **options)
    print(report)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(report + "\n\n")
    return 0
