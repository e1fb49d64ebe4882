"""Figures for a run: each function returns a ``matplotlib.figure.Figure``.

Figures are built with ``Figure`` directly (no pyplot global state), so they work in
notebooks, scripts and headless tests alike; save with ``fig.savefig(path)``::

    from fgvc.evaluation import metrics, plots
    confusion = metrics.confusion_matrix(preds, targets, len(class_names))
    plots.confusion_figure(confusion, class_names, group_of=family_of_each_class).savefig("confusion.png")
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath
from torch.utils.data import Dataset

from fgvc.data.normalization import Normalization
from fgvc.runs.csvlog import read_rows

if TYPE_CHECKING:
    from fgvc.models.gradcam import Explanation

TEXT_PATHS = TextToPath()  # measures text from the font alone, without drawing a figure

__all__ = [
    "cam_figure",
    "confusion_figure",
    "confusion_pairs_figure",
    "curves_figure",
    "denormalize",
    "overlays_figure",
    "reliability_figure",
    "samples_figure",
]


def _group_order(group_of: list[str]) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Class order with each group's classes adjacent (groups by first appearance, stable
    inside a group) and the (name, start, stop) span of each group in that order."""
    groups = list(dict.fromkeys(group_of))
    rank = {name: i for i, name in enumerate(groups)}
    order = np.array(sorted(range(len(group_of)), key=lambda c: (rank[group_of[c]], c)), dtype=np.int64)
    spans, start = [], 0
    for name in groups:
        stop = start + sum(1 for g in group_of if g == name)
        spans.append((name, start, stop))
        start = stop
    return order, spans


def _image_panels(axes: Iterable[Axes]) -> None:
    """Show ``axes`` as bare image panels: no frame, no ticks. (Hidden ticks would still be made and measured by
    the layout at every save: about half of the time a figure of a dozen images takes.)"""
    for ax in axes:
        ax.set(xticks=[], yticks=[])
        ax.set_axis_off()


def _rc_points(name: str) -> float:
    """A size from matplotlib's settings in points (``"medium"`` and the like resolved for fonts)."""
    value = mpl.rcParams[name]
    return FontProperties(size=value).get_size_in_points() if isinstance(value, str) else float(value)


def _text_inches(texts: Iterable[str], size: float, weight: str = "normal") -> float:
    """The width in inches of the widest of ``texts`` at ``size`` points, from the font's metrics (0 for none)."""
    font = FontProperties(size=size, weight=weight)
    widths = [TEXT_PATHS.get_text_width_height_descent(text, font, ismath=False)[0] for text in texts]
    return max(widths, default=0.0) / 72


def _margins(fig: Figure, left: float, right: float, bottom: float, top: float, gap: float) -> None:
    """Place ``fig``'s grid of axes with margins and a gap between axes in inches, for a figure whose labels
    never change size: the constrained layout finds the same places but measures every label at each save, which
    costs more than the drawing."""
    width, height = fig.get_size_inches()
    columns, rows = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()[::-1]
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gap * columns / (width - left - right - gap * (columns - 1)),
                        hspace=gap * rows / (height - bottom - top - gap * (rows - 1)))


