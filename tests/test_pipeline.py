"""The training input pipeline: one affine warp per image that draws and applies the same three augmentations
as torchvision's transforms, randomness from (seed, epoch, index), reduced-size JPEG decoding, and
``fgvc prepare``, whose files give the same evaluation inputs as the originals."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import MakeDataset
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode, functional

from fgvc.apps.cli import main
from fgvc.core.config import make_config
from fgvc.data import (
    AFFINE_SCALE,
    AFFINE_TRANSLATE,
    FGVC_FOLDER,
    Augment,
    Augmentation,
    augmentation_matrix,
    build_dataset,
    build_loaders,
    draw_augmentation,
    eval_transform,
    load_image,
    prepared_info,
    prepared_short_side,
)
from fgvc.data.normalization import IMAGENET
from fgvc.data.synthetic_render import BANNER_HEIGHT

SIZE = 96


def smooth_image(width: int = 220, height: int = 150) -> np.ndarray:
    """A smooth uint8 RGB picture, different everywhere, so that a misplaced pixel shows."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [np.sin(x / 17) * 0.5 + 0.5, np.cos(y / 13) * 0.5 + 0.5, (x + 2 * y) / (width + 2 * height)]
    return (np.stack(channels, -1) * 255).astype(np.uint8)


def torchvision_sequence(image: Image.Image, aug: Augmentation) -> np.ndarray:
    """``aug`` applied the way torchvision's three transforms apply it: crop and resize, flip, affine."""
    left, top, width, height = (int(v) for v in aug.crop)
    out = functional.resized_crop(image, top, left, height, width, [SIZE, SIZE], InterpolationMode.BILINEAR)
    out = functional.hflip(out) if aug.flip else out
    return np.asarray(functional.affine(out, aug.angle, list(aug.translate), aug.scale, [aug.shear, 0.0],
                               InterpolationMode.BILINEAR)).astype(float)


@pytest.mark.parametrize("aug", [
    Augmentation((10.0, 20.0, 150.0, 120.0), False, 0.0, (0, 0), 1.0, 0.0),
    Augmentation((10.0, 20.0, 150.0, 120.0), True, 0.0, (0, 0), 1.0, 0.0),
    Augmentation((30.0, 5.0, 160.0, 130.0), True, 15.0, (4, -3), 1.08, 6.0),
    Augmentation((0.0, 0.0, 220.0, 150.0), False, -12.0, (-2, 5), 0.92, -4.0),
])
def test_one_warp_equals_torchvisions_crop_flip_and_affine(aug: Augmentation) -> None:
    image = smooth_image()
    fused = cv2.warpAffine(image, augmentation_matrix(aug, SIZE), (SIZE, SIZE),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP).astype(float)
    expected = torchvision_sequence(Image.fromarray(image), aug)
    # Where the rotation uncovers the crop's corners torchvision fills black and the warp shows the photo
    # around the crop, so compare the pixels torchvision drew from inside the crop.
    inside = torchvision_sequence(Image.new("RGB", image.shape[1::-1], "white"), aug).min(axis=2) == 255
    error = np.abs(fused - expected)[inside]
    assert inside.mean() > 0.7 and error.mean() < 1.0 and np.percentile(error, 99) <= 3
    other = Augmentation(aug.crop, not aug.flip, aug.angle, aug.translate, aug.scale, aug.shear)
    wrong = cv2.warpAffine(image, augmentation_matrix(other, SIZE), (SIZE, SIZE),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP).astype(float)
    assert np.abs(wrong - expected)[inside].mean() > 10  # the comparison does see a lost flip


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    return float(np.abs(np.searchsorted(np.sort(a), grid, side="right") / len(a)
                        - np.searchsorted(np.sort(b), grid, side="right") / len(b)).max())


def test_draws_follow_torchvisions_distributions() -> None:
    """Crop area and aspect, flip, angle, shift, scale and shear against torchvision's own ``get_params``; at
    n = 3000 a KS distance above 0.05 would reject equal distributions at p < 0.01."""
    n, width, height, degrees, min_scale = 3000, 300, 200, 10.0, 0.25
    torch.manual_seed(0)
    photo = Image.new("RGB", (width, height))
    crop_params = [transforms.RandomResizedCrop.get_params(photo, [min_scale, 1.0], [3 / 4, 4 / 3])
                   for _ in range(n)]
    affine_params = [transforms.RandomAffine.get_params([-degrees, degrees], list(AFFINE_TRANSLATE),
                                                        list(AFFINE_SCALE), [-degrees / 2, degrees / 2], [SIZE, SIZE])
                     for _ in range(n)]
    rng = np.random.default_rng(0)
    ours = [draw_augmentation(rng, width, height, SIZE, min_scale, degrees) for _ in range(n)]
    theirs = {"area": [h * w / (width * height) for _, _, h, w in crop_params],
              "aspect": [w / h for _, _, h, w in crop_params],
              "left": [j for _, j, _, _ in crop_params],
              "angle": [a for a, *_ in affine_params], "shift": [t[0] for _, t, *_ in affine_params],
              "scale": [s for _, _, s, _ in affine_params], "shear": [sh[0] for *_, sh in affine_params]}
    mine = {"area": [a.crop[2] * a.crop[3] / (width * height) for a in ours],
            "aspect": [a.crop[2] / a.crop[3] for a in ours], "left": [a.crop[0] for a in ours],
            "angle": [a.angle for a in ours], "shift": [a.translate[0] for a in ours],
            "scale": [a.scale for a in ours], "shear": [a.shear for a in ours]}
    distances = {key: ks_distance(np.array(mine[key]), np.array(theirs[key])) for key in theirs}
    print(distances)
    assert max(distances.values()) < 0.05, distances
    assert abs(np.mean([a.flip for a in ours]) - 0.5) < 0.03
    assert ks_distance(np.array(mine["area"]), np.array(mine["area"]) * 0.9) > 0.05  # the test can tell


