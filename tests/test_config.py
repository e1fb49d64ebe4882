"""Config presets, overrides and the validation messages a user sees."""

from __future__ import annotations

import pytest

from fgvc.core.config import ConfigError, TrainConfig, make_config


def test_b4_preset_is_the_fgvc_aircraft_recipe() -> None:
    cfg = make_config("b4")
    assert (cfg.arch, cfg.train_split, cfg.eval_split, cfg.pretrained) == ("efficientnet-b4", "trainval", "test", True)
    assert cfg.img_size >= 380 and cfg.label_smoothing == 0.1 and cfg.log_every == 5


def test_overrides_apply_and_none_keeps_the_preset_value() -> None:
    cfg = make_config("demo", epochs=3, lr=None)
    assert cfg.epochs == 3 and cfg.lr == make_config("demo").lr and cfg.preset == "demo"


def test_round_trip_through_dict() -> None:
    cfg = make_config("demo", seed=7)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(("overrides", "named"), [
    ({"arch": "resnet50"}, "arch='resnet50'"),
    ({"img_size": 16}, "img_size=16"),
    ({"epochs": 0}, "epochs=0"),
    ({"batch_size": -4}, "batch_size=-4"),
    ({"lr": 0.0}, "lr=0.0"),
    ({"label_smoothing": 1.5}, "label_smoothing=1.5"),
    ({"optimizer": "rmsprop"}, "optimizer='rmsprop'"),
    ({"precision": "int8"}, "precision='int8'"),
    ({"train_split": "everything"}, "train_split='everything'"),
    ({"warmup_epochs": 6, "epochs": 5}, "warmup_epochs=6"),
    ({"weights": "w.pth", "pretrained": False}, "weights='w.pth'"),
])
def test_bad_values_are_refused_with_the_value_named(overrides: dict, named: str) -> None:
    with pytest.raises(ConfigError, match="expected") as err:
        make_config("demo", **overrides)
    assert named in str(err.value)


def test_a_preset_s_evaluation_size_goes_with_its_training_size() -> None:
    assert make_config("cpu").eval_size == 256 and make_config("cpu", eval_img_size=288).eval_size == 288
    assert make_config("cpu", img_size=160).eval_size == 160  # 256 was chosen for 224-px training
    assert make_config("cpu", img_size=160, eval_img_size=192).eval_size == 192
    assert make_config("cpu", fields={"img_size": 160, "eval_img_size": None}).eval_size == 160


def test_unknown_preset_and_field_are_named() -> None:
    with pytest.raises(ConfigError, match="'b9'"):
        make_config("b9")
    with pytest.raises(ConfigError, match="learning_rate"):
        make_config("demo", learning_rate=0.1)


@pytest.mark.parametrize("preset", ["demo", "cpu"])
def test_cpu_presets_fine_tune_lite0_from_its_packaged_weights(preset: str) -> None:
    cfg = make_config(preset)
    assert (cfg.arch, cfg.pretrained, cfg.device) == ("efficientnet-lite0", True, "cpu")
    assert make_config(preset, arch="efficientnet-lite2").arch == "efficientnet-lite2"
