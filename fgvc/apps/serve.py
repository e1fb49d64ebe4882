"""A web demo of one trained checkpoint, served with Gradio.

    fgvc serve --checkpoint logs/<run>/last.pt [--port 7860] [--host 127.0.0.1] [--examples photos/]
               [--max-upload-mb 20] [--cam-budget 30] [--queue-size 8]

Drop in a photo: the page shows the top-5 variants with their family and manufacturer, the very
lines ``fgvc predict`` prints (the same ``Predictor``), and a CAM overlay for the top class or for
any class picked from a menu, with a choice of CAM method, a switch that cuts the FGVC-Aircraft
banner first and one that looks twice (``fgvc predict --zoom``: the zoomed box is drawn on the photo). With
``fgvc calibrate``'s temperature and unknown-type threshold in the checkpoint, the probabilities are calibrated
and a photo below the threshold is answered "unknown" (``fgvc predict``'s line) with its score.
A file that is not a usable image gets the one-line message of the command line, and the server keeps
serving. Safe to share: an upload over ``max_upload_mb`` is refused by the page (and by the server, before
it fills the disk); ScoreCAM and AblationCAM, one forward pass per channel of the target layer, are refused
when their measured estimate exceeds ``cam_budget`` seconds; one photo is worked on at a time, and at most
``queue_size`` more clicks wait in line (the page tells the next visitor that the queue is full). Gradio is
imported here alone, with its analytics off: the page and its assets come from this process, so the demo
works offline. It listens on 127.0.0.1 (this machine) unless ``host`` says otherwise.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fgvc.apps.banner import banner_rows, trained_without_banner
from fgvc.apps.predict_output import format_predictions, format_unknown, lineage, prediction_entry
from fgvc.core.defaults import CAM_BUDGET_S, CAM_METHODS, MAX_UPLOAD_MB, PER_CHANNEL_METHODS, QUEUE_SIZE
from fgvc.core.errors import BadImageError, ConfigError
from fgvc.data.images import expand_images, load_image
from fgvc.data.layout import is_original_name
from fgvc.data.transforms import visible_box, visible_part
from fgvc.models.gradcam import CAM_BATCH, CamCost, explain, per_channel_cost
from fgvc.models.predictor import Predictor
from fgvc.models.zoom import Zoom, draw_box, format_box

TOP_CLASS = "the top class"  # the explain menu's first choice
TOPK = 5
BANNER_NOTE = "named like an FGVC-Aircraft photo: if it is one, tick Crop FGVC banner (the model learnt them without)"
DEFAULT_ZOOM = Zoom()  # the settings of the zoom checkbox unless serve is given others
TRANSLATIONS = {"common.complete": "Done"}  # Gradio's status tracker announces this key, which its own English lacks
CSS = """
#predict-text textarea { font-family: var(--font-mono); }
#photo img, #overlay img { width: 100%; height: 100%; object-fit: contain; }
#message .fgvc-error { color: var(--error-text-color); font-weight: 600; }
"""


@dataclass
class Shown:
    """What the page shows for one photo (an unusable file leaves all but ``message`` empty)."""

    message: str  # what was explained, or the command line's error message
    confidences: dict[str, float]  # "class (family / manufacturer)" -> probability, best first
    text: str  # what ``fgvc predict`` prints for this file
    photo: np.ndarray | None  # the part of the photo the network saw, uint8 RGB (with zoom: the box drawn on it)
    overlay: np.ndarray | None  # the CAM over that photo (None: ``message`` says why)


@dataclass
class CamBudget:
    """The longest a per-channel CAM method (``PER_CHANNEL_METHODS``) may run for one click, in seconds; what it
    costs is measured once for each input size, on the first photo of that size that asks (one size for the
    ``squash`` and ``crop`` views; the ``whole`` view keeps each photo's shape)."""

    seconds: float
    costs: dict[tuple[int, ...], CamCost] = field(default_factory=dict)  # input (height, width) -> cost

    def estimate(self, predictor: Predictor, image: Image.Image) -> CamCost:
        inputs = predictor.inputs(image)
        size = tuple(inputs.shape[2:])
        if size not in self.costs:
            self.costs[size] = per_channel_cost(predictor.model, predictor.cfg.arch, inputs)
        return self.costs[size]

    def refusal(self, method: str, cost: CamCost) -> str | None:
        """Why ``method`` is refused at ``cost``, or None when it fits the budget."""
        if cost.seconds <= self.seconds:
            return None
        return (f"{method} would take about {cost.seconds:.0f} s here ({cost.passes} forward passes, {cost.batches} "
                f"batches of {CAM_BATCH} at {cost.batch_seconds:.2f} s), over the budget of {self.seconds:g} s: pick "
                f"another method, or restart with fgvc serve --cam-budget {math.ceil(cost.seconds)}")


def label(guess: dict[str, Any]) -> str:
    """A guess of ``Predictor.top`` as the page names it: the class, then its family / manufacturer if known."""
    parents = lineage(guess)
    return f"{guess['class']} ({parents})" if parents else guess["class"]


def describe(predictor: Predictor, path: str | Path, crop_banner: bool | None = None, method: str = "gradcam",
             explain_class: str = TOP_CLASS, zoom: Zoom | None = None, budget: CamBudget | None = None) -> Shown:
    """Predict the image at ``path`` as ``fgvc predict`` does (top 5; ``crop_banner`` as its ``--crop-banner``,
    None: auto; with ``zoom``, as ``fgvc predict --zoom``, the box drawn on the photo) and explain
    ``explain_class`` with ``method`` on the whole view; a per-channel method over ``budget`` is refused (the
    prediction is still shown).

    Messages name the file by its own name, not by the server's copy of the upload. An upload has lost its
    folder, so auto never cuts its banner: a photo named as FGVC-Aircraft's are, left with its banner by a run
    that learnt them without, gets a note to tick "Crop FGVC banner".
    """
    name = Path(path).name
    rows = banner_rows(predictor.cfg, path, crop_banner)
    try:
        image = load_image(path, rows)
    except BadImageError as err:
        return Shown(f"fgvc: error: {name}: {err.reason}", {}, "", None, None)
    looking = dataclasses.replace(predictor, zoom=zoom)  # its calibration: the one fitted with or without zoom
    [prediction] = looking.predict([image])
    result = prediction_entry(looking, name, prediction, TOPK)
    top_class = explain_class == TOP_CLASS
    target = int(np.argmax(prediction.probabilities)) if top_class else predictor.classes.index(explain_class)
    refusal = budget.refusal(method, budget.estimate(predictor, image)) if (
        budget is not None and method in PER_CHANNEL_METHODS) else None
    explanation = None if refusal else explain(predictor, image, target, method, prediction.probabilities)
    text = format_predictions([result], zoom=prediction.box is not None, unknown="unknown" in result).rstrip("\n")
    message = f"{name}: {method} for {predictor.classes[target]}" + (" (the top class)" if top_class else "")
    photo = np.asarray(visible_part(image, predictor.view).convert("RGB")) if explanation is None else explanation.image
    if prediction.box is not None:
        message += f"; {format_box(prediction.box)}"
        offset = visible_box(image.width, image.height, predictor.view)[:2]
        photo = np.asarray(draw_box(Image.fromarray(photo), prediction.box, offset))
    if prediction.unknown:
        message += f"; {format_unknown(result['unknown']).strip()}"
    if not rows and trained_without_banner(predictor.cfg) and is_original_name(name):
        message += f"; {BANNER_NOTE}"
    if refusal:
        message = f"fgvc: error: {name}: {refusal}"
    return Shown(message, {label(guess): guess["probability"] for guess in result["top"]}, text, photo,
                 None if explanation is None else explanation.overlay)


def check_port_free(host: str, port: int) -> None:
    """Refuse a port that another program holds, before the checkpoint is loaded."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}): is another server using it? "
                              f"Pick another --port") from err


def example_files(paths: Sequence[str | Path]) -> list[Path]:
    """The example images: files as given, folders searched for images; a missing one is refused."""
    files = expand_images(paths)
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise ConfigError(f"example image(s) not found: {', '.join(missing)}")
    return files


def build_app(predictor: Predictor, examples: Sequence[Path] = (), title: str = "fgvc", zoom: Zoom = DEFAULT_ZOOM,
              cam_budget: float = CAM_BUDGET_S, queue_size: int = QUEUE_SIZE) -> Any:
    """The Gradio ``Blocks`` page of ``predictor`` (gradio is imported here, with its analytics off); its zoom
    checkbox looks twice with the settings ``zoom``; ``cam_budget`` and ``queue_size`` as in ``serve``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    budget = CamBudget(cam_budget)

    def show(path: str | None, crop_banner: bool, method: str, explain_class: str, zoomed: bool) -> tuple[Any, ...]:
        if path is None:
            return "", None, "", None, None
        shown = describe(predictor, path, crop_banner, method, explain_class, zoom if zoomed else None, budget)
        css_class = "fgvc-error" if shown.overlay is None else "fgvc-done"
        message = f'<p class="{css_class}">{html.escape(shown.message)}</p>'
        return message, shown.confidences or None, shown.text, shown.photo, shown.overlay

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"# {title}\nDrop in a photo: the top-{TOPK} variants with their family and manufacturer, "
                    f"and where the network looked.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Upload a photo", type="filepath", elem_id="upload")
                crop = gr.Checkbox(label="Crop FGVC banner", value=False, elem_id="crop-banner",
                                   info=f"cut the {predictor.cfg.banner_px}-px copyright strip of FGVC-Aircraft photos")
                look_closer = gr.Checkbox(label="Zoom", value=predictor.cfg.eval_zoom, elem_id="zoom",
                                          info="look twice: also classify the box around where the network "
                                          "found the top class (drawn on the photo), and average")
                method = gr.Radio(list(CAM_METHODS), value="gradcam", label="CAM method", elem_id="method",
                                  info=f"{' and '.join(PER_CHANNEL_METHODS)} run one forward pass per channel: "
                                  f"refused when estimated over {cam_budget:g} s")
                target = gr.Dropdown([TOP_CLASS, *predictor.classes], value=TOP_CLASS, label="Explain",
                                     elem_id="explain-class")
                if examples:
                    gr.Examples([[str(path)] for path in examples], inputs=[upload], label="Examples")
            with gr.Column(scale=2):
                message = gr.HTML(elem_id="message")
                confidences = gr.Label(num_top_classes=TOPK, label=f"Top {TOPK}", elem_id="top")
                with gr.Row():
                    photo = gr.Image(label="Photo", type="numpy", interactive=False, height=280, format="png",
                                     elem_id="photo")
                    overlay = gr.Image(label="CAM", type="numpy", interactive=False, height=280, format="png",
                                       elem_id="overlay")
                text = gr.Textbox(label="fgvc predict", lines=TOPK + 1, interactive=False, elem_id="predict-text")
        # one photo at a time; a visitor's clicks while it works collapse into the last one
        gr.on([upload.change, crop.change, method.change, target.change, look_closer.change], show,
              inputs=[upload, crop, method, target, look_closer], outputs=[message, confidences, text, photo, overlay],
              concurrency_limit=1, trigger_mode="always_last")
    return app.queue(max_size=queue_size)


