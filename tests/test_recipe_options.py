"""The recipe options a study measures: the head's learning rate, layer-wise decay, the head alone first, frozen
early stages, batch augmentations from torchvision, and an evaluation size apart from the training size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import tiny_config
from PIL import Image

import fgvc.training.optim
from fgvc.apps.cli import main
from fgvc.core.config import make_config
from fgvc.core.errors import ConfigError
from fgvc.data import batch_augmentation
from fgvc.models.backbones import backbone_stages, build_model, freeze_stages
from fgvc.models.checkpoint import load_checkpoint
from fgvc.models.predictor import Predictor
from fgvc.training.engine import fit
from fgvc.training.optim import build_optimizer, build_scheduler


@pytest.mark.parametrize("arch", ["efficientnet-b0", "tv_efficientnet_b0"])
def test_the_head_trains_at_its_own_learning_rate(arch: str) -> None:
    model = build_model(arch, 5, pretrained=False)
    head = {id(p) for p in (model._fc if arch.startswith("efficientnet") else model.classifier).parameters()}
    optimizer = build_optimizer(model, make_config("cpu", arch=arch, lr=0.002, head_lr_scale=10.0))
    rates = {id(p): (group["lr"], group["weight_decay"]) for group in optimizer.param_groups for p in group["params"]}
    assert len(rates) == len(list(model.parameters()))
    for param in model.parameters():
        lr, decay = rates[id(param)]
        assert lr == pytest.approx(0.02 if id(param) in head else 0.002)
        assert decay == (0.0 if param.ndim <= 1 else 0.05)
    plain = build_optimizer(model, make_config("cpu", arch=arch, lr=0.002))
    assert len(plain.param_groups) == 2 and {g["lr"] for g in plain.param_groups} == {0.002}


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_the_step_is_fused_on_a_cpu_and_makes_the_loops_update(optimizer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One kernel for all parameters where PyTorch has one; elsewhere (here the ``meta`` device) its default loop."""
    torch.manual_seed(0)
    models = [build_model("efficientnet-lite0", 5, pretrained=False).eval() for _ in range(2)]  # no dropout
    models[1].load_state_dict(models[0].state_dict())
    cfg = make_config("cpu", optimizer=optimizer, lr=0.01)
    fused = build_optimizer(models[0], cfg)
    assert build_optimizer(build_model("efficientnet-lite0", 5, pretrained=False).to("meta"), cfg).defaults[
        "fused"] is None
    monkeypatch.setattr(fgvc.training.optim, "FUSED_DEVICES", ())
    loop = build_optimizer(models[1], cfg)
    assert fused.defaults["fused"] is True and loop.defaults["fused"] is None
    inputs = torch.randn(4, 3, 32, 32)
    for _ in range(3):
        for model, step in zip(models, (fused, loop)):
            step.zero_grad()
            model(inputs).logsumexp(1).mean().backward()
            step.step()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("arch", ["efficientnet-lite0", "tv_efficientnet_b0"])
def test_layer_decay_slows_each_block_below_the_head(arch: str) -> None:
    model = build_model(arch, 5, pretrained=False)
    optimizer = build_optimizer(model, make_config("cpu", arch=arch, lr=0.01, layer_decay=0.8))
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    rates = [rate[id(p)] for p in model.parameters()]  # from the stem to the head
    head = list((model._fc if arch.startswith("efficientnet") else model.classifier).parameters())
    assert all(rate[id(p)] == pytest.approx(0.01) for p in head)
    assert rates == sorted(rates) and len(set(rates)) == 21  # stem, 16 blocks (Lite0; B0's 7 stages hold 16), ...
    assert rates[0] == pytest.approx(0.01 * 0.8 ** 20)


