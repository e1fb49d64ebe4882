"""The precision a run computes in: ``auto`` trains in bf16 only on a CPU with bf16 arithmetic, inference on a CPU
stays fp32 on any CPU, and bf16 asked for on a CPU that would emulate it is named as slow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import SMALL, tiny_config

import fgvc.core.runtime
import fgvc.training.engine
from fgvc.core.config import make_config
from fgvc.core.runtime import Runtime, resolve_precision
from fgvc.training.engine import fit

CPU = torch.device("cpu")


@pytest.mark.parametrize("bf16_arithmetic", [True, False])
def test_auto_trains_in_bf16_only_on_a_cpu_with_bf16_arithmetic(bf16_arithmetic: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fgvc.core.runtime, "cpu_computes_bf16", lambda: bf16_arithmetic)
    preset = make_config("cpu")  # as the cpu preset trains: the precision this CPU computes fast, channels_last
    training = Runtime.create(preset.device, preset.precision, preset.channels_last, training=True)
    assert training.precision_name == ("bf16" if bf16_arithmetic else "fp32") and training.channels_last
    assert Runtime.create("cpu", "auto").precision_name == "fp32"  # inference: the same numbers on any CPU
    for name, dtype in {"fp32": None, "bf16": torch.bfloat16}.items():  # a named precision is kept
        assert resolve_precision(name, CPU, training=True) is dtype


@pytest.mark.parametrize("bf16_arithmetic", [True, False])
def test_bf16_on_a_cpu_that_would_emulate_it_is_named_as_slow(bf16_arithmetic: bool, tiny_root: Path,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fgvc.training.engine, "cpu_computes_bf16", lambda: bf16_arithmetic)
    run_dir = fit(tiny_config(tiny_root, tmp_path / "run", **SMALL, epochs=1, precision="bf16", train_split="train"),
                  progress=False)  # one step of 4 of the 6 train images: on this CPU bf16 may be emulated, and slow
    said = (run_dir / "train.log").read_text()
    assert "bf16 precision" in said  # what was asked for is what runs
    warned = "--precision bf16 on a CPU without bf16 arithmetic" in said
    assert warned != bf16_arithmetic