def launch(app: Any, host: str, port: int, max_upload_mb: float = MAX_UPLOAD_MB, examples: Sequence[Path] = (),
           block: bool = True) -> None:
    """Serve ``app`` on ``host:port`` (until Ctrl-C unless ``block`` is False), refusing uploads over
    ``max_upload_mb`` MB (MiB) and files other than the ``examples`` and the uploads."""
    import gradio as gr

    app.launch(server_name=host, server_port=port, share=False, ssr_mode=False, footer_links=[], run_history=False,
               css=CSS, allowed_paths=[str(path.resolve()) for path in examples],
               max_file_size=int(max_upload_mb * 2**20), i18n=gr.I18n(en=TRANSLATIONS), prevent_thread_lock=not block)


def check_limits(max_upload_mb: float, cam_budget: float, queue_size: int) -> None:
    """Refuse a limit that would make the demo unusable or unbounded."""
    for flag, value in (("--max-upload-mb", max_upload_mb), ("--cam-budget", cam_budget), ("--queue-size", queue_size)):
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{flag} {value:g}: expected a finite number above 0")


def serve(checkpoint: str | Path, host: str = "127.0.0.1", port: int = 7860, examples: Sequence[str | Path] = (),
          device: str = "auto", view: str | None = None, zoom: Zoom = DEFAULT_ZOOM,
          max_upload_mb: float = MAX_UPLOAD_MB, cam_budget: float = CAM_BUDGET_S, queue_size: int = QUEUE_SIZE,
          calibrated: bool | None = None, unknown: bool | None = None) -> None:
    """Serve the demo page of ``checkpoint`` on ``host:port`` until Ctrl-C; ``zoom``: the settings of its zoom
    checkbox; uploads over ``max_upload_mb`` MB, per-channel CAMs estimated over ``cam_budget`` seconds and clicks
    beyond ``queue_size`` waiting are refused; ``calibrated`` and ``unknown`` as ``Predictor.from_checkpoint``
    takes them."""
    check_limits(max_upload_mb, cam_budget, queue_size)
    check_port_free(host, port)
    files = example_files(examples)
    predictor = Predictor.from_checkpoint(checkpoint, device=device, view=view, calibrated=calibrated,
                                          unknown=unknown)
    app = build_app(predictor, files, title=f"fgvc: {Path(checkpoint).parent.name} "
                    f"({predictor.cfg.arch}, {len(predictor.classes)} classes)", zoom=zoom, cam_budget=cam_budget,
                    queue_size=queue_size)
    launch(app, host, port, max_upload_mb, files)
