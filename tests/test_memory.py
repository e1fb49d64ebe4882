"""Memory: a training step that cannot fit is refused before training with what fits, an out-of-memory error
during training becomes the same kind of message and leaves last.pt whole, and a long run is projected in days
(test_engine.py: the projection comes after the first batch)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from fgvc.apps.cli import main
from fgvc.core.config import ARCHS, make_config
from fgvc.core.errors import NotEnoughMemoryError
from fgvc.core.runtime import Runtime
from fgvc.models.checkpoint import load_checkpoint
from fgvc.training import engine, memory
from fgvc.training.engine import fit
from fgvc.training.loop import format_duration

CPU = Runtime(torch.device("cpu"))
GIB = 2**30


def suggested_batch(message: str) -> tuple[int, int]:
    batch, accum = re.search(r"--batch-size (\d+) --accum-steps (\d+)", message).groups()
    return int(batch), int(accum)


def test_every_arch_has_its_constants() -> None:
    assert set(memory.SAVED_BYTES) == set(memory.PARAMS) == set(ARCHS)
    assert all(0 < half < fp32 for fp32, half in memory.SAVED_BYTES.values())


def test_b4_at_448_px_is_refused_on_a_machine_it_cannot_fit_with_the_largest_batch_that_fits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` on a 24 GiB machine without a GPU: the OOM killer ended it at 23.6 GB resident."""
    cfg = make_config("b4", device="cpu", precision="fp32")
    assert memory.step_bytes(cfg, half=False) > 23.6e9  # the measured point: more than the OOM killer allowed
    monkeypatch.setattr(memory, "free_bytes", lambda device: 20 * GIB)
    with pytest.raises(NotEnoughMemoryError, match=r"efficientnet-b4 at 448 px, batch 32, fp32 needs about "
                                                   r"[\d.]+ GiB .* cpu has 20\.0 GiB free") as refused:
        memory.check_fits(cfg, CPU)
    batch, accum = suggested_batch(str(refused.value))
    assert batch * accum == 32 and batch < 32  # the global batch kept
    assert memory.step_bytes(cfg, False, batch) <= 20 * GIB < memory.step_bytes(cfg, False, 2 * batch)
    assert "--preset cpu" in str(refused.value)


def test_a_step_that_fits_passes_and_half_precision_needs_less(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config("b4", device="cpu")
    assert memory.step_bytes(cfg, half=True) < memory.step_bytes(cfg, half=False)
    monkeypatch.setattr(memory, "free_bytes", lambda device: memory.step_bytes(cfg, half=False))
    memory.check_fits(cfg, CPU)
    monkeypatch.setattr(memory, "free_bytes", lambda device: None)  # unknown (MPS): no check
    memory.check_fits(cfg, CPU)


def test_when_not_even_one_image_fits_a_smaller_image_is_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config("cpu", batch_size=8, accum_steps=2)
    monkeypatch.setattr(memory, "free_bytes", lambda device: 0.1 * GIB)
    with pytest.raises(NotEnoughMemoryError, match="a smaller --img-size than 224") as refused:
        memory.check_fits(cfg, Runtime(torch.device("cpu"), torch.bfloat16))
    assert "--batch-size" not in str(refused.value) and "--preset cpu" not in str(refused.value)


def test_fgvc_train_refuses_in_one_line_before_reading_any_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(memory, "free_bytes", lambda device: 8 * GIB)
    assert main(["train", "--preset", "b4", "--device", "cpu", "--data-root", str(tmp_path / "no-data"),
                 "--run-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "8.0 GiB free" in error and "--preset cpu" in error
    batch, accum = suggested_batch(error)
    assert batch * accum == 32
    assert not (tmp_path / "run" / "steps.csv").exists()


def test_out_of_memory_in_a_training_step_is_explained_and_last_pt_keeps_the_epoch_before(
        tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tiny_root, tmp_path / "run", epochs=2, batch_size=4, img_size=32)
    real, saved = engine.train_one_epoch, {}
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def out_of_memory_in_epoch_2(state, loader, *args, epoch, **kwargs):
        if epoch == 2:  # the forward pass of the epoch's first step runs out of memory
            saved["last"] = load_checkpoint(tmp_path / "run" / "last.pt")
            state.model.register_forward_hook(lambda *_: (_ for _ in ()).throw(oom))
        return real(state, loader, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", out_of_memory_in_epoch_2)
    with pytest.raises(NotEnoughMemoryError) as stopped:
        fit(cfg, progress=False)
    message = str(stopped.value)
    assert "at batch 4, 32 px, fp32" in message and "--batch-size 2 --accum-steps 2" in message
    assert f"{tmp_path / 'run' / 'last.pt'} keeps the last finished epoch" in message and "\n" not in message
    assert stopped.value.__cause__ is oom
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == saved["last"]["epoch"] == 1
    assert all(torch.equal(last["model"][k], saved["last"]["model"][k]) for k in saved["last"]["model"])


@pytest.mark.parametrize("oom", [RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                                              "can't allocate memory: you tried to allocate 123 bytes."),
                                 MemoryError()])
def test_the_cpus_out_of_memory_errors_are_explained_too(oom: BaseException, tmp_path: Path) -> None:
    cfg = make_config("b4", batch_size=1, device="cpu", precision="bf16")
    with (pytest.raises(NotEnoughMemoryError, match=r"at batch 1, 448 px, bf16 .*a smaller --img-size than 448, "
                                                    r"or --preset cpu.*no epoch had finished"),
          memory.explain_out_of_memory(cfg, tmp_path)):
        raise oom


def test_other_errors_pass_unchanged(tmp_path: Path) -> None:
    bug = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    with pytest.raises(RuntimeError) as raised, memory.explain_out_of_memory(make_config("demo"), tmp_path):
        raise bug
    assert raised.value is bug


def test_a_long_run_is_projected_in_days() -> None:
    assert format_duration(6.3 * 86400) == "6.3 days" and format_duration(3 * 3600 + 5 * 60) == "3 h 05 min"
