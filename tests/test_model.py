"""Both EfficientNet families behind one interface; weights from a local file; no downloads."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from fgvc.core.errors import ConfigError
from fgvc.models.backbones import WeightsError, build_model, cam_target_layer, model_spec


@pytest.mark.parametrize("arch", ["efficientnet-b0", "efficientnet-b2", "tv_efficientnet_b0", "tv_efficientnet_b1"])
def test_builds_with_a_head_for_the_dataset_and_every_parameter_learns(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=7, pretrained=False).eval()  # eval: no block is dropped at random
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    assert isinstance(cam_target_layer(model, arch), torch.nn.Module)


def test_specs_carry_the_native_resolution() -> None:
    assert model_spec("efficientnet-b4").native_size == 380
    assert model_spec("tv_efficientnet_b4").native_size == 380
    assert model_spec("efficientnet-b0").cam_layer == "_bn1"  # never the shared `_swish`
    with pytest.raises(ConfigError, match="resnet"):
        model_spec("resnet")


@pytest.mark.parametrize("arch", ["efficientnet-b0", "tv_efficientnet_b0"])
def test_local_imagenet_weights_load_into_the_backbone_only(arch: str, tmp_path: Path) -> None:
    imagenet = build_model(arch, num_classes=1000, pretrained=False)
    torch.save(imagenet.state_dict(), tmp_path / "w.pth")
    model = build_model(arch, num_classes=5, weights=tmp_path / "w.pth")
    head = model_spec(arch).head
    ours, theirs = model.state_dict(), imagenet.state_dict()
    backbone = [k for k in ours if not k.startswith(head + ".")]
    assert all(torch.equal(ours[k], theirs[k]) for k in backbone)
    assert ours[head + ".weight"].shape[0] == 5


def test_weights_of_another_arch_are_refused(tmp_path: Path) -> None:
    torch.save(build_model("efficientnet-b1", 1000, pretrained=False).state_dict(), tmp_path / "b1.pth")
    with pytest.raises(WeightsError, match="does not fit efficientnet-b0"):
        build_model("efficientnet-b0", 5, weights=tmp_path / "b1.pth")
    with pytest.raises(WeightsError, match="not found"):
        build_model("efficientnet-b0", 5, weights=tmp_path / "missing.pth")


def test_offline_download_failure_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as err:
        build_model("efficientnet-b4", 100)
    assert "efficientnet-b4" in str(err.value) and "--weights" in str(err.value) and "https://" in str(err.value)


def test_bn_momentum_override() -> None:
    model = build_model("efficientnet-b0", 3, pretrained=False, bn_momentum=0.1)
    assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}