def test_each_image_draws_from_seed_epoch_and_index(synthetic_root: Path) -> None:
    cfg = make_config("demo", data_root=str(synthetic_root), img_size=64, workers=0, batch_size=4)
    train = build_loaders(cfg).train
    split = train.dataset
    first = split[3, 5][0]
    assert torch.equal(first, split[3, 5][0])  # again, in another order, in another process: the same
    assert not torch.equal(first, split[4, 5][0]) and not torch.equal(first, split[3, 6][0])
    for epoch in (3, 4):  # and the loader asks for each image with the epoch it is in
        train.sampler.set_epoch(epoch)
        keys = list(train.sampler)
        assert {e for e, _ in keys} == {epoch} and len({i for _, i in keys}) == len(keys) == len(split)


def test_workers_persist_and_give_what_the_main_process_gives(synthetic_root: Path) -> None:
    cfg = make_config("demo", data_root=str(synthetic_root), img_size=48, batch_size=4, workers=0)
    inline = build_loaders(cfg).train
    pooled = build_loaders(make_config("demo", data_root=str(synthetic_root), img_size=48, batch_size=4,
                                       workers=2)).train
    assert pooled.persistent_workers
    for epoch in (1, 2):
        inline.sampler.set_epoch(epoch)
        pooled.sampler.set_epoch(epoch)
        for (a, la), (b, lb) in zip(inline, pooled, strict=True):
            assert torch.equal(a, b) and torch.equal(la, lb)


@pytest.fixture(scope="module")
def large_root(make_dataset: MakeDataset) -> Path:
    """Eight photos 400-480 px wide, 3:2, with the banner: large against a 96-px training size."""
    return make_dataset(2, 4, size=(160, 140), width_range=(400, 480))


def test_draft_decoding_keeps_the_short_side_and_cuts_exactly_the_banner(large_root: Path) -> None:
    path = next((large_root / FGVC_FOLDER / "data" / "images").glob("*.jpg"))
    full = load_image(path, BANNER_HEIGHT)
    small = load_image(path, BANNER_HEIGHT, shrink_to=prepared_short_side(SIZE))
    assert small.size == (-(-full.width // 2), full.height // 2)  # decoded at half size
    assert min(small.size) >= prepared_short_side(SIZE)
    halved = np.asarray(full.resize(small.size, Image.Resampling.BOX)).astype(float)
    assert np.abs(np.asarray(small).astype(float) - halved).mean() < 3  # the same picture, banner gone


def test_prepared_files_give_the_same_evaluation_inputs(large_root: Path, tmp_path: Path) -> None:
    """Stated tolerance: the mean absolute difference of the normalised inputs is under 0.025 (about 1.5 grey
    levels), under half of what shifting the input by one pixel changes, and 99 % of the values differ by
    less than 0.25 (the rest are the aircraft's sharp edges)."""
    out = tmp_path / "prepared"
    assert main(["prepare", "--data-root", str(large_root), "--out", str(out), "--img-size", str(SIZE)]) == 0
    assert prepared_info(out)["short_side"] == prepared_short_side(SIZE)
    view = eval_transform(SIZE, IMAGENET)
    original, prepared = build_dataset(large_root, "test", transform=view), build_dataset(out, "test", transform=view)
    for (a, label_a), (b, label_b) in zip(original, prepared, strict=True):
        difference = (a - b).abs()
        assert label_a == label_b and a.shape == b.shape
        one_pixel = (a[..., 1:] - a[..., :-1]).abs().mean()
        print(f"{float(difference.mean()):.4f} {float(difference.quantile(0.99)):.3f} {float(one_pixel):.3f}")
        assert difference.mean() < min(0.025, one_pixel / 2) and difference.quantile(0.99) < 0.25
    image = next((out / FGVC_FOLDER / "data" / "images").glob("*.jpg"))
    assert min(Image.open(image).size) == prepared_short_side(SIZE)  # the banner was cut once, not twice
    augment = Augment(SIZE)
    for path in sorted((out / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[:3]:
        source = large_root / FGVC_FOLDER / "data" / "images" / path.name
        from_original = augment(load_image(source, BANNER_HEIGHT, prepared_short_side(SIZE)), np.random.default_rng(1))
        from_prepared = augment(load_image(path), np.random.default_rng(1))
        assert (from_original.float() - from_prepared.float()).abs().mean() < 2  # same draw, same picture


def test_prepare_refuses_to_prepare_twice_or_in_place(large_root: Path, tmp_path: Path, capsys) -> None:
    assert main(["prepare", "--data-root", str(large_root), "--out", str(large_root), "--img-size", "64"]) == 2
    assert "is the dataset itself" in capsys.readouterr().err
    out = tmp_path / "p"
    assert main(["prepare", "--data-root", str(large_root), "--out", str(out), "--img-size", "64"]) == 0
    assert main(["prepare", "--data-root", str(out), "--out", str(tmp_path / "q"), "--img-size", "64"]) == 2
    assert "already prepared" in capsys.readouterr().err
