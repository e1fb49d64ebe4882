"""One inference path: a ``Predictor`` built once from a checkpoint.

    predictor = Predictor.from_checkpoint("logs/<run>/last.pt", device="auto")   # EMA weights if it has them
    scores = predictor.scores([pil_image, ...])            # (N, C) softmax probabilities
    predictor.top(scores[0], 5); predictor.coarse(scores[0])   # the top classes; the likeliest family, manufacturer
    zoomed = Predictor.from_checkpoint("logs/<run>/last.pt", zoom=Zoom())   # a second look: fgvc.models.zoom
    [look] = zoomed.predict([pil_image])                   # look.probabilities, look.box

The predictor owns the preprocessing (``fgvc.data.eval_transform`` with the run's view), the
device, the autocast precision and batching. ``fgvc evaluate``, ``fgvc predict`` (``fgvc.apps.predict_output``),
``fgvc gradcam`` and both notebooks go through it, so they name the same class with the same
probability for the same photo. A checkpoint of a run with ``ema_decay`` holds two sets of
weights: the predictor takes the EMA unless ``weights="raw"``, and says which on stderr.
This module imports nothing of the training stack.
The photos come decoded; ``fgvc.apps.banner`` says which rows of FGVC-Aircraft's banner to cut from a file first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from tqdm.auto import tqdm

from fgvc.core.config import TrainConfig
from fgvc.core.errors import ConfigError
from fgvc.core.labels import top_classes
from fgvc.core.runtime import Runtime
from fgvc.data.hierarchy import Hierarchy
from fgvc.data.loaders import eval_loader
from fgvc.data.transforms import eval_transform
from fgvc.models.backbones import model_spec
from fgvc.models.calibration import Calibration, calibrated, known_scores, log_probabilities, setting_name
from fgvc.models.checkpoint import load_trained
from fgvc.models.zoom import (
    Box,
    Zoom,
    captured_features,
    chosen_zoom,
    head_layer,
    photo_box,
    top_class_maps,
    view_box,
)

WEIGHT_NAMES = {"ema": "EMA", "raw": "raw"}


def _with_photo(transform: Callable[[Image.Image], torch.Tensor], image: Image.Image
                ) -> tuple[torch.Tensor, Image.Image]:
    return transform(image), image


def collate_with_photos(batch: Sequence[tuple[tuple[torch.Tensor, Image.Image], int]]
                        ) -> tuple[tuple[torch.Tensor, list[Image.Image]], torch.Tensor]:
    """A batch of ``((input, photo), label)`` items as ``((inputs, photos), labels)``: the photos as a list."""
    pairs, labels = zip(*batch)
    return (torch.stack([tensor for tensor, _ in pairs]), [photo for _, photo in pairs]), torch.tensor(labels)


def _shape_batches(tensors: Sequence[torch.Tensor], batch_size: int) -> list[list[int]]:
    """Indices of ``tensors`` in batches of one shape, at most ``batch_size`` each."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_shape.setdefault(tuple(tensor.shape), []).append(index)
    return [indices[start:start + batch_size] for indices in by_shape.values()
            for start in range(0, len(indices), batch_size)]


@dataclass(frozen=True)
class Prediction:
    """What the predictor says of one photo."""

    probabilities: np.ndarray  # (C,) softmax (calibrated when the checkpoint holds a temperature for the setting)
    box: Box | None  # with zoom: the box of the second look, in the photo's pixels; else None
    known: float | None = None  # with an unknown-type threshold: the photo's score (``Predictor.unknown_check``)
    unknown: bool = False  # whether that score lies below the threshold: "none of the types I know"


@dataclass(frozen=True)
class Outputs:
    """What the network gives for a set of photos, before the probabilities are made of it."""

    logits: torch.Tensor  # (V, N, C) fp32 on the CPU: V = 2 with TTA (the photo, its mirror); with zoom each view's
    #                       logits are the mean of the whole view's and the zoomed box's
    features: torch.Tensor | None  # (N, D): the pooled features of the whole view, when asked for
    boxes: list[Box | None]  # with zoom: each photo's box; else None each


