"""The end-of-run report of a run's last epoch: the final analysis in ``eval-<split>/``, its confusion figure as a
TensorBoard image, and the calibration of ``last.pt`` (rank 0 alone writes it).

    final_report(cfg, state, loaders, result, record, run_log, step)    # result: the last epoch's evaluation
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from torch import nn

from fgvc.core.config import TrainConfig
from fgvc.core.errors import ConfigError
from fgvc.core.runtime import Runtime
from fgvc.data.datasets import image_files
from fgvc.data.hierarchy import Hierarchy
from fgvc.data.loaders import Loaders
from fgvc.evaluation.analysis import Analysis, analyse, format_report
from fgvc.evaluation.evaluate import calibrate_checkpoint, evaluate_split, format_calibration
from fgvc.models.calibration import NEVER_FITTED_ON
from fgvc.models.checkpoint import TrainState, unwrap
from fgvc.models.predictor import Predictor
from fgvc.models.zoom import chosen_zoom
from fgvc.runs import provenance
from fgvc.runs.runlog import RunLog
from fgvc.training.loop import EvalResult

log = logging.getLogger("fgvc")


def final_report(cfg: TrainConfig, state: TrainState, loaders: Loaders, result: EvalResult, record: dict[str, Any],
                 run_log: RunLog, step: int) -> None:
    """Analyse the model of the last epoch's ``state`` (its EMA weights when it has them, as ``fgvc evaluate``
    takes) on the evaluation split: its ``result`` there, or with ``eval_zoom`` a second, zoomed look, as ``fgvc
    evaluate`` gives by default. Log the report, add ``confusion.png`` to TensorBoard at ``step``, end the session
    there, and with ``calibrate`` fit the temperature and unknown-type threshold of ``last.pt`` (``record``: the
    run's provenance)."""
    run_dir = Path(cfg.run_dir)
    out = run_dir / f"eval-{cfg.eval_split}"
    model, weights = (unwrap(state.model), "raw") if state.ema is None else (state.ema.module, "ema")
    if cfg.eval_zoom:
        analysis = _zoomed_analysis(cfg, model, weights, loaders, record, out)
    else:
        analysis = analyse(result.scores, result.targets, loaders.classes, loaders.hierarchy, out, cfg.seed,
                           {"checkpoint": str(run_dir / "last.pt"), "split": cfg.eval_split, "tta": False,
                            "view": cfg.eval_view, "weights": weights,
                            **provenance.evaluation_facts(record, record["sessions"][-1]["data"]["eval"])},
                           files=image_files(loaders.eval.dataset))
    log.info("final model (%s weights%s):\n%s", "EMA" if weights == "ema" else "raw",
             ", zoomed second look" if cfg.eval_zoom else "", format_report(analysis.report))
    run_log.image("confusion", out / "confusion.png", step)
    if cfg.calibrate:
        _calibrate(run_dir / "last.pt", cfg)
    run_log.end_session(step)


def final_passes(cfg: TrainConfig) -> int:
    """About how many passes over the evaluation split ``final_report`` makes after the last epoch's own: the
    calibration's (where the split is held out) and a zoomed look's (each photo twice)."""
    return int(cfg.calibrate and cfg.eval_split != NEVER_FITTED_ON) + 2 * int(cfg.eval_zoom)


def _zoomed_analysis(cfg: TrainConfig, model: nn.Module, weights: str, loaders: Loaders, record: dict[str, Any],
                     out: Path) -> Analysis:
    """``fgvc evaluate``'s analysis of ``last.pt`` with the run's zoomed second look, made with the model and the
    evaluation split in memory: the predictor ``Predictor.from_checkpoint`` would rebuild (inference precision, the
    run's view, evaluation size and batch size, no calibration yet), reading the split's photos with their inputs."""
    predictor = Predictor(model, cfg, loaders.classes, Runtime.create(cfg.device, "auto", cfg.channels_last),
                          cfg.eval_view, batch_size=cfg.batch_size, hierarchy=loaders.hierarchy or Hierarchy(),
                          weights=weights, zoom=chosen_zoom(None, cfg.eval_zoom))
    dataset = copy.copy(loaders.eval.dataset)  # the same photos, each kept beside its input for the second look
    dataset.transform = predictor.dataset_transform
    return evaluate_split(predictor, cfg, dataset, cfg.eval_split, loaders.hierarchy, Path(cfg.run_dir) / "last.pt",
                          record, out)


def _calibrate(checkpoint: Path, cfg: TrainConfig) -> None:
    """``fgvc calibrate`` with its defaults on the run's evaluation split, where that split is held out; else say
    why not."""
    try:
        setting, fitted = calibrate_checkpoint(checkpoint, cfg.eval_split, cfg.data_root, cfg.device)
    except ConfigError as err:  # the split is test, or shares photos with the training split
        log.info("not calibrated: %s", err)
        return
    log.info("%s (stored in %s: predict, evaluate, serve and export use it; --no-calibrated turns it off)",
             format_calibration(setting, fitted), checkpoint)
