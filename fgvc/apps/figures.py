"""The README's figures and the cover, regenerated from code and from a run folder.

    fgvc figures --run logs/figures-demo --out source --cover cover.jpg   (what `make figures` runs)

``scaling.png`` is drawn from ``efficientnet_pytorch``'s own coefficient table; the curves,
augmented samples and Grad-CAM grid come from the run folder given (the demo run, on
synthetic data, when ``make figures`` made it).
"""

from __future__ import annotations

import io
from pathlib import Path

from efficientnet_pytorch.utils import efficientnet_params
from matplotlib.figure import Figure
from PIL import Image

from fgvc.apps import cam_examples
from fgvc.data.datasets import augmented
from fgvc.data.kinds import training_split
from fgvc.evaluation import plots
from fgvc.evaluation.analysis import read_confusion
from fgvc.models.backbones import model_spec
from fgvc.models.predictor import Predictor

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # depth, width, resolution bases found by the paper's grid search on B0


def scaling_table() -> list[tuple[str, float, float, int, float]]:
    """(name, width, depth, resolution, dropout) of B0..B7, as ``efficientnet_pytorch`` builds them."""
    return [(f"B{i}", *efficientnet_params(f"efficientnet-b{i}")) for i in range(8)]


def scaling_figure() -> Figure:
    """Width, depth and resolution multipliers of B0..B7 against the compound rule alpha^phi, beta^phi, gamma^phi."""
    table = scaling_table()
    names = [row[0] for row in table]
    fig = Figure(figsize=(10, 4), layout="constrained")
    multipliers, resolution = fig.subplots(1, 2)
    multipliers.plot(names, [row[1] for row in table], "o-", label="width (channels)")
    multipliers.plot(names, [row[2] for row in table], "s-", label="depth (layers)")
    phis = range(8)
    multipliers.plot(names, [BETA ** p for p in phis], ":", color="C0", label=r"$\beta^\phi$, $\beta$=1.1")
    multipliers.plot(names, [ALPHA ** p for p in phis], ":", color="C1", label=r"$\alpha^\phi$, $\alpha$=1.2")
    multipliers.set(title="Multipliers over B0", ylabel="x B0")
    resolution.plot(names, [row[3] for row in table], "o-", color="C2", label="input resolution")
    resolution.plot(names, [224 * GAMMA ** p for p in phis], ":", color="C2", label=r"224 $\gamma^\phi$, $\gamma$=1.15")
    resolution.set(title="Resolution", ylabel="pixels")
    for ax in (multipliers, resolution):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("EfficientNet compound scaling: the released B0-B7 (solid) and the rule (dotted)")
    return fig


def _save_jpeg(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    Image.open(buffer).convert("RGB").save(path, quality=90)


def write_figures(run_dir: str | Path, out: str | Path = "source", cover: str | Path = "cover.jpg",
                  count: int = 4) -> list[Path]:
    """Write scaling.png and the demo_*.png figures of ``run_dir`` into ``out``, and the cover."""
    run_dir, out = Path(run_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor.from_checkpoint(run_dir / "last.pt")
    cfg, classes = predictor.cfg, predictor.classes
    norm = model_spec(cfg.arch).norm
    images = cam_examples.load_split_images(cfg, cfg.eval_split)
    picked = cam_examples.pick_examples(predictor, images, count)
    explanations, labels = cam_examples.explain_examples(predictor, images, picked)
    samples = augmented(cfg, training_split(cfg))
    figures = {"scaling.png": scaling_figure(), "demo_curves.png": plots.curves_figure(run_dir),
               "demo_samples.png": plots.samples_figure(samples, classes, norm, count=12),
               "demo_gradcam.png": plots.cam_figure(explanations, classes, labels),
               "demo_confusion.png": plots.confusion_figure(*read_confusion(run_dir / f"eval-{cfg.eval_split}"))}
    written = []
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=100)
        written.append(out / name)
    titled = {f"{i}. {classes[label]}": e for i, (e, label) in enumerate(zip(explanations, labels), start=1)}
    cover_fig = plots.overlays_figure(titled, "fgvc: fine-grained aircraft classification, and where the network looks")
    _save_jpeg(cover_fig, Path(cover))
    written.append(Path(cover))
    return written
