"""A web demo of one trained checkpoint, served with Gradio.

    fgvc serve --checkpoint logs/<run>/last.pt [--port 7860] [--host 127.0.0.1] [--examples photos/]

Drop in a photo: the page shows the top-5 variants with their family and manufacturer, the very
lines ``fgvc predict`` prints (the same ``Predictor``), and a CAM overlay for the top class or for
any class picked from a menu, with a choice of CAM method, a switch that cuts the FGVC-Aircraft
banner first and one that looks twice (``fgvc predict --zoom``: the zoomed box is drawn on the photo).
A file that is not a usable image gets the one-line message of the command line, and the server keeps
serving. Gradio is imported here alone, with its analytics off: the page and its
assets come from this process, so the demo works offline. It listens on 127.0.0.1 (this machine)
unless ``host`` says otherwise.
"""

from __future__ import annotations

import dataclasses
import html
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fgvc.config import CAM_METHODS
from fgvc.data import load_image, visible_box
from fgvc.errors import BadImageError, ConfigError
from fgvc.gradcam import explain
from fgvc.predict import Predictor, expand_images, format_coarse, format_guess, lineage
from fgvc.zoom import Zoom, draw_box, format_box

TOP_CLASS = "the top class"  # the explain menu's first choice
TOPK = 5
DEFAULT_ZOOM = Zoom()  # the settings of the zoom checkbox unless serve is given others
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
    overlay: np.ndarray | None  # the CAM over that photo


def label(guess: dict[str, Any]) -> str:
    """A guess of ``Predictor.top`` as the page names it: the class, then its family / manufacturer if known."""
    parents = lineage(guess)
    return f"{guess['class']} ({parents})" if parents else guess["class"]


def describe(predictor: Predictor, path: str | Path, crop_banner: bool = False, method: str = "gradcam",
             explain_class: str = TOP_CLASS, zoom: Zoom | None = None) -> Shown:
    """Predict the image at ``path`` as ``fgvc predict`` does (top 5; with ``zoom``, as ``fgvc predict --zoom``,
    the box drawn on the photo) and explain ``explain_class`` with ``method`` on the whole view.

    Messages name the file by its own name, not by the server's copy of the upload.
    """
    name = Path(path).name
    try:
        image = load_image(path, predictor.cfg.banner_px if crop_banner else 0)
    except BadImageError as err:
        return Shown(f"fgvc: error: {name}: {err.reason}", {}, "", None, None)
    [prediction] = dataclasses.replace(predictor, zoom=zoom).predict([image])
    top = predictor.top(prediction.probabilities, TOPK)
    top_class = explain_class == TOP_CLASS
    target = int(np.argmax(prediction.probabilities)) if top_class else predictor.classes.index(explain_class)
    explanation = explain(predictor, image, target, method)
    lines = [name, *(format_guess(rank, guess) for rank, guess in enumerate(top, start=1))]
    coarse = format_coarse(predictor.coarse(prediction.probabilities))
    lines += [coarse] if coarse else []
    message = f"{name}: {method} for {predictor.classes[target]}" + (" (the top class)" if top_class else "")
    photo = explanation.image
    if prediction.box is not None:
        lines.append(f"  {format_box(prediction.box)}")
        message += f"; {format_box(prediction.box)}"
        offset = visible_box(image.width, image.height, predictor.view)[:2]
        photo = np.asarray(draw_box(Image.fromarray(photo), prediction.box, offset))
    return Shown(message, {label(guess): guess["probability"] for guess in top}, "\n".join(lines), photo,
                 explanation.overlay)


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


def build_app(predictor: Predictor, examples: Sequence[Path] = (), title: str = "fgvc",
              zoom: Zoom = DEFAULT_ZOOM) -> Any:
    """The Gradio ``Blocks`` page of ``predictor`` (gradio is imported here, with its analytics off); its zoom
    checkbox looks twice with the settings ``zoom``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    def show(path: str | None, crop_banner: bool, method: str, explain_class: str, zoomed: bool) -> tuple[Any, ...]:
        if path is None:
            return "", None, "", None, None
        shown = describe(predictor, path, crop_banner, method, explain_class, zoom if zoomed else None)
        css_class = "fgvc-error" if shown.photo is None else "fgvc-done"
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
                method = gr.Radio(list(CAM_METHODS), value="gradcam", label="CAM method", elem_id="method")
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
        gr.on([upload.change, crop.change, method.change, target.change, look_closer.change], show,
              inputs=[upload, crop, method, target, look_closer], outputs=[message, confidences, text, photo, overlay])
    return app


def serve(checkpoint: str | Path, host: str = "127.0.0.1", port: int = 7860, examples: Sequence[str | Path] = (),
          device: str = "auto", view: str | None = None, zoom: Zoom = DEFAULT_ZOOM) -> None:
    """Serve the demo page of ``checkpoint`` on ``host:port`` until Ctrl-C; ``zoom``: the settings of its zoom
    checkbox."""
    check_port_free(host, port)
    files = example_files(examples)
    predictor = Predictor.from_checkpoint(checkpoint, device=device, view=view)
    app = build_app(predictor, files, title=f"fgvc: {Path(checkpoint).parent.name} "
                    f"({predictor.cfg.arch}, {len(predictor.classes)} classes)", zoom=zoom)
    app.launch(server_name=host, server_port=port, share=False, ssr_mode=False, footer_links=[], run_history=False,
               css=CSS, allowed_paths=[str(path.resolve()) for path in files])
