"""The data contract, checked through the paths users take: the banner is cropped everywhere, the three
augmentations reach the training images (and only them) with their configured ranges, class index = line
order of the annotation files, and image ids with leading zeros and class names with '/' and spaces survive
training, evaluation, predict, Grad-CAM and the CSV reports.

The dataset here paints its banner magenta, a colour that no sky, livery or stripe of the synthetic
aircraft comes near, so one banner pixel that survives cropping shows.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PROBABILITY_TOLERANCE, MakeDataset, Ranked, agree, ranked, tiny_config
from PIL import Image

from fgvc.apps.cam_examples import load_split_images
from fgvc.apps.cli import main
from fgvc.core.config import LEVELS, make_config
from fgvc.data import (
    AFFINE_SCALE,
    AFFINE_TRANSLATE,
    FGVC_FOLDER,
    LEVEL_FILES,
    Augment,
    Augmentation,
    AugmentedSplit,
    build_loaders,
    check_data,
    dataset_labels,
    image_files,
    load_image,
)
from fgvc.data.synthetic_render import BANNER_HEIGHT
from fgvc.models.backbones import model_spec
from fgvc.models.checkpoint import load_checkpoint, load_trained
from fgvc.models.gradcam import explain
from fgvc.models.predictor import Predictor
from fgvc.training.engine import fit

MAGENTA = (255, 0, 255)
# Real FGVC-Aircraft names that trip up naive code: a slash (a path separator), two slashes, a space.
RENAMED = {"AR300B/C": "F-16A/B", "AR300-100": "F/A-18", "BA-8 Mk 3": "Cessna 172"}
ZERO_ID = "0034309"  # an image id with leading zeros, as FGVC-Aircraft has


def banner_pixels(rgb: np.ndarray) -> int:
    """How many pixels of a uint8 (H, W, 3) image are banner magenta (JPEG and resampling allowed for)."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return int(((r >= 200) & (b >= 200) & (g <= 60)).sum())


def tensor_to_rgb(tensor: torch.Tensor, arch: str) -> np.ndarray:
    """A normalised (or uint8) (3, H, W) input back to uint8 RGB."""
    if tensor.dtype == torch.uint8:
        return tensor.permute(1, 2, 0).numpy()
    norm = model_spec(arch).norm
    mean, std = torch.tensor(norm.mean)[:, None, None], torch.tensor(norm.std)[:, None, None]
    return (tensor * std + mean).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def rewrite_annotations(data: Path, edit: Callable[[str, str], tuple[str, str]]) -> None:
    """Apply ``edit(image_id, name) -> (image_id, name)`` to every line of every ``images_<level>_*.txt``."""
    for path in data.glob("images_*_*.txt"):
        if path.name == "images_box.txt":
            continue
        lines = [line.split(" ", 1) for line in path.read_text().splitlines()]
        path.write_text("".join(" ".join(edit(image_id, name)) + "\n" for image_id, name in lines))