def test_head_only_epochs_hold_the_backbone_then_warm_it_up() -> None:
    model = build_model("efficientnet-lite0", 5, pretrained=False)
    cfg = make_config("cpu", epochs=4, warmup_epochs=1, head_only_epochs=2, lr=0.01)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch=10)
    head, backbone = (next(g for g in optimizer.param_groups if g.get("head") is flag) for flag in (True, False))
    seen = []
    for _ in range(40):
        seen.append((head["lr"], backbone["lr"]))
        optimizer.step()
        scheduler.step()
    assert all(b == 0 for _, b in seen[:20]) and seen[20][1] == pytest.approx(0.001)  # warmup starts at epoch 3
    assert max(b for _, b in seen) == pytest.approx(0.01) and seen[9][0] == pytest.approx(0.01)  # head: epoch 1


def test_a_run_with_the_head_alone_first_keeps_the_backbone_for_those_epochs(tiny_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_root, tmp_path / "run", arch="efficientnet-lite0", pretrained=True, epochs=2, batch_size=4,
                      head_only_epochs=1)
    before = build_model("efficientnet-lite0", 6, pretrained=True).state_dict()
    run = fit(cfg, progress=False, stop_after=1)
    after = load_checkpoint(run / "last.pt")["model"]
    learned = {name for name, value in after.items() if value.is_floating_point()
               and "running" not in name and not torch.equal(value, before[name])}
    assert learned == {"_fc.weight", "_fc.bias"}
    fit(resume=run / "last.pt", progress=False)
    final = load_checkpoint(run / "last.pt")["model"]
    assert not torch.equal(final["_conv_stem.weight"], before["_conv_stem.weight"])


@pytest.mark.parametrize("arch", ["efficientnet-lite0", "tv_efficientnet_b0"])
def test_frozen_stages_get_no_gradient_and_keep_their_batch_norm_statistics(arch: str) -> None:
    model = build_model(arch, 5, pretrained=False)
    stages = backbone_stages(model, arch)
    assert len(stages) == 17  # the stem and 16 blocks (Lite0's; B0's 7 stages hold 16)
    freeze_stages(model, arch, 3)
    frozen = [m for stage in stages[:3] for m in stage]
    before = {name: value.clone() for name, value in model.state_dict().items()}
    model.train()
    model(torch.randn(4, 3, 64, 64)).sum().backward()
    assert all(not m.training for module in frozen for m in module.modules())
    assert all(m.training for m in stages[3][0].modules())
    assert all(p.grad is None and not p.requires_grad for module in frozen for p in module.parameters())
    assert all(p.grad is not None for p in stages[3][0].parameters())
    frozen_state = {id(value) for module in frozen for value in module.state_dict(keep_vars=True).values()}
    state = model.state_dict(keep_vars=True)
    moved = {name for name, value in state.items() if not torch.equal(value, before[name])}
    assert moved and all(id(state[name]) not in frozen_state for name in moved)  # batch norm moved elsewhere only
    optimized = {id(p) for group in build_optimizer(model, make_config("cpu", arch=arch)).param_groups
                 for p in group["params"]}
    assert optimized == {id(p) for p in model.parameters() if p.requires_grad}
    with pytest.raises(ConfigError, match=r"frozen_stages=17 .* expected 0 to 16"):
        freeze_stages(build_model(arch, 5, pretrained=False), arch, 17)


def test_a_run_with_frozen_stages_keeps_them_as_pretrained_through_a_resume(tiny_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_root, tmp_path / "run", arch="efficientnet-lite0", pretrained=True, epochs=2, batch_size=8,
                      frozen_stages=3)
    before = build_model("efficientnet-lite0", 6, pretrained=True).state_dict()
    run = fit(cfg, progress=False, stop_after=1)
    fit(resume=run / "last.pt", progress=False)
    after = load_checkpoint(run / "last.pt")
    assert after["epoch"] == 2 and after["config"]["frozen_stages"] == 3
    kept = {name for name, value in after["model"].items() if torch.equal(value, before[name])}
    stem_and_two_blocks = {name for name in before if name.split(".")[0] in ("_conv_stem", "_bn0")
                           or name.startswith(("_blocks.0.", "_blocks.1."))}
    assert stem_and_two_blocks <= kept  # weights and batch-norm statistics alike
    assert not any(name.startswith("_blocks.2.") and "weight" in name for name in kept)
    assert Predictor.from_checkpoint(run / "last.pt", device="cpu").transform(Image.new("RGB", (50, 40))).ndim == 3


