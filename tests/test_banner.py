"""FGVC-Aircraft's banner at prediction time: a run that learnt the dataset without its banner cuts it from the
dataset's own photos by default (``fgvc predict``, ``fgvc gradcam``, ``Predictor`` and the demo agree with
``fgvc evaluate``), and from nothing else unless told."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from helpers import PROBABILITY_TOLERANCE, same_top1
from PIL import Image

from fgvc.apps.banner import banner_rows
from fgvc.apps.cam_examples import load_split_images
from fgvc.apps.cli import main
from fgvc.apps.serve import BANNER_NOTE, describe
from fgvc.data.layout import FGVC_FOLDER, PREPARED_MARKER, image_path, is_original_image
from fgvc.models.predictor import Predictor

NOTE = "FGVC-Aircraft banner from"


def test_an_original_photo_is_known_by_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = image_path(tmp_path / "data", "0034309")
    assert is_original_image(original) and is_original_image(str(original))
    original.parent.mkdir(parents=True)
    monkeypatch.chdir(original.parent)
    assert is_original_image("0034309.jpg")  # relative to the working directory
    assert not is_original_image(tmp_path / "photos" / "0034309.jpg")  # a copy outside the layout
    assert not is_original_image(original.with_name("plane.jpg"))  # not named as the dataset names its photos
    assert not is_original_image(original.with_name("034309.jpg"))
    assert not is_original_image(original.parent / "more" / "0034309.jpg")  # a folder below images/
    assert not is_original_image(tmp_path / "data" / FGVC_FOLDER / "images" / "0034309.jpg")  # no data/
    prepared = image_path(tmp_path / "prepared", "0034309")
    assert is_original_image(prepared)
    (tmp_path / "prepared" / FGVC_FOLDER).mkdir(parents=True)
    (tmp_path / "prepared" / FGVC_FOLDER / PREPARED_MARKER).write_text("{}\n")  # fgvc prepare cut its banner
    assert not is_original_image(prepared)


@pytest.fixture(scope="module")
def short_run_checkpoint(short_run: Path) -> Path:
    """conftest's short run (banner cut in training, as every run's): its last.pt."""
    return short_run / "last.pt"


def top1(checkpoint: Path, files: list[str], capsys: pytest.CaptureFixture[str], *flags: str
         ) -> tuple[dict[str, tuple[str, float]], str]:
    """``fgvc predict --json``'s top class and probability of each file, and its stderr."""
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(checkpoint), *files, "--json", "--topk", "1", "--device", "cpu",
                 *flags]) == 0
    captured = capsys.readouterr()
    return {r["file"]: (r["top"][0]["class"], r["top"][0]["probability"]) for r in json.loads(captured.out)}, \
        captured.err


@pytest.mark.slow
def test_the_banner_is_cut_from_the_datasets_photos_alone_unless_told(
        short_run_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """By default the banner is cut from the dataset's own photos and nothing else; that fgvc predict then agrees
    with fgvc evaluate is tests/test_predict.py's first test."""
    predictor = Predictor.from_checkpoint(short_run_checkpoint, device="cpu")
    files = sorted(path for path, _ in load_split_images(predictor.cfg, "test").samples)

    by_predict, err = top1(short_run_checkpoint, files, capsys)
    assert f"cut the 20-px {NOTE} {len(files)} of {len(files)} image(s)" in err and "--no-crop-banner" in err

    kept, err = top1(short_run_checkpoint, files, capsys, "--no-crop-banner")
    assert NOTE not in err
    moved = [abs(kept[file][1] - by_predict[file][1]) for file in files]
    assert min(moved) > PROBABILITY_TOLERANCE  # the banner changes every photo's scores
    assert len({probability for _, probability in by_predict.values()}) > 1  # and the scores depend on the photo

    copies = tmp_path / "photos"  # the same photos outside the layout, same names: their banner stays
    copies.mkdir()
    for file in files[:3]:
        shutil.copy(file, copies)
    by_copy, err = top1(short_run_checkpoint, [str(copies)], capsys)
    assert NOTE not in err
    assert same_top1({file: by_copy[str(copies / Path(file).name)] for file in files[:3]},
                     {file: kept[file] for file in files[:3]})
    copy = str(copies / Path(files[0]).name)
    both, err = top1(short_run_checkpoint, [files[0], copy], capsys)  # one call, each photo as its path says
    assert same_top1(both, {files[0]: by_predict[files[0]], copy: kept[files[0]]})
    assert f"cut the 20-px {NOTE} 1 of 2 image(s)" in err

    forced, _ = top1(short_run_checkpoint, [str(copies)], capsys, "--crop-banner")
    assert same_top1({file: forced[str(copies / Path(file).name)] for file in files[:3]},
                     {file: by_predict[file] for file in files[:3]})

    capsys.readouterr()
    assert main(["gradcam", "--checkpoint", str(short_run_checkpoint), files[0], str(copies / Path(files[0]).name),
                 "--out", str(tmp_path / "cams"), "--device", "cpu"]) == 0
    assert f"{NOTE} 1 of 2 image(s)" in capsys.readouterr().err
    height = Image.open(files[0]).height
    overlays = {p.parent.name: Image.open(p).height for p in (tmp_path / "cams").rglob("*.png")}
    assert overlays == {"images": height - 20, "photos": height}

    shown = describe(predictor, files[0])  # the demo's describe: auto, as fgvc predict
    assert shown.photo.shape[0] == height - 20 and BANNER_NOTE not in shown.message
    first, probability = next(iter(shown.confidences.items()))
    assert same_top1({files[0]: (first.split(" (")[0], probability)}, {files[0]: by_predict[files[0]]})
    upload = describe(predictor, copies / Path(files[0]).name, crop_banner=False)  # an upload lost its folder
    assert upload.photo.shape[0] == height and upload.message.endswith(BANNER_NOTE)

    own_photos = dataclasses.replace(predictor, cfg=dataclasses.replace(predictor.cfg, dataset="imagefolder"))
    assert banner_rows(own_photos.cfg, files[0]) == 0 and banner_rows(predictor.cfg, files[0]) == 20
    assert BANNER_NOTE not in describe(own_photos, copies / Path(files[0]).name).message