@pytest.fixture(scope="module")
def contract_root(make_dataset: MakeDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 synthetic classes with a magenta banner; three classes renamed to real names with '/' and spaces;
    one image renamed to id 0034309; every class file in an order that is neither sorted nor the original."""
    root = tmp_path_factory.mktemp("contract") / "root"
    shutil.copytree(make_dataset(6, 12, size=(128, 116), banner_colour=MAGENTA), root)
    data = root / FGVC_FOLDER / "data"
    first_test_id = (data / "images_variant_test.txt").read_text().split(" ", 1)[0]
    (data / "images" / f"{first_test_id}.jpg").rename(data / "images" / f"{ZERO_ID}.jpg")
    rewrite_annotations(data, lambda i, name: (ZERO_ID if i == first_test_id else i, RENAMED.get(name, name)))
    for level in LEVELS:
        names = [RENAMED.get(n, n) for n in (data / LEVEL_FILES[level]).read_text().splitlines()]
        names = names[1::2] + names[0::2]  # interleaved: not sorted, not as generated
        (data / LEVEL_FILES[level]).write_text("".join(f"{n}\n" for n in names))
    return root


def class_lines(root: Path, level: str = "variant") -> list[str]:
    return (root / FGVC_FOLDER / "data" / LEVEL_FILES[level]).read_text().splitlines()


def contract_config(root: Path, preset: str, **overrides: object):
    """A preset's config pointed at the contract data: no download, in-process loading, small batches."""
    return make_config(preset, **{"data_root": str(root), "download": False, "workers": 0, "batch_size": 8,
                                  **overrides})


@pytest.fixture(scope="module")
def contract_run(contract_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch on the contract data (variant level): a checkpoint whose answers depend on the photo. (Lite0 from
    its ImageNet weights: B0 from random weights answers every photo alike after an epoch, to the sixth digit.)"""
    return fit(tiny_config(contract_root, tmp_path_factory.mktemp("runs") / "contract", epochs=1, batch_size=8,
                           arch="efficientnet-lite0", pretrained=True), progress=False)


# --- the banner ------------------------------------------------------------------------------------------

def test_the_marker_banner_is_there_to_be_found(contract_root: Path) -> None:
    path = contract_root / FGVC_FOLDER / "data" / "images" / f"{ZERO_ID}.jpg"
    raw = np.asarray(load_image(path))
    assert banner_pixels(raw[-BANNER_HEIGHT:]) >= 0.95 * BANNER_HEIGHT * raw.shape[1]
    assert banner_pixels(raw[:-BANNER_HEIGHT]) == 0  # nothing else in the picture is magenta
    assert banner_pixels(raw[:-BANNER_HEIGHT + 1]) >= raw.shape[1] // 2  # so one surviving row shows


@pytest.mark.parametrize("preset", ["b4", "demo"])
def test_loaders_from_a_preset_never_see_the_banner(contract_root: Path, preset: str) -> None:
    cfg = contract_config(contract_root, preset, img_size=128, train_split="train", eval_split="test")
    loaders = build_loaders(cfg)
    for loader in (loaders.train, loaders.eval):
        decoded = getattr(loader.dataset, "base", loader.dataset)  # below the training split's augmentations
        untransformed = copy.copy(decoded)
        untransformed.transform = None
        for index, path in enumerate(image_files(decoded)):  # what the transforms get: no banner left
            image = np.asarray(untransformed[index][0])
            assert image.shape[0] == 116 - BANNER_HEIGHT and banner_pixels(image) == 0, path
        for images, _ in loader:  # and what the network receives
            assert sum(banner_pixels(tensor_to_rgb(image, cfg.arch)) for image in images) == 0


def test_gradcam_and_notebook_images_are_banner_cropped(contract_root: Path, contract_run: Path) -> None:
    predictor = Predictor.from_checkpoint(contract_run / "last.pt", device="cpu")
    images = load_split_images(predictor.cfg, "test")
    for index in range(len(images)):
        assert banner_pixels(np.asarray(images[index][0])) == 0
    explanation = explain(predictor, images[0][0])
    assert banner_pixels(explanation.image) == 0 and explanation.image.shape[0] == 116 - BANNER_HEIGHT


def test_gradcam_command_crops_the_banner(contract_root: Path, contract_run: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    image = contract_root / FGVC_FOLDER / "data" / "images" / f"{ZERO_ID}.jpg"
    assert main(["gradcam", "--checkpoint", str(contract_run / "last.pt"), str(image), "--out", str(tmp_path),
                 "--crop-banner"]) == 0
    with Image.open(tmp_path / f"{ZERO_ID}-gradcam.png") as overlay:
        assert overlay.size == (128, 116 - BANNER_HEIGHT)


def predict_json(checkpoint: Path, image: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> Ranked:
    """``fgvc predict --json``'s six guesses for ``image``, as ``agree`` compares them."""
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(checkpoint), str(image), "--topk", "6", "--json", *flags]) == 0
    return ranked({guess["class"]: guess["probability"] for guess in json.loads(capsys.readouterr().out)[0]["top"]})


