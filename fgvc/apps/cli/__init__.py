"""The ``fgvc`` command line, thin wrappers over the package: here the parser of every subcommand and ``main``; each
group of subcommands (its flags and what it runs) in its own module beside this one.

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
import sys
from collections.abc import Sequence

from fgvc.apps.cli.data_commands import add_audit, add_data, add_split
from fgvc.apps.cli.evaluation_commands import add_evaluation
from fgvc.apps.cli.flags import shared_flags
from fgvc.apps.cli.inference_commands import add_inference, add_tools
from fgvc.apps.cli.train_commands import REQUEUE_EXIT, add_train
from fgvc.core.errors import FgvcError, Preempted


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="fgvc", description="Fine-grained aircraft classification with "
                                     "EfficientNet: synthesise or download data, train, evaluate, predict.")
    sub = parser.add_subparsers(dest="command", required=True)
    shared = shared_flags()

    add_data(sub)
    add_split(sub)
    add_audit(sub, shared)
    add_train(sub)
    add_evaluation(sub, shared)
    add_inference(sub, shared)
    add_tools(sub, shared)
    return parser


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