def confusion_figure(
    confusion: np.ndarray,
    class_names: list[str],
    group_of: list[str] | None = None,
    normalize: bool = True,
) -> Figure:
    """Confusion-matrix heat map, readable at 100 classes.

    Rows are true classes, columns predictions. With ``group_of`` (a group name per
    class, e.g. family or manufacturer) classes of a group are adjacent, separated by
    thin lines and labelled on the top and right axes. ``normalize`` shows each row as
    the share of its true class; otherwise counts. A square-root colour scale keeps
    single confusions visible; empty cells are white.
    """
    confusion = np.asarray(confusion)
    num_classes = len(class_names)
    if confusion.shape != (num_classes, num_classes):
        raise ValueError(
            f"confusion has shape {confusion.shape}; "
            f"expected ({num_classes}, {num_classes}) for {num_classes} class names"
        )
    if group_of is not None and len(group_of) != num_classes:
        raise ValueError(f"group_of has {len(group_of)} entries; expected {num_classes} (one per class)")

    order, spans = _group_order(group_of) if group_of is not None else (np.arange(num_classes), [])
    matrix = confusion[np.ix_(order, order)].astype(np.float64)
    if normalize:
        support = matrix.sum(1, keepdims=True)
        matrix = np.divide(matrix, support, out=np.zeros_like(matrix), where=support > 0)
    vmax = 1.0 if normalize else max(float(matrix.max()), 1.0)

    side = max(4.5, 0.16 * num_classes)  # the matrix, square, in inches
    label_size = 6 if num_classes > 30 else 8
    names = [class_names[c] for c in order]
    group_names = [name for name, _, _ in spans]
    # Margins in inches from the widest label, measured from the font (the constrained layout would draw the
    # whole figure to measure it, several times the cost of the drawing at 100 classes): tick labels and their
    # tick, the axis label, the title; on the right the groups, the colour bar, its tick labels and its label.
    tick = (2 + _rc_points("xtick.major.pad")) / 72
    axis_label, title = 0.25, 0.35
    names_width = _text_inches(names, label_size) + tick
    groups_width = _text_inches(group_names, label_size + 1, "bold") + tick if spans else 0.0
    cbar_labels = _text_inches(["0.00" if normalize else f"{vmax:.0f}"], _rc_points("ytick.labelsize"))
    left, bottom, top = 0.1 + axis_label + names_width, 0.1 + axis_label + names_width, 0.1 + title + groups_width
    cbar_left, cbar_width = left + side + groups_width + 0.1, 0.6 * side / 30  # 60 % of the side, 30 to 1
    width = cbar_left + cbar_width + tick + cbar_labels + axis_label + 0.1
    height = bottom + side + top
    fig = Figure(figsize=(width, height), dpi=150)
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes((cbar_left / width, (bottom + 0.2 * side) / height, cbar_width / width, 0.6 * side / height))
    cmap = mpl.colormaps["viridis"].with_extremes(bad="white")
    image = ax.imshow(
        np.ma.masked_equal(matrix, 0.0), cmap=cmap, norm=PowerNorm(0.5, vmin=0.0, vmax=vmax), interpolation="nearest"
    )
    cbar = fig.colorbar(image, cax=cax)
    if normalize:
        cbar.set_ticks([0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0])  # "0.00" is the widest label, as measured above
    cbar.set_label("share of true class (sqrt scale)" if normalize else "count (sqrt scale)")

    ticks = np.arange(num_classes)
    ax.set_xticks(ticks, names, rotation=90, fontsize=label_size)
    ax.set_yticks(ticks, names, fontsize=label_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.tick_params(length=2, width=0.5)

    if spans:
        for _, start, _ in spans[1:]:
            ax.axhline(start - 0.5, color="0.6", linewidth=0.4)
            ax.axvline(start - 0.5, color="0.6", linewidth=0.4)
        centres = [(start + stop - 1) / 2 for _, start, stop in spans]
        top_axis = ax.secondary_xaxis("top")
        top_axis.set_xticks(centres, group_names, rotation=90, fontsize=label_size + 1, fontweight="bold")
        right_axis = ax.secondary_yaxis("right")
        right_axis.set_yticks(centres, group_names, fontsize=label_size + 1, fontweight="bold")
        for axis in (top_axis, right_axis):
            axis.tick_params(length=0)
    ax.set_title("Confusion matrix" + (" (rows normalised)" if normalize else ""))
    return fig


def reliability_figure(bins: list[dict], ece: float) -> Figure:
    """Reliability diagram of the top-1 probability: per confidence bin (``metrics.reliability_bins``) the share
    of right guesses as a bar, the bin's mean confidence as a dot and the diagonal a calibrated model follows;
    below, how many images each bin holds. ``ece`` (a fraction) goes into the title."""
    fig = Figure(figsize=(5.5, 6))
    accuracy_ax, count_ax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    _margins(fig, left=0.8, right=0.15, bottom=0.5, top=0.3, gap=0.2)  # counts of up to 5 digits
    filled = [b for b in bins if b["images"]]
    lows, widths = [b["low"] for b in filled], [b["high"] - b["low"] for b in filled]
    centres = [low + width / 2 for low, width in zip(lows, widths)]
    accuracy_ax.plot([0, 1], [0, 1], "--", color="0.5", lw=1, label="calibrated")
    accuracy_ax.bar(lows, [b["accuracy"] for b in filled], widths, align="edge", edgecolor="white",
                    label="accuracy (share right)")
    accuracy_ax.plot(centres, [b["confidence"] for b in filled], "o", color="C1", label="mean confidence")
    accuracy_ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
                    title=f"Reliability of the top-1 probability: ECE {100 * ece:.2f}%")
    accuracy_ax.legend(loc="upper left")
    count_ax.bar(lows, [b["images"] for b in filled], widths, align="edge", color="0.6", edgecolor="white")
    for centre, b in zip(centres, filled):
        count_ax.annotate(str(b["images"]), (centre, b["images"]), ha="center", va="bottom", fontsize=7)
    count_ax.set(xlabel="confidence (top-1 probability)", ylabel="images")
    count_ax.margins(y=0.25)
    for ax in (accuracy_ax, count_ax):
        ax.grid(alpha=0.3)
    return fig