def test_predict_crop_banner_sees_exactly_the_cropped_picture(contract_root: Path, contract_run: Path,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    image = contract_root / FGVC_FOLDER / "data" / "images" / f"{ZERO_ID}.jpg"
    cropped = tmp_path / "cropped.png"  # lossless: the same pixels as the decoded picture above the banner
    Image.fromarray(np.asarray(load_image(image))[:-BANNER_HEIGHT]).save(cropped)
    with_flag = predict_json(contract_run / "last.pt", image, capsys, "--crop-banner")
    by_hand = predict_json(contract_run / "last.pt", cropped, capsys)
    without = predict_json(contract_run / "last.pt", image, capsys, "--no-crop-banner")
    # Same pixels, same computation: the same answer within rounding; the banner changes the scores far more.
    assert agree(with_flag, by_hand) and not agree(with_flag, without, slack=100 * PROBABILITY_TOLERANCE)


def test_check_data_measures_images_without_the_banner(contract_root: Path, tmp_path: Path) -> None:
    checked, problems = check_data(contract_root)
    assert problems == [] and checked == 6 * 12
    copy_root = tmp_path / "copy"
    shutil.copytree(contract_root, copy_root)
    only_banner = copy_root / FGVC_FOLDER / "data" / "images" / "0000001.jpg"
    Image.new("RGB", (128, BANNER_HEIGHT), MAGENTA).save(only_banner)  # nothing left once the banner is cut
    _, problems = check_data(copy_root)
    assert len(problems) == 1 and str(only_banner) in problems[0] and "banner" in problems[0]


# --- the augmentations -----------------------------------------------------------------------------------

class Recorder:
    """Wraps ``Augment.draw`` (wherever the class lives) and records every draw with the size of the image it
    was for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.draws: list[tuple[Augmentation, int, int, int]] = []  # (draw, image width, image height, img_size)
        original = Augment.draw

        def wrapper(augment: Augment, rng: np.random.Generator, image: Image.Image) -> Augmentation:
            augmentation = original(augment, rng, image)
            self.draws.append((augmentation, image.width, image.height, augment.img_size))
            return augmentation
        monkeypatch.setattr(Augment, "draw", wrapper)


def draws(dataset: torch.utils.data.Dataset, passes: int) -> Iterator[torch.Tensor]:
    for epoch in range(passes):
        for index in range(len(dataset)):
            yield dataset[epoch, index][0] if isinstance(dataset, AugmentedSplit) else dataset[index][0]


def test_three_augmentations_with_their_configured_ranges_on_training_images_only(
        contract_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = contract_config(contract_root, "b4", img_size=96, min_crop_scale=0.4, affine_degrees=20.0)
    loaders = build_loaders(cfg)
    recorder = Recorder(monkeypatch)
    outputs = list(draws(loaders.train.dataset, passes=8))  # 384 training draws
    count = len(outputs)
    crops = np.array([a.crop[2] * a.crop[3] / (w * h) for a, w, h, _ in recorder.draws])
    angles = np.array([a.angle for a, *_ in recorder.draws])
    flips = sum(a.flip for a, *_ in recorder.draws)
    print(f"\n{count} draws: crop area {crops.min():.3f}..{crops.max():.3f} (configured {cfg.min_crop_scale}..1), "
          f"mirrored {flips / count:.3f}, angle {angles.min():.1f}..{angles.max():.1f} "
          f"(configured +-{cfg.affine_degrees})")
    assert all(image.shape == (3, 96, 96) for image in outputs)
    # random resized crop: one per image, to the configured size, areas spanning the configured range
    assert len(crops) == count and all(size == 96 for *_, size in recorder.draws)
    assert cfg.min_crop_scale - 0.01 <= crops.min() <= cfg.min_crop_scale + 0.1 and crops.max() >= 0.9
    assert crops.max() <= 1.0
    # horizontal flip: about half (binomial sd at 384 draws is 0.026)
    assert 0.4 <= flips / count <= 0.6
    # random affine: each parameter inside its range, the rotation spanning it
    for augmentation, *_ in recorder.draws:
        (tx, ty), size = augmentation.translate, 96
        assert abs(augmentation.angle) <= cfg.affine_degrees
        assert abs(tx) <= AFFINE_TRANSLATE[0] * size + 1 and abs(ty) <= AFFINE_TRANSLATE[1] * size + 1
        assert AFFINE_SCALE[0] <= augmentation.scale <= AFFINE_SCALE[1]
        assert abs(augmentation.shear) <= cfg.affine_degrees / 2
    assert angles.min() <= -0.8 * cfg.affine_degrees and angles.max() >= 0.8 * cfg.affine_degrees
    assert max(abs(a.translate[0]) for a, *_ in recorder.draws) >= 2  # it does shift
    assert np.ptp([a.scale for a, *_ in recorder.draws]) >= 0.1  # and scale

    before = len(recorder.draws)
    first, second = list(draws(loaders.eval.dataset, 1)), list(draws(loaders.eval.dataset, 1))
    assert len(recorder.draws) == before  # no random crop, flip or affine at evaluation
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))  # deterministic inputs


# --- class order, ids and names --------------------------------------------------------------------------

@pytest.mark.parametrize("level", LEVELS)
def test_class_index_is_the_line_order_of_the_level_file(contract_root: Path, level: str) -> None:
    cfg = contract_config(contract_root, "demo", level=level)
    loaders = build_loaders(cfg)
    names = class_lines(contract_root, level)
    assert names != sorted(names) and loaders.classes == names
    data = contract_root / FGVC_FOLDER / "data"
    for loader, split in ((loaders.train, cfg.train_split), (loaders.eval, cfg.eval_split)):
        truth = dict(line.split(" ", 1) for line in (data / f"images_{level}_{split}.txt").read_text().splitlines())
        files, labels = image_files(loader.dataset), dataset_labels(loader.dataset)
        assert len(files) == len(truth)
        for path, label in zip(files, labels, strict=True):
            assert names[label] == truth[Path(path).stem], path


def test_a_checkpoint_gives_back_the_class_order_of_the_file(contract_root: Path, tmp_path: Path) -> None:
    run = fit(tiny_config(contract_root, tmp_path / "family", level="family", epochs=1, img_size=32, batch_size=16),
              progress=False)
    assert load_checkpoint(run / "last.pt")["classes"] == class_lines(contract_root, "family")
    assert load_trained(run / "last.pt").classes == class_lines(contract_root, "family")
    with (run / "eval-test" / "confusion.csv").open(newline="") as f:
        assert next(csv.reader(f))[1:] == class_lines(contract_root, "family")


def test_leading_zeros_and_odd_names_survive_every_command(contract_root: Path, contract_run: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    classes = class_lines(contract_root)
    assert set(RENAMED.values()) <= set(classes)
    checkpoint = contract_run / "last.pt"
    assert load_checkpoint(checkpoint)["classes"] == classes  # training

    assert main(["evaluate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "eval")]) == 0  # evaluation
    with (tmp_path / "eval" / "per_class.csv").open(newline="") as f:
        assert sorted(row["class"] for row in csv.DictReader(f)) == sorted(classes)
    with (tmp_path / "eval" / "confusion.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == classes and [row[0] for row in rows[1:]] == classes
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["num_samples"] == 6 * 4

    image = contract_root / FGVC_FOLDER / "data" / "images" / f"{ZERO_ID}.jpg"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(checkpoint), str(image), "--topk", "6", "--csv", "--crop-banner"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))  # predict's CSV report
    assert {row["file"] for row in rows} == {str(image)} and sorted(row["class"] for row in rows) == sorted(classes)

    out = tmp_path / "cams"
    for name in RENAMED.values():  # Grad-CAM for each odd name: the file name keeps the id and stays in --out
        assert main(["gradcam", "--checkpoint", str(checkpoint), str(image), "--out", str(out), "--class", name,
                     "--crop-banner"]) == 0
    printed = capsys.readouterr().out
    assert all(f"gradcam for {name} " in printed for name in RENAMED.values())
    written = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
    assert written and all(len(p.parts) == 1 and p.name.startswith(ZERO_ID) for p in written)