@dataclass
class Predictor:
    """A trained model with the preprocessing, device, precision and batch size it predicts with."""

    model: nn.Module  # in eval mode, on the runtime's device
    cfg: TrainConfig  # the run's config: image size, normalisation (through the arch), banner
    classes: list[str]
    runtime: Runtime
    view: str = "squash"
    tta: bool = False
    batch_size: int = 32
    hierarchy: Hierarchy = field(default_factory=Hierarchy)  # family / manufacturer of each class
    weights: str = "raw"  # "raw" (the trained weights) or "ema" (their moving average)
    zoom: Zoom | None = None  # a second look at the box around the top class's activation map (fgvc.models.zoom)
    calibrations: dict[str, Calibration] = field(default_factory=dict)  # fgvc calibrate's, by inference setting
    calibrated: bool = True  # divide by the temperature fitted for this setting, where there is one
    unknown: bool = True  # answer "unknown" below the threshold fitted for this setting, where there is one

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "auto", precision: str = "auto",
                        view: str | None = None, tta: bool = False, batch_size: int | None = None,
                        weights: str | None = None, channels_last: bool | None = None,
                        img_size: int | None = None, zoom: Zoom | bool | None = None, calibrated: bool | None = None,
                        unknown: bool | None = None) -> Predictor:
        """Rebuild the model of ``checkpoint`` (a ``.pt``, or an ``.onnx`` from ``fgvc export``, run with ONNX
        Runtime); ``view``, ``batch_size``, ``channels_last`` and ``img_size`` default to the run's (its
        ``eval_size``); ``weights`` (``"ema"`` or ``"raw"``) to the EMA when the checkpoint holds one (a line on
        stderr says which); ``zoom`` (a ``Zoom``, ``True`` or ``False``) to the run's ``eval_zoom``: the second
        look of ``fgvc.models.zoom``. ``calibrated`` and ``unknown`` (``fgvc calibrate``'s temperature and unknown-type
        threshold for these settings): None uses them where the checkpoint holds them, False never, True
        requires them."""
        onnx = Path(checkpoint).suffix == ".onnx"
        if onnx:
            from fgvc.models.export import load_onnx  # onnxruntime is imported only for ONNX files

            if zoom not in (None, False):
                raise ConfigError(f"{checkpoint} is an ONNX file, which gives no feature map to zoom with: "
                                  f"expected the run's .pt checkpoint for --zoom")

            if device not in ("auto", "cpu") or precision not in ("auto", "fp32") or weights is not None:
                raise ConfigError(f"{checkpoint} runs with ONNX Runtime in fp32 on the CPU, with the weights it was "
                                  f"exported with: expected device 'auto' or 'cpu', precision 'auto' or 'fp32' and "
                                  f"no --weights, not {device!r}, {precision!r} and {weights!r}")
            trained, runtime = load_onnx(checkpoint), Runtime(torch.device("cpu"))
        else:
            trained = load_trained(checkpoint, weights)
            layout = trained.cfg.channels_last if channels_last is None else channels_last
            runtime = Runtime.create(device, precision, layout)
        cfg = trained.cfg if img_size is None else dataclasses.replace(trained.cfg, eval_img_size=img_size)
        view = view or cfg.eval_view
        eval_transform(cfg.eval_size, model_spec(cfg.arch).norm, view)  # refuses an unknown view
        if trained.has_ema:
            other = "raw" if trained.weights == "ema" else "ema"
            print(f"fgvc: {checkpoint}: using its {WEIGHT_NAMES[trained.weights]} weights (for the "
                  f"{WEIGHT_NAMES[other]} ones: --weights {other})", file=sys.stderr)
        predictor = cls(runtime.prepare(trained.model).eval(), cfg, trained.classes, runtime, view, tta,
                        batch_size or cfg.batch_size, Hierarchy.from_names(trained.hierarchy), trained.weights,
                        None if onnx else chosen_zoom(zoom, cfg.eval_zoom), trained.calibrations,
                        calibrated is not False, unknown is not False)
        predictor.check_calibration(checkpoint, calibrated, unknown)
        return predictor

    @property
    def setting(self) -> str:
        """The inference setting a calibration is fitted for (``fgvc.models.calibration.setting_name``)."""
        return setting_name(self.weights, self.view, self.cfg.eval_size, self.tta, self.zoom and self.zoom.name)

    @property
    def temperature(self) -> float:
        """The temperature this predictor divides by: its setting's, 1 without one or with ``calibrated`` off."""
        calibration = self.calibrations.get(self.setting)
        return calibration.temperature if self.calibrated and calibration else 1.0

    @property
    def unknown_check(self) -> Calibration | None:
        """The calibration whose unknown-type threshold this predictor applies (None: it never says unknown)."""
        calibration = self.calibrations.get(self.setting)
        return calibration if self.unknown and calibration and calibration.score else None

    def check_calibration(self, source: str | Path, calibrated: bool | None, unknown: bool | None) -> None:
        """Refuse ``calibrated`` or ``unknown`` True where ``source`` holds no calibration for this setting; say on
        stderr when it holds some, but for other settings only."""
        calibration = self.calibrations.get(self.setting)
        fitted = ", ".join(repr(name) for name in self.calibrations) or "none"
        for asked, missing, what in ((calibrated, calibration is None, "temperature"),
                                     (unknown, calibration is None or calibration.score is None, "unknown threshold")):
            if asked and missing:
                raise ConfigError(f"{source} holds no {what} for the setting {self.setting!r} (calibrated: {fitted}): "
                                  f"run fgvc calibrate --checkpoint {source} with the same flags first")
        if calibration is None and self.calibrations and calibrated is None:
            print(f"fgvc: {source}: calibrated for {fitted}, not for {self.setting!r}: uncalibrated probabilities "
                  f"(fgvc calibrate with these flags fits them)", file=sys.stderr)

    @property
    def transform(self) -> transforms.Compose:
        """PIL image -> normalised tensor, as the network sees it."""
        return eval_transform(self.cfg.eval_size, model_spec(self.cfg.arch).norm, self.view)

    def inputs(self, image: Image.Image) -> torch.Tensor:
        """One image as a batch of one on the device (what Grad-CAM feeds the model)."""
        return self.runtime.inputs(self.transform(image).unsqueeze(0))

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """Softmax probabilities of each image, with zoom the box of its second look, and with an unknown-type
        threshold its score and whether it lies below."""
        outputs = self.outputs(images)
        probabilities, known = self.answer(outputs)
        if known is None:
            return [Prediction(p, box) for p, box in zip(probabilities, outputs.boxes, strict=True)]
        threshold = self.unknown_check.threshold
        return [Prediction(p, box, float(score), bool(score < threshold))
                for p, box, score in zip(probabilities, outputs.boxes, known, strict=True)]

    def scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Softmax probabilities (N, C) of ``images`` (see ``predict``)."""
        return self.answer(self.outputs(images))[0]

    def answer(self, outputs: Outputs) -> tuple[np.ndarray, np.ndarray | None]:
        """The probabilities (N, C) of ``outputs``, with this setting's temperature (``calibration.calibrated``;
        without one, each view's softmax averaged, as always), and with an unknown-type threshold each photo's
        score (``fgvc.models.calibration.known_scores``; else None)."""
        if self.temperature == 1.0:
            probabilities = outputs.logits.softmax(dim=2).mean(dim=0).numpy()
        else:
            probabilities = calibrated(log_probabilities(outputs.logits), self.temperature)
        check = self.unknown_check
        known = None if check is None else known_scores(check.score, outputs.logits, self.temperature,
                                                        outputs.features, check.mahalanobis)
        return probabilities, known

    @property
    def needs_features(self) -> bool:
        """Whether the unknown-type score needs the pooled features (``mahalanobis``)."""
        return self.unknown_check is not None and self.unknown_check.score == "mahalanobis"

    @torch.no_grad()
    def outputs(self, images: Sequence[Image.Image], features: bool = False) -> Outputs:
        """What the network gives for ``images`` (with ``features``, or where the unknown score needs them, the
        pooled features too); those of one input shape are batched ``batch_size`` at a time."""
        self.model.eval()
        features = features or self.needs_features
        tensors = [self.transform(image) for image in images]
        logits = torch.zeros((1 + self.tta, len(tensors), len(self.classes)))
        pooled: torch.Tensor | None = None
        boxes: list[Box | None] = [None] * len(tensors)
        for chunk in _shape_batches(tensors, self.batch_size):
            batch = self._outputs(self.runtime.inputs(torch.stack([tensors[i] for i in chunk])),
                                  [images[i] for i in chunk], features)
            logits[:, chunk] = batch.logits
            if batch.features is not None:
                pooled = torch.zeros((len(tensors), batch.features.shape[1])) if pooled is None else pooled
                pooled[chunk] = batch.features
            for index, box in zip(chunk, batch.boxes, strict=True):
                boxes[index] = box
        return Outputs(logits, pooled if features else None, boxes)

    @property
    def dataset_transform(self) -> Callable[[Image.Image], Any]:
        """What a dataset read by ``loader`` applies to each photo: ``transform``; with zoom, the photo
        is kept beside its input for the second look."""
        return self.transform if self.zoom is None else functools.partial(_with_photo, self.transform)

    def loader(self, dataset: Dataset, workers: int) -> DataLoader:
        """In-order batches of a dataset built with ``dataset_transform``, for ``loader_outputs``."""
        return eval_loader(dataset, self.batch_size, self.view, workers,
                           collate_fn=None if self.zoom is None else collate_with_photos)

    @torch.no_grad()
    def loader_outputs(self, loader: DataLoader, progress: bool = False, features: bool = False
                       ) -> tuple[Outputs, np.ndarray]:
        """``outputs`` and targets over a loader from ``loader``."""
        self.model.eval()
        features = features or self.needs_features
        parts, all_targets = [], []
        for batch, targets in tqdm(loader, desc="eval", leave=False, disable=not progress):
            inputs, photos = batch if self.zoom is not None else (batch, None)
            parts.append(self._outputs(self.runtime.inputs(inputs), photos, features))
            all_targets.append(targets.numpy())
        return Outputs(torch.cat([part.logits for part in parts], dim=1),
                       torch.cat([part.features for part in parts]) if features else None,
                       [box for part in parts for box in part.boxes]), np.concatenate(all_targets)

    def _logits(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The fp32 logits of ``inputs``, then with TTA those of their mirror."""
        with self.runtime.autocast():
            return [self.model(batch).float() for batch in ([inputs, inputs.flip(3)] if self.tta else [inputs])]

    def _outputs(self, inputs: torch.Tensor, photos: Sequence[Image.Image] | None, features: bool) -> Outputs:
        """The ``Outputs`` of a batch of whole views ``inputs`` of ``photos``: with zoom, each view's logits are the
        mean of the whole view's and those of the box around its top class (the box chosen on the whole views'
        softmax averaged over the mirrors); the features are the whole view's."""
        with captured_features(self.model, self.cfg.arch) if (
                self.zoom is not None or features) else contextlib.nullcontext([]) as maps:
            whole = self._logits(inputs)
        pooled = maps[0].float().mean(dim=(2, 3)).cpu() if features else None
        if self.zoom is None:
            return Outputs(torch.stack(whole).cpu(), pooled, [None] * len(inputs))
        top = torch.stack([logits.softmax(dim=1) for logits in whole]).mean(dim=0).argmax(dim=1)
        maps = top_class_maps(maps[0], head_layer(self.model, self.cfg.arch).weight, top)
        input_size = (inputs.shape[3], inputs.shape[2])
        boxes = [photo_box(view_box(cam, input_size, self.zoom.threshold), input_size, photo.size, self.view,
                           self.zoom.pad) for cam, photo in zip(maps, photos, strict=True)]
        crops = [self.transform(photo.crop(box)) for photo, box in zip(photos, boxes, strict=True)]
        zoomed = [torch.empty_like(logits) for logits in whole]
        for chunk in _shape_batches(crops, self.batch_size):
            batch = self.runtime.inputs(torch.stack([crops[i] for i in chunk]))
            for view_logits, logits in zip(zoomed, self._logits(batch), strict=True):
                view_logits[chunk] = logits
        return Outputs(torch.stack([(a + b) / 2 for a, b in zip(whole, zoomed, strict=True)]).cpu(), pooled, boxes)

    def top(self, probabilities: np.ndarray, k: int) -> list[dict[str, Any]]:
        """The ``k`` likeliest classes of one image, each with its probability, family and manufacturer."""
        order = top_classes(probabilities[None], k)[0]  # ties to the lower index, as every report
        return [{"class": self.classes[i], "probability": float(probabilities[i]),
                 **{level: names[parent_of[i]] for level, (parent_of, names) in self.hierarchy.items()}}
                for i in order]

    def coarse(self, probabilities: np.ndarray) -> dict[str, dict[str, Any]]:
        """The likeliest family and manufacturer of one image, each with its probability, the sum of its classes'
        (``Hierarchy.top_parents``): ``{level: {"name": ..., "probability": ...}}``, {} without a hierarchy."""
        answer = {}
        for level, (_, names) in self.hierarchy.items():
            [best], [probability] = self.hierarchy.top_parents(probabilities[None], level)
            answer[level] = {"name": names[best], "probability": float(probability)}
        return answer