def curves_figure(run_dir: str | Path) -> Figure:
    """Training loss per logged step (with each epoch's eval loss) and eval accuracy per epoch,
    read from the run folder's ``steps.csv`` and ``epochs.csv``."""
    run_dir = Path(run_dir)
    steps_file, epochs_file = run_dir / "steps.csv", run_dir / "epochs.csv"
    steps = read_rows(steps_file) if steps_file.exists() else []
    epochs = read_rows(epochs_file) if epochs_file.exists() else []
    fig = Figure(figsize=(11, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    _margins(fig, left=0.75, right=0.15, bottom=0.5, top=0.55, gap=0.7)
    if steps:
        per_epoch = max(r["step"] for r in steps) / max(r["epoch"] for r in steps)
        loss_ax.plot([r["step"] / per_epoch for r in steps], [r["loss"] for r in steps], lw=1,
                     label="train loss (every logged step)")
    if epochs:
        x = [r["epoch"] for r in epochs]
        loss_ax.plot(x, [r["eval_loss"] for r in epochs], "o-", label="eval loss")
        for key, label in (("eval_top1", "top-1"), ("eval_top5", "top-5"), ("eval_mean_class_acc", "mean per-class")):
            acc_ax.plot(x, [100 * r[key] for r in epochs], "o-", label=label)
        if "ema_eval_top1" in epochs[0]:  # a run with --ema-decay: its moving average of the weights too
            loss_ax.plot(x, [r["ema_eval_loss"] for r in epochs], "s--", label="EMA eval loss")
            acc_ax.plot(x, [100 * r["ema_eval_top1"] for r in epochs], "s--", label="EMA top-1")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Evaluation accuracy", ylim=(0, 100))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(loc="best")
    fig.suptitle(run_dir.name)
    return fig


def denormalize(image: torch.Tensor, norm: Normalization) -> np.ndarray:
    """A normalised (or uint8) (3, H, W) tensor back to an (H, W, 3) float RGB array in [0, 1]."""
    if image.dtype == torch.uint8:
        return image.permute(1, 2, 0).numpy() / 255
    mean, std = torch.tensor(norm.mean)[:, None, None], torch.tensor(norm.std)[:, None, None]
    return (image.detach().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def samples_figure(dataset: Dataset, classes: list[str], norm: Normalization, count: int = 12,
                   seed: int = 0) -> Figure:
    """A grid of ``count`` random training samples as the augmentations leave them, titled with their class.

    The grid is one image of tiles on one bare axes, 2.2 inches a column: an axes per sample would be made and
    laid out at every save, which costs several times the drawing."""
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(dataset), generator=generator)[:count].tolist()
    samples = [dataset[index] for index in indices]
    images = [denormalize(image, norm) for image, _ in samples]
    columns = min(6, len(images))
    rows = -(-len(images) // columns)
    height, width = max(image.shape[0] for image in images), max(image.shape[1] for image in images)
    gap = max(1, width // 10)
    inches_per_pixel = 2.2 / (width + gap)
    title = round(0.3 / inches_per_pixel)  # room above each tile for its class name
    grid = np.ones((rows * (height + title), columns * (width + gap), 3))
    fig_height = grid.shape[0] * inches_per_pixel + 0.45  # and for the figure's title
    fig = Figure(figsize=(columns * 2.2, fig_height))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - 0.45 / fig_height))
    for position, (image, (_, label)) in enumerate(zip(images, samples)):
        top, left = (position // columns) * (height + title) + title, (position % columns) * (width + gap) + gap // 2
        grid[top:top + image.shape[0], left:left + image.shape[1]] = image
        ax.text(left + width / 2, top - title * 0.15, classes[label], fontsize=9, ha="center", va="bottom")
    ax.imshow(grid, aspect="auto")
    _image_panels([ax])
    fig.suptitle("Augmented training samples (random crop, flip, affine)", y=1.0 - 0.1 / fig_height, va="top")
    return fig


def cam_figure(explanations: list[Explanation], classes: list[str], true_labels: list[int]) -> Figure:
    """One row per image: the image, the Grad-CAM heatmap, and the overlay, titled true vs predicted."""
    fig = Figure(figsize=(9, 2.6 * len(explanations)), layout="constrained")
    axes = fig.subplots(len(explanations), 3, squeeze=False)
    for row, explanation, truth in zip(axes, explanations, true_labels):
        verdict = "correct" if explanation.predicted == truth else "wrong"
        row[0].imshow(explanation.image)
        row[0].set_title(f"true: {classes[truth]}", fontsize=9)
        row[1].imshow(explanation.cam, cmap="jet", vmin=0, vmax=1)
        row[1].set_title(f"CAM for: {classes[explanation.target]}", fontsize=9)
        row[2].imshow(explanation.overlay)
        row[2].set_title(f"predicted: {classes[explanation.predicted]} "
                         f"({100 * explanation.probability:.0f}%, {verdict})", fontsize=9)
    _image_panels(fig.axes)
    return fig


def overlays_figure(explanations: dict[str, Explanation], title: str) -> Figure:
    """Overlays side by side, each titled with its key (e.g. the CAM methods of one image)."""
    fig = Figure(figsize=(2.6 * len(explanations), 2.8), layout="constrained")
    for ax, (name, explanation) in zip(fig.subplots(1, len(explanations), squeeze=False)[0],
                                         explanations.items()):
        ax.imshow(explanation.overlay)
        ax.set_title(name, fontsize=10)
    _image_panels(fig.axes)
    fig.suptitle(title)
    return fig


def confusion_pairs_figure(pairs: list[tuple[Explanation, Explanation]], classes: list[str]) -> Figure:
    """One row per confused pair: the image, Grad-CAM for the (wrongly) predicted class, Grad-CAM for the true class."""
    fig = Figure(figsize=(9, 2.8 * max(1, len(pairs))), layout="constrained")
    axes = fig.subplots(max(1, len(pairs)), 3, squeeze=False)
    for row, (for_predicted, for_true) in zip(axes, pairs):
        row[0].imshow(for_true.image)
        row[0].set_title(f"true {classes[for_true.target]}", fontsize=9)
        row[1].imshow(for_predicted.overlay)
        row[1].set_title(f"evidence for {classes[for_predicted.target]} (predicted, "
                         f"{100 * for_predicted.probability:.0f}%)", fontsize=9)
        row[2].imshow(for_true.overlay)
        row[2].set_title(f"evidence for {classes[for_true.target]} (true)", fontsize=9)
    _image_panels(fig.axes)
    if not pairs:
        fig.suptitle("no misclassified image among the most-confused pairs")
    return fig
