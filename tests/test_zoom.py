"""The zoomed second look: the CAM is what the head weighs, the box lands on the object in the photo's pixels for
every view, a cue too small for the whole view is recognised once zoomed, zoom off changes nothing, and the
command line and the web demo show the box."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import LOGIT_TOLERANCE, PROBABILITY_TOLERANCE, tiny_config
from PIL import Image
from torch import nn
from torch.nn import functional
from torch.utils.data import DataLoader, Dataset

from fgvc.apps.cli import main
from fgvc.apps.serve import describe
from fgvc.core.config import make_config
from fgvc.core.errors import ConfigError
from fgvc.core.runtime import Runtime
from fgvc.data import build_dataset, build_split
from fgvc.models.backbones import build_model, cam_target_layer
from fgvc.models.checkpoint import save_checkpoint
from fgvc.models.predictor import Predictor
from fgvc.models.scoring import predict_scores
from fgvc.models.zoom import (
    BOX_COLOUR,
    Zoom,
    captured_features,
    class_maps,
    draw_box,
    head_layer,
    photo_box,
    view_box,
)

CPU = Runtime(torch.device("cpu"))


@pytest.mark.parametrize("arch", ["efficientnet-b0", "efficientnet-lite0", "tv_efficientnet_b0"])
def test_the_mean_of_the_class_maps_is_the_logit_less_the_bias(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 5, pretrained=False, bn_momentum=1.0)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model.train()(images)  # batch norm's running statistics become the batch's: activations of order 1
    model.eval()
    with torch.no_grad(), captured_features(model, arch) as features:
        logits = model(images)
    head = head_layer(model, arch)
    maps = class_maps(features[0], head.weight)
    assert maps.shape == (2, 5, 2, 2) and logits.std() > 0.05
    torch.testing.assert_close(maps.mean(dim=(2, 3)) + head.bias, logits, rtol=LOGIT_TOLERANCE, atol=LOGIT_TOLERANCE)
    if arch == "efficientnet-b0":  # Grad-CAM's layer comes before the activation: not what the head weighs
        with torch.no_grad(), captured_features(model, arch) as pooled:
            seen = []
            handle = cam_target_layer(model, arch).register_forward_hook(lambda _m, _a, out: seen.append(out))
            model(images)
            handle.remove()
        assert not torch.allclose(seen[0], pooled[0])


class StripeNet(nn.Module):
    """A classifier whose CAM is known by construction. Class 0 is horizontal stripes in the green channel, class 1
    vertical ones: the feature map holds the absolute vertical and horizontal differences of green, at the input's
    resolution, so only stripes a few input pixels apart count. Its third channel, red, marks where the object is and
    counts for both classes alike, so both class maps peak on the red patch."""

    def __init__(self) -> None:
        super().__init__()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)  # the names of efficientnet_pytorch: arch efficientnet-b0
        self._fc = nn.Linear(3, 2)
        with torch.no_grad():
            self._fc.weight.copy_(torch.tensor([[1.0, 0.0, 4.0], [0.0, 1.0, 4.0]]))
            self._fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        green = functional.pad(x[:, 1:2], (1, 1, 1, 1), mode="replicate")
        across_rows = (green[:, :, 2:, 1:-1] - green[:, :, :-2, 1:-1]).abs()
        across_columns = (green[:, :, 1:-1, 2:] - green[:, :, 1:-1, :-2]).abs()
        features = torch.cat([across_rows, across_columns, x[:, 0:1].relu()], dim=1)
        return self._fc(self._avg_pooling(features).flatten(1))


CUE, CUE_PERIOD = 96, 8  # the cue: a 96-px red square striped every 8 px: a blur once the photo is shrunk 8x or more
FAR, FAR_PERIOD = 320, 48  # the distraction: a bigger square striped every 48 px, either way, without red


def small_cue_photo(rng: np.random.Generator, label: int, width: int = 1152, height: int = 768
                    ) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A 3:2 photo whose class shows only in a small red square (the cue), and its box. In the centre square
    (what the crop view sees), one half holds the cue, the other a bigger striped square of a random direction
    that the whole view does see: it leaves the whole view at chance."""
    red, green = np.zeros((height, width)), np.full((height, width), 128.0)
    side_start = (width - height) // 2
    cue_half = int(rng.integers(2))
    x0 = side_start + cue_half * height // 2
    x, y = int(rng.integers(x0, x0 + height // 2 - CUE)), int(rng.integers(0, height - CUE))
    rows, columns = np.mgrid[0:CUE, 0:CUE]
    red[y:y + CUE, x:x + CUE] = 255
    green[y:y + CUE, x:x + CUE] = 128 + 127 * np.sin(2 * np.pi * (rows if label == 0 else columns) / CUE_PERIOD)
    far_x = side_start + (1 - cue_half) * height // 2 + (height // 2 - FAR) // 2
    far_y = int(rng.integers(0, height - FAR))
    rows, columns = np.mgrid[0:FAR, 0:FAR]
    green[far_y:far_y + FAR, far_x:far_x + FAR] = 128 + 127 * np.sin(
        2 * np.pi * (rows if rng.integers(2) else columns) / FAR_PERIOD)
    rgb = np.stack([red, green, np.full((height, width), 128.0)], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb), (x, y, x + CUE, y + CUE)


class Photos(Dataset):
    """Photos with labels, through a transform, as a split is read."""

    def __init__(self, photos: list[Image.Image], labels: list[int], transform: object) -> None:
        self.photos, self.labels, self.transform = photos, labels, transform

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> tuple[object, int]:
        return self.transform(self.photos[index]), self.labels[index]


def stripe_predictor(view: str, zoom: Zoom | None, tta: bool = False) -> Predictor:
    cfg = make_config("demo", arch="efficientnet-b0", pretrained=False, img_size=96)
    return Predictor(StripeNet().eval(), cfg, ["horizontal", "vertical"], CPU, view=view, tta=tta, batch_size=8,
                     zoom=zoom)


@pytest.fixture(scope="module")
def small_cues() -> tuple[list[Image.Image], list[int], list[tuple[int, int, int, int]]]:
    rng = np.random.default_rng(0)
    labels = [i % 2 for i in range(16)]
    photos, cues = zip(*(small_cue_photo(rng, label) for label in labels))
    return list(photos), labels, list(cues)


@pytest.mark.parametrize("view", ["squash", "whole", "crop"])
def test_zoom_recognises_a_cue_too_small_for_the_whole_view(view: str, small_cues: tuple) -> None:
    """Would fail with the box in the view's pixels, x and y swapped, the crop view's offset forgotten, the
    crop cut from the resized view instead of the photo, or every pixel above the threshold boxed (the
    distraction would join the box)."""
    photos, labels, cues = small_cues
    whole = stripe_predictor(view, None).scores(photos).argmax(axis=1)
    looks = stripe_predictor(view, Zoom()).predict(photos)
    zoomed = np.array([look.probabilities.argmax() for look in looks])
    print(f"\n{view}: accuracy of the whole view {np.mean(whole == labels):.2f}, zoomed "
          f"{np.mean(zoomed == labels):.2f}")
    assert np.mean(whole == labels) <= 0.7  # about chance
    assert (zoomed == labels).all()
    for look, (left, top, right, bottom) in zip(looks, cues, strict=True):
        box = look.box
        assert box[0] <= left and box[1] <= top and box[2] >= right and box[3] >= bottom  # it holds the cue
        assert (box[2] - box[0]) * (box[3] - box[1]) <= 4 * CUE * CUE  # and little more


def test_a_split_through_a_dataloader_gets_the_same_zoom_as_photos(small_cues: tuple) -> None:
    photos, labels, _ = small_cues
    predictor = stripe_predictor("squash", Zoom())
    loader = predictor.loader(Photos(photos, labels, predictor.dataset_transform), workers=1)  # photos cross processes
    outputs, targets = predictor.loader_outputs(loader)
    scores = predictor.answer(outputs)[0]
    np.testing.assert_allclose(scores, predictor.scores(photos), rtol=0, atol=PROBABILITY_TOLERANCE)
    assert targets.tolist() == labels and loader.batch_size == 8


def test_tta_mirrors_both_views_and_averages_their_softmax(small_cues: tuple) -> None:
    photos = small_cues[0]
    predictor = stripe_predictor("squash", Zoom(), tta=True)
    looks = predictor.predict(photos[:4])
    model, transform = predictor.model, predictor.transform
    with torch.no_grad():
        whole = torch.stack([transform(photo) for photo in photos[:4]])
        crops = torch.stack([transform(photo.crop(look.box)) for photo, look in zip(photos, looks)])
        expected = sum(((model(whole.flip(3) if mirror else whole) + model(crops.flip(3) if mirror else crops)) / 2)
                       .softmax(dim=1) for mirror in (False, True)) / 2
    np.testing.assert_allclose(np.stack([look.probabilities for look in looks]), expected.numpy(), rtol=0,
                               atol=PROBABILITY_TOLERANCE)
    assert looks[0].box == stripe_predictor("squash", Zoom()).predict(photos[:1])[0].box


def test_zoom_off_changes_nothing(small_cues: tuple) -> None:
    """Bit for bit what the predictor computed before zoom existed: the softmax of the model's logits, batch by
    batch (another batch size may round otherwise)."""
    torch.manual_seed(0)
    model = build_model("efficientnet-b0", 4, pretrained=False).eval()
    cfg = make_config("demo", arch="efficientnet-b0", pretrained=False, img_size=64)
    predictor = Predictor(model, cfg, list("abcd"), CPU, batch_size=3)
    photos = [photo.resize((300, 200)) for photo in small_cues[0][:5]]
    with torch.no_grad():
        inputs = torch.stack([predictor.transform(photo) for photo in photos])
        before = torch.cat([model(inputs[:3]), model(inputs[3:])]).float().softmax(dim=1).numpy()
    assert np.array_equal(predictor.scores(photos), before)
    assert all(look.box is None for look in predictor.predict(photos))
    assert predictor.dataset_transform(photos[0]).shape == (3, 64, 64)
    labels = [0, 1, 2, 3, 0]
    outputs, _ = predictor.loader_outputs(predictor.loader(Photos(photos, labels, predictor.dataset_transform), 0))
    scores = predictor.answer(outputs)[0]
    plain = DataLoader(Photos(photos, labels, predictor.transform), batch_size=3)
    assert np.array_equal(scores, predict_scores(model, plain, CPU)[0])


def test_a_box_in_the_view_lands_on_the_same_part_of_the_photo_in_each_view() -> None:
    # squash: a 300 x 200 photo squashed to 64 x 64; a square of the input is 3:2 in the photo
    assert photo_box((0.5, 0.5, 0.75, 0.75), (64, 64), (300, 200), "squash", 0.0) == (150, 100, 225, 150)
    # 30 x 50 grown to 75 x 50
    assert photo_box((0.5, 0.5, 0.6, 0.75), (64, 64), (300, 200), "squash", 0.0) == (127, 100, 203, 150)
    # crop: the input shows the centre square, x from 50 to 250
    assert photo_box((0.0, 0.0, 0.5, 0.5), (64, 64), (300, 200), "crop", 0.0) == (50, 0, 150, 100)
    # whole: the short side to 64, the aspect kept: a square stays a square
    assert photo_box((0.25, 0.25, 0.5, 0.5), (96, 64), (300, 200), "whole", 0.0) == (75, 37, 150, 113)


def test_the_box_is_padded_then_squared_and_kept_inside_the_photo() -> None:
    assert photo_box((0.25, 0.25, 0.5, 0.5), (64, 64), (400, 400), "squash", 0.1) == (90, 90, 210, 210)
    assert photo_box((0.25, 0.25, 0.5, 0.5), (64, 64), (400, 400), "squash", 0.5) == (50, 50, 250, 250)
    assert photo_box((0.9, 0.0, 1.0, 0.1), (64, 64), (400, 400), "squash", 0.1) == (352, 0, 400, 48)  # moved inside
    assert photo_box((0.0, 0.4, 1.0, 0.6), (64, 64), (400, 400), "squash", 0.0) == (0, 0, 400, 400)  # squared
    # the crop view's box reaches beyond its centre square, and a box larger than the photo is capped at it
    assert photo_box((0.0, 0.0, 1.0, 0.5), (64, 64), (400, 200), "crop", 0.2) == (60, 0, 340, 200)
    assert photo_box((0.0, 0.0, 1.0, 0.5), (64, 64), (400, 200), "crop", 1.0) == (0, 0, 400, 200)


def test_the_box_holds_the_peak_s_region_above_the_threshold() -> None:
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[1:3, 1:3] = 1.0  # the peak's region
    cam[5:7, 5:7] = 0.5  # another, apart from it
    cam[3, 1:3] = 0.2  # a weak tail of the peak's region
    assert view_box(cam, (8, 8), 0.3) == (0.125, 0.125, 0.375, 0.375)  # the weak tail and the other region left out
    assert view_box(cam, (8, 8), 0.1) == (0.125, 0.125, 0.375, 0.5)  # the tail in
    left, top, right, bottom = view_box(cam, (64, 64), 0.3)  # upsampled: the same region, smoothly
    assert 0.05 < left < 0.2 and 0.05 < top < 0.2 and 0.3 < right < 0.45 and 0.3 < bottom < 0.5
    tight = view_box(cam, (64, 64), 0.8)  # a higher threshold: a smaller box inside it
    assert left < tight[0] and top < tight[1] and tight[2] < right and tight[3] < bottom
    assert view_box(np.zeros((8, 8), dtype=np.float32), (8, 8), 0.3) == (0.0, 0.0, 1.0, 1.0)  # nothing found


@pytest.mark.parametrize(("threshold", "pad"), [(0.0, 0.1), (1.0, 0.1), (1.5, 0.1), (-0.3, 0.1), (math.nan, 0.1),
                                                (0.3, -0.1), (0.3, math.inf), (0.3, math.nan)])
def test_bad_zoom_settings_are_refused(threshold: float, pad: float) -> None:
    with pytest.raises(ConfigError, match="threshold" if not 0 < threshold < 1 else "pad"):
        Zoom(threshold, pad)


def test_zoom_names_its_evaluation_folder() -> None:
    assert Zoom().name == "zoom" and Zoom(0.5, 0.2).name == "zoom-t0.5-p0.2"


def test_draw_box_draws_in_the_image_s_own_pixels() -> None:
    drawn = np.asarray(draw_box(Image.new("RGB", (100, 100), "grey"), (60, 10, 90, 40), offset=(50, 0)))
    assert tuple(drawn[20, 10]) == BOX_COLOUR and tuple(drawn[39, 25]) == BOX_COLOUR  # left and bottom edges
    assert tuple(drawn[25, 25]) != BOX_COLOUR and tuple(drawn[20, 60]) != BOX_COLOUR


@pytest.fixture(scope="module")
def untrained_checkpoint(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained efficientnet-b0 of the tiny dataset's 3 classes, saved as a run's last.pt."""
    run = tmp_path_factory.mktemp("runs") / "untrained"
    run.mkdir()
    cfg = tiny_config(tiny_root, run)
    torch.manual_seed(0)
    classes = list(build_dataset(tiny_root, "test").classes)
    save_checkpoint(run / "last.pt", {"model": build_model(cfg.arch, len(classes), pretrained=False).state_dict(),
                                      "epoch": 0, "config": cfg.to_dict(), "classes": classes})
    return run / "last.pt"


def test_evaluate_zoom_writes_its_own_folder_and_says_so(untrained_checkpoint: Path, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert main(["evaluate", "--checkpoint", str(untrained_checkpoint), "--device", "cpu", "--zoom"]) == 0
    report = json.loads((untrained_checkpoint.parent / "eval-test-zoom" / "metrics.json").read_text())
    assert report["zoom"] == {"threshold": 0.3, "pad": 0.1}
    assert main(["evaluate", "--checkpoint", str(untrained_checkpoint), "--device", "cpu", "--zoom", "--zoom-threshold",
                 "0.5", "--zoom-pad", "0"]) == 0
    assert json.loads((untrained_checkpoint.parent / "eval-test-zoom-t0.5-p0" / "metrics.json").read_text()
                      )["zoom"] == {"threshold": 0.5, "pad": 0.0}
    assert main(["evaluate", "--checkpoint", str(untrained_checkpoint), "--device", "cpu", "--out",
                 str(untrained_checkpoint.parent / "plain")]) == 0
    assert "zoom" not in json.loads((untrained_checkpoint.parent / "plain" / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(untrained_checkpoint), "--no-zoom", "--zoom-pad", "0.2"]) == 2
    assert "--zoom-pad 0.2 has no effect with --no-zoom" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(untrained_checkpoint), "--zoom", "--zoom-threshold", "1.5"]) == 2
    assert "zoom threshold=1.5 is invalid" in capsys.readouterr().err


def test_predict_zoom_says_the_box(untrained_checkpoint: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    dataset = build_split(tiny_config(tiny_root, untrained_checkpoint.parent), "test", None)
    files = [path for path, _ in dataset.samples[:2]]
    predict = ["predict", "--checkpoint", str(untrained_checkpoint), *files, "--device", "cpu"]
    capsys.readouterr()
    assert main([*predict, "--zoom", "--topk", "2"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert [line.startswith("  zoomed into (") for line in text] == [False, False, False, True] * 2
    assert main([*predict, "--zoom", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    width, height = Image.open(files[0]).size
    left, top, right, bottom = results[0]["box"]
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert main([*predict, "--zoom", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["zoom_box"] == " ".join(map(str, results[0]["box"]))
    assert main([*predict, "--json"]) == 0
    assert "box" not in json.loads(capsys.readouterr().out)[0]


def test_the_demo_draws_the_zoomed_box_on_the_photo(untrained_checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 120, (90, 150, 3), dtype=np.uint8)).save(path)
    predictor = Predictor.from_checkpoint(untrained_checkpoint, device="cpu")
    plain = describe(predictor, path)
    shown = describe(predictor, path, zoom=Zoom())
    assert "zoomed into" in shown.text and "zoomed into" in shown.message and "zoomed into" not in plain.text
    assert shown.photo.shape == plain.photo.shape
    yellow = np.all(shown.photo == BOX_COLOUR, axis=-1)
    assert yellow.sum() > 20 and not np.all(plain.photo == BOX_COLOUR, axis=-1).any()
    assert np.array_equal(shown.photo[~yellow], plain.photo[~yellow])


def test_a_run_with_eval_zoom_looks_twice_unless_told_not_to(tiny_root: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from fgvc.training.engine import fit

    run = fit(tiny_config(tiny_root, tmp_path / "run", batch_size=4, epochs=1, eval_zoom=True), progress=False)
    final = json.loads((run / "eval-test" / "metrics.json").read_text())
    assert final["zoom"] == {"threshold": 0.3, "pad": 0.1}  # the run's own analysis is fgvc evaluate's default
    assert "zoomed second look" in (run / "train.log").read_text()
    assert Predictor.from_checkpoint(run / "last.pt", device="cpu").zoom == Zoom()
    assert Predictor.from_checkpoint(run / "last.pt", device="cpu", zoom=False).zoom is None
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--device", "cpu", "--no-zoom"]) == 0
    assert "zoom" not in json.loads((run / "eval-test-nozoom" / "metrics.json").read_text())
    photo = str(next((tiny_root / "fgvc-aircraft-2013b" / "data" / "images").iterdir()))
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(run / "last.pt"), photo, "--device", "cpu", "--json"]) == 0
    assert "box" in json.loads(capsys.readouterr().out)[0]
    assert main(["predict", "--checkpoint", str(run / "last.pt"), photo, "--device", "cpu", "--json",
                 "--no-zoom"]) == 0
    assert "box" not in json.loads(capsys.readouterr().out)[0]
