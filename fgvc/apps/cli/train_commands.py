"""fgvc train and fgvc status: their flags, what each runs, and the exit statuses a scheduler acts on."""

from __future__ import annotations

import argparse

from fgvc.apps.cli.flags import add_config_flags, config_overrides
from fgvc.core.config import make_config
from fgvc.core.errors import ConfigError
from fgvc.core.presets import PRESETS

REQUEUE_EXIT = 75  # EX_TEMPFAIL: a temporary failure, try again (requeue and resume); also fgvc status's for it
UNFINISHED_EXIT = 1  # fgvc status: the run has epochs (or its start) left to train, and no signal stopped it


def add_train(sub: argparse._SubParsersAction) -> None:
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


def _train(args: argparse.Namespace) -> int:
    from fgvc.core import distributed
    from fgvc.training.engine import fit

    options = {"progress": not args.no_progress, "stop_after": args.stop_after}
    try:
        if args.resume:
            if args.preset or args.config:
                raise ConfigError(f"--{'preset' if args.preset else 'config'} cannot be used with --resume: the "
                                  f"run keeps its own config")
            run_dir = fit(resume=args.resume, overrides=config_overrides(args), **options)
        else:
            run_dir = fit(make_config(args.preset, args.config, **config_overrides(args)), **options)
    finally:
        distributed.shutdown()  # under torchrun: leave the process group
    if distributed.from_environment().primary:
        print(f"run folder: {run_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from fgvc.runs.status import run_status, stop_signal

    finished, line = run_status(args.run_dir)
    print(line)
    if finished:
        return 0
    signal_name = stop_signal(args.run_dir)
    if signal_name is None:
        return UNFINISHED_EXIT
    print(f"stopped by {signal_name}: exit status {REQUEUE_EXIT}, requeue the job to resume the run")
    return REQUEUE_EXIT