def test_batch_augmentations_are_off_by_default_and_seeded() -> None:
    assert batch_augmentation(make_config("cpu"), 4) is None
    augment = batch_augmentation(make_config("cpu", mixup_alpha=0.4, cutmix_alpha=1.0, random_erasing=0.5), 4)
    images, targets = torch.randn(8, 3, 32, 32), torch.arange(8) % 4
    torch.manual_seed(3)
    first = augment(images.clone(), targets)
    torch.manual_seed(3)
    again = augment(images.clone(), targets)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_mixup_mixes_the_labels_by_the_images_weights() -> None:
    augment = batch_augmentation(make_config("cpu", mixup_alpha=1.0), 3)
    images = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(6)])
    torch.manual_seed(0)
    mixed, soft = augment(images, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert soft.shape == (6, 3) and torch.allclose(soft.sum(1), torch.ones(6))
    # image i is lam * image i + (1 - lam) * image i-1 (the batch rolled by one), labels alike
    lam = (mixed[1, 0, 0, 0] - 0) / (1 - 0)
    assert 0 < lam < 1
    assert soft[1, 1] == pytest.approx(float(lam)) and soft[1, 0] == pytest.approx(float(1 - lam))


def test_random_erasing_erases_a_rectangle_of_each_image_on_its_own() -> None:
    augment = batch_augmentation(make_config("cpu", random_erasing=1.0), 3)
    torch.manual_seed(0)
    erased, targets = augment(torch.ones(4, 3, 40, 40), torch.tensor([0, 1, 2, 0]))
    assert torch.equal(targets, torch.tensor([0, 1, 2, 0]))  # labels untouched
    masks = [(image == 0).all(0) for image in erased]
    for mask in masks:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert 0 < mask.sum() < 40 * 40 and box.all()  # one filled rectangle, zero = the mean colour
    assert len({tuple(mask.nonzero()[0].tolist()) for mask in masks}) > 1  # not one box for the whole batch


@pytest.mark.parametrize(("field", "value"), [("head_lr_scale", 0), ("mixup_alpha", -1), ("random_erasing", 1.5),
                                              ("eval_img_size", 16), ("layer_decay", 0), ("layer_decay", 1.5),
                                              ("head_only_epochs", 5), ("frozen_stages", -1)])
def test_bad_recipe_values_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        make_config("cpu", **{field: value})


def test_frozen_stages_need_pretrained_weights() -> None:
    with pytest.raises(ConfigError, match=r"frozen_stages=2 .* pretrained=False"):
        make_config("cpu", frozen_stages=2, pretrained=False)


def test_a_run_with_every_option_trains_and_evaluates_at_its_own_size(tiny_root: Path, tmp_path: Path) -> None:
    """Its exact resume is proven by test_reliability.py's kill -9 test, which runs every option here."""
    options = {"mixup_alpha": 0.2, "cutmix_alpha": 1.0, "random_erasing": 0.5, "head_lr_scale": 5.0,
               "eval_img_size": 96, "batch_size": 4, "epochs": 1}
    run = fit(tiny_config(tiny_root, tmp_path / "run", **options), progress=False)
    predictor = Predictor.from_checkpoint(run / "last.pt", device="cpu")
    assert predictor.transform(Image.new("RGB", (50, 40))).shape == (3, 96, 96)
    at_64 = Predictor.from_checkpoint(run / "last.pt", device="cpu", img_size=64)
    assert at_64.transform(Image.new("RGB", (50, 40))).shape == (3, 64, 64)
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--split", "test", "--img-size", "80"]) == 0
    assert json.loads((run / "eval-test-80px" / "metrics.json").read_text())["img_size"] == 80
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--img-size", "8"]) == 2  # one-line error
