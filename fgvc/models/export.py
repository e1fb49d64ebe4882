"""ONNX: export a checkpoint, and load the exported file for ``Predictor``.

    export_onnx("logs/<run>/last.pt", "model.onnx")              # fgvc export --checkpoint ... --onnx ...
    predictor = Predictor.from_checkpoint("model.onnx")          # runs it with ONNX Runtime on the CPU

The file takes a float32 NCHW batch of images, preprocessed as ``fgvc.data.eval_transform`` does, with any batch
size and any height and width from ``MIN_SIDE`` up, and returns the logits (batch, classes). Its metadata holds
what inference needs: the run's config (size, arch and so normalisation, view, banner), the class names and their
hierarchy, the weights exported (``raw`` or ``ema``) and ``fgvc calibrate``'s temperatures and unknown-type
thresholds for them (``fgvc.*`` keys, read back by ``load_onnx``; ``Predictor`` applies them as for the
checkpoint), and the preprocessing spelled out for other runtimes (``img_size``, ``mean``, ``std``,
``interpolation``, ``eval_view``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fgvc.core.config import TrainConfig
from fgvc.core.errors import CheckpointError
from fgvc.models.backbones import model_spec
from fgvc.models.calibration import Calibration
from fgvc.models.checkpoint import Trained, load_trained

INPUT, OUTPUT = "images", "logits"
FGVC_KEYS = ("fgvc.config", "fgvc.classes", "fgvc.hierarchy")
MIN_SIDE = 32  # every backbone halves its input five times: the smallest height and width the graph takes


def onnx_calibrations(trained: Trained) -> dict[str, dict[str, Any]]:
    """The calibrations an exported file carries (``fgvc.models.calibration``'s summaries, by setting): those of the
    exported weights, without a ``mahalanobis`` threshold (the file gives no features to score with)."""
    carried = {}
    for name, calibration in trained.calibrations.items():
        if name.split(" ")[0] != trained.weights:
            continue
        if calibration.score == "mahalanobis":
            calibration = dataclasses.replace(calibration, score=None, threshold=None, keep=None, mahalanobis=None)
        carried[name] = calibration.summary()
    return carried


def onnx_metadata(trained: Trained) -> dict[str, str]:
    """The metadata an exported file carries (every value a string, as ONNX stores them)."""
    cfg, norm = trained.cfg, model_spec(trained.cfg.arch).norm
    return {"fgvc.config": json.dumps(cfg.to_dict()), "fgvc.classes": json.dumps(trained.classes),
            "fgvc.hierarchy": json.dumps(trained.hierarchy), "fgvc.weights": trained.weights,
            "fgvc.calibration": json.dumps(onnx_calibrations(trained)),
            "img_size": str(cfg.eval_size), "mean": json.dumps(norm.mean), "std": json.dumps(norm.std),
            "interpolation": norm.interpolation.value, "eval_view": cfg.eval_view,
            "input": f"{INPUT}: float32 (batch, 3, height, width), RGB scaled to [0, 1], then (x - mean) / std",
            "output": f"{OUTPUT}: float32 (batch, classes); their softmax gives the probabilities, calibrated after "
                      f"dividing them by the temperature of fgvc.models.calibration's setting (first word the weights, "
                      f"then view, size, tta, zoom) where it holds one"}


def export_onnx(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the model of ``checkpoint`` to ``out`` as ONNX (torch.export-based exporter), with a dynamic batch
    size, height and width (each side at least ``MIN_SIDE``: declared so, the model is traced once, where unbounded
    sides make the exporter trace it, fail, and trace it again with that bound), and ``onnx_metadata`` attached."""
    trained = load_trained(checkpoint)
    model = trained.model.eval()
    if model_spec(trained.cfg.arch).family == "efficientnet_pytorch":
        # The library's export-safe swish (its default is a custom autograd function). Not for the Lite fork:
        # its `_swish` is a ReLU6, which set_swish would replace with a swish.
        model.set_swish(memory_efficient=False)
    size = trained.cfg.eval_size
    batch = torch.export.Dim("batch")
    height, width = torch.export.Dim("height", min=MIN_SIDE), torch.export.Dim("width", min=MIN_SIDE)
    program = torch.onnx.export(model, (torch.randn(2, 3, size, size),), input_names=[INPUT], output_names=[OUTPUT],
                                dynamic_shapes=({0: batch, 2: height, 3: width},), verbose=False)
    program.model.metadata_props.update(onnx_metadata(trained))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(out)
    return out


class OnnxModel(nn.Module):
    """An exported model run by ONNX Runtime on the CPU, called like the PyTorch model it came from
    (inference only: no gradients, so no Grad-CAM)."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf, NoSuchFile

        super().__init__()
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except (Fail, InvalidGraph, InvalidProtobuf, NoSuchFile) as err:
            raise CheckpointError(f"could not load {path} with ONNX Runtime ({err}); expected a file written by "
                                  f"`fgvc export`") from err
        self.metadata = self.session.get_modelmeta().custom_metadata_map

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        inputs = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run([OUTPUT], {INPUT: inputs})[0])


def load_onnx(path: str | Path) -> Trained:
    """The model of a file written by ``export_onnx``, with the config, classes and hierarchy it carries."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file {path} not found: expected a file written by `fgvc export`")
    model = OnnxModel(path)
    missing = [key for key in FGVC_KEYS if key not in model.metadata]
    if missing:
        raise CheckpointError(f"{path} lacks the metadata {missing}: expected a file written by `fgvc export`")
    calibrations = json.loads(model.metadata.get("fgvc.calibration", "{}"))  # absent from older exports
    return Trained(model.eval(), TrainConfig.from_dict(json.loads(model.metadata["fgvc.config"])),
                   json.loads(model.metadata["fgvc.classes"]), json.loads(model.metadata["fgvc.hierarchy"]),
                   model.metadata.get("fgvc.weights", "raw"),
                   calibrations={name: Calibration.from_record(record) for name, record in calibrations.items()})
