"""Every failure is harmless or loud: each test below causes one and checks what the user gets.

Killed or interrupted runs, bad and inconsistent data, untrusted checkpoints, a non-finite loss,
odd predict inputs, bad configs and two runs in one folder.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SMALL, MakeDataset, tiny_config, without_timing
from PIL import Image

from fgvc.apps.cli import main
from fgvc.apps.predict_output import predict_files
from fgvc.core.config import ConfigError, flag
from fgvc.core.errors import BadImageError, DatasetError, FgvcError, FolderError
from fgvc.data import FGVC_FOLDER, build_dataset, load_image
from fgvc.models.backbones import WeightsError, build_model
from fgvc.models.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from fgvc.models.predictor import Predictor
from fgvc.runs import runlog
from fgvc.runs.csvlog import read_rows
from fgvc.runs.folders import claim_run_dir, new_run_dir, release_run_dir
from fgvc.training import engine
from fgvc.training.engine import fit

REPO = Path(__file__).resolve().parents[1]
# The CLI in a child process, with Ctrl-C raising KeyboardInterrupt even if this process ignores SIGINT.
CLI = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
       "from fgvc.apps.cli import main; sys.exit(main(sys.argv[1:]))")
HOLD = ("import sys, time; from fgvc.runs.folders import claim_run_dir\n"
        "for d in sys.argv[1:]: claim_run_dir(d)\nprint('held', flush=True); time.sleep(600)")


@pytest.fixture(scope="module")
def long_root(make_dataset: MakeDataset) -> Path:
    """3 classes, 48 trainval images: 12 steps of 4 per epoch, long enough to stop one midway."""
    return make_dataset(3, 24)


@pytest.fixture(scope="module")
def one_epoch_checkpoint(val_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.pt of a copy of conftest's one-epoch run (efficientnet-b0, 3 classes)."""
    run = tmp_path_factory.mktemp("runs") / "trained"
    shutil.copytree(val_run, run)
    return run / "last.pt"


@pytest.fixture(scope="module")
def first_of_two_epochs(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-epoch run stopped after its first (3 steps of 4 images): its folder, for a test to resume a copy of."""
    return fit(tiny_config(tiny_root, tmp_path_factory.mktemp("runs") / "stopped", epochs=2, **SMALL), progress=False,
               stop_after=1)


def copy_dataset(root: Path, dest: Path) -> Path:
    """A copy of ``root`` to break; returns its ``data`` folder."""
    shutil.copytree(root, dest)
    return dest / FGVC_FOLDER / "data"


def train_args(root: Path, run: Path, epochs: int = 1, *extra: str) -> list[str]:
    return ["train", "--preset", "demo", "--data-root", str(root), "--epochs", str(epochs), "--warmup-epochs", "0",
            "--img-size", "32", "--batch-size", "4", "--workers", "0", "--run-dir", str(run), "--no-progress", *extra]


def start_cli(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_epoch(process: subprocess.Popen[str], steps_csv: Path, epoch: int, timeout: float = 600) -> None:
    """Poll ``steps.csv`` until it holds a row of ``epoch``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if steps_csv.exists() and any(int(r["epoch"]) == epoch for r in read_rows(steps_csv)):
            return
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"training ended (status {process.returncode}) before epoch {epoch}:\n{out}\n{err}")
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no row of epoch {epoch} in {steps_csv} after {timeout} s")


# --- killed and interrupted runs ---------------------------------------------------------------


# Every option that keeps state or draws randomness across epochs: the EMA, the batch augmentations, the head's
# own learning rate and an evaluation size apart from the training size.
RECIPE = {"ema_decay": 0.9, "mixup_alpha": 0.2, "cutmix_alpha": 1.0, "random_erasing": 0.5, "head_lr_scale": 5.0,
          "eval_img_size": 48}


@pytest.mark.slow
def test_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(long_root: Path, tmp_path: Path) -> None:
    """The one proof of exact resume: a CLI run with every stateful option, killed with SIGKILL inside epoch 2 and
    resumed, ends bit-identical (weights, EMA weights, logs) to the same run left alone."""
    run = tmp_path / "killed"
    options = [part for field, value in RECIPE.items() for part in (flag(field), str(value))]
    process = start_cli(train_args(long_root, run, 2, "--log-every", "1", *options))
    wait_for_epoch(process, run / "steps.csv", 2)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert [r["epoch"] for r in read_rows(run / "epochs.csv")] == [1]  # killed inside epoch 2
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # never half-written
    with (run / "steps.csv").open("a") as f:
        f.write("2,99,0.5")  # a row torn by the kill

    assert main(["train", "--resume", str(run / "last.pt"), "--no-progress"]) == 0
    assert "resuming" in (run / "train.log").read_text() and "after epoch 1 of 2" in (run / "train.log").read_text()
    straight = fit(tiny_config(long_root, tmp_path / "straight", epochs=2, log_every=1, arch="efficientnet-lite0",
                               pretrained=True, **SMALL, **RECIPE), progress=False)  # what --preset demo trains
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(run / "last.pt")
    assert b["epoch"] == 2 and a["ema_updates"] == b["ema_updates"] == 2 * 12
    assert {**a["config"], "run_dir": None} == {**b["config"], "run_dir": None}
    for part in ("model", "ema"):
        for key, tensor in a[part].items():
            assert torch.equal(tensor, b[part][key]), f"{part} {key}"
    for name in ("steps.csv", "epochs.csv"):
        assert without_timing(read_rows(run / name)) == without_timing(read_rows(straight / name)), name
    steps = [r["step"] for r in read_rows(run / "steps.csv")]
    assert steps == sorted(set(steps))  # no duplicated or torn rows


@pytest.mark.slow
def test_ctrl_c_in_the_terminal_keeps_last_pt_and_says_how_to_resume(long_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "interrupted"
    process = start_cli(train_args(long_root, run, 2, "--log-every", "1"))
    wait_for_epoch(process, run / "steps.csv", 2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"resume with: fgvc train --resume {run / 'last.pt'}" in out
    assert err.strip().endswith("fgvc: interrupted") and "Traceback" not in out + err
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_keeps_last_pt_says_how_to_resume_and_asks_for_a_requeue(long_root: Path, tmp_path: Path,
                                                                            sig: signal.Signals) -> None:
    run = tmp_path / "preempted"
    process = start_cli(train_args(long_root, run, 2, "--log-every", "1"))
    wait_for_epoch(process, run / "steps.csv", 2)
    process.send_signal(sig)  # what a scheduler sends before it kills the job
    out, err = process.communicate(timeout=120)
    assert process.returncode == 75, err  # EX_TEMPFAIL: requeue
    last = run / "last.pt"
    assert (f"preempted by {sig.name}; {last} keeps the last finished epoch; "
            f"resume with: fgvc train --resume {last}") in out
    assert "requeue" in err and "Traceback" not in out + err
    assert load_checkpoint(last)["epoch"] == 1
    assert main(["train", "--resume", str(last), "--no-progress"]) == 0
    assert [r["epoch"] for r in read_rows(run / "epochs.csv")] == [1, 2]


@pytest.mark.slow  # a Jupyter kernel in its own process
def test_ctrl_c_in_jupyter_raises_one_short_keyboard_interrupt(tiny_root: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    append_row = runlog.append_row

    def interrupt_in_epoch_2(path: Path, fields: tuple[str, ...], row: dict[str, float]) -> None:
        append_row(path, fields, row)
        if path.name == "steps.csv" and row["epoch"] == 2:
            signal.raise_signal(signal.SIGINT)  # what Jupyter's "interrupt kernel" sends

    monkeypatch.setattr(runlog, "append_row", interrupt_in_epoch_2)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    run = tmp_path / "notebook"
    try:
        with pytest.raises(KeyboardInterrupt) as interrupt:
            fit(tiny_config(tiny_root, run, epochs=2, **SMALL), progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert str(interrupt.value) == (f"interrupted; {run / 'last.pt'} keeps the last finished epoch; "
                                    f"resume with: fgvc train --resume {run / 'last.pt'}")
    assert interrupt.value.__suppress_context__  # no chain of inner tracebacks
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    free = subprocess.run([sys.executable, "-c", "import sys; from fgvc.runs.folders import claim_run_dir; "
                           "claim_run_dir(sys.argv[1])", str(run)], cwd=REPO, capture_output=True, text=True)
    assert free.returncode == 0, free.stderr  # the run folder was let go

    monkeypatch.setattr(runlog, "append_row", append_row)
    fit(resume=run / "last.pt", progress=False)
    assert [r["epoch"] for r in read_rows(run / "epochs.csv")] == [1, 2]


def test_checkpoint_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    good = {"model": {"w": torch.ones(3)}, "epoch": 1, "config": {}, "classes": ["a", "b"]}
    save_checkpoint(path, good)

    def crash_halfway(state: dict, f: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {**good, "epoch": 2})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind

    torn = tmp_path / "torn.pt"
    torn.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"could not read checkpoint {torn}"):
        load_checkpoint(torn)


# --- bad and inconsistent data ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_root(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The tiny dataset with a truncated JPEG, a zero-byte file and a text file named .jpg in trainval."""
    root = tmp_path_factory.mktemp("bad") / "root"
    data = copy_dataset(tiny_root, root)
    ids = [line.split(" ", 1)[0] for line in (data / "images_variant_trainval.txt").read_text().splitlines()]
    bad = [data / "images" / f"{ids[i]}.jpg" for i in (0, 4, 8)]
    bad[0].write_bytes(bad[0].read_bytes()[:600])
    bad[1].write_bytes(b"")
    bad[2].write_text("these are my notes, not a photo")
    return root, bad


def test_bad_images_stop_training_with_the_file_named(bad_root: tuple[Path, list[Path]], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root, bad = bad_root
    assert main(train_args(root, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert f"fgvc: error: {bad[0]}: damaged image" in err and "--skip-bad-images" in err and "check-data" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run" / "last.pt").exists()


def test_skip_bad_images_logs_and_counts_each(bad_root: tuple[Path, list[Path]], tmp_path: Path) -> None:
    root, bad = bad_root
    assert main(train_args(root, tmp_path / "run", 1, "--skip-bad-images")) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    for path, reason in zip(bad, ("damaged image", "empty file (0 bytes)", "not an image")):
        assert f"skipping bad image {path}: {reason}" in log
    assert "9 train / 6 eval images (3 bad images skipped)" in log


def test_check_data_lists_every_bad_file(bad_root: tuple[Path, list[Path]], tiny_root: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    root, bad = bad_root
    assert main(["check-data", "--data-root", str(root)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert sorted(line.split(": ", 1)[0] for line in lines[:-1]) == sorted(map(str, bad))
    assert lines[-1] == f"18 images checked under {root}: 3 problem(s)"
    assert main(["check-data", "--data-root", str(tiny_root)]) == 0

    for split, name in (("train", "ok"), ("train", "bad"), ("val", "ok")):
        (tmp_path / "own" / split / name).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), "red").save(tmp_path / "own" / split / name / "a.jpg")
    (tmp_path / "own" / "train" / "bad" / "b.jpg").write_bytes(b"")
    capsys.readouterr()
    assert main(["check-data", "--data-root", str(tmp_path / "own"), "--dataset", "imagefolder"]) == 1
    assert f"{tmp_path / 'own' / 'train' / 'bad' / 'b.jpg'}: empty file" in capsys.readouterr().out


def _drop_annotation(data: Path) -> str:
    (data / "images_variant_test.txt").unlink()
    return "images_variant_test.txt"


def _drop_image(data: Path) -> str:
    image_id = (data / "images_variant_test.txt").read_text().splitlines()[2].split(" ", 1)[0]
    (data / "images" / f"{image_id}.jpg").unlink()
    return f"images_variant_test.txt line 3: image {data / 'images' / image_id}.jpg not found"


def _unknown_class(data: Path) -> str:
    lines = (data / "images_variant_test.txt").read_text().splitlines()
    lines[1] = lines[1].split(" ", 1)[0] + " Boeing 797"
    (data / "images_variant_test.txt").write_text("\n".join(lines) + "\n")
    return "images_variant_test.txt line 2: variant 'Boeing 797' is not in variants.txt"


def _malformed_line(data: Path) -> str:
    lines = (data / "images_variant_test.txt").read_text().splitlines()
    (data / "images_variant_test.txt").write_text("\n".join([*lines[:3], "1234567", *lines[3:]]) + "\n")
    return "images_variant_test.txt line 4: '1234567' is malformed, expected '<image id> <variant name>'"


@pytest.mark.parametrize("damage", [_drop_annotation, _drop_image, _unknown_class, _malformed_line])
def test_missing_or_inconsistent_dataset_files_are_named_with_the_line(tiny_root: Path, tmp_path: Path,
                                                                       damage: Callable[[Path], str]) -> None:
    data = copy_dataset(tiny_root, tmp_path / "copy")
    expected = damage(data)
    with pytest.raises(DatasetError) as err:
        build_dataset(tmp_path / "copy", "test")
    assert expected in str(err.value) and len(str(err.value).splitlines()) == 1


# --- untrusted checkpoints ------------------------------------------------------------------------


class RunsCode:
    """Unpickling this calls ``exec``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    calls = 0
    for source in (REPO / "fgvc").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("load", "load_state_dict_from_url") \
                    and ast.unparse(node.func).startswith("torch."):
                calls += 1
                flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                assert flags.get("weights_only") == "True", f"{source.name}:{node.lineno}"
    assert calls >= 2


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "last.pt"
    torch.save({"model": RunsCode(marker), "epoch": 1, "config": {}, "classes": ["a", "b"]}, evil)
    with pytest.raises(CheckpointError, match=f"refused to load {evil}: .* could run code"):
        load_checkpoint(evil)
    weights = tmp_path / "weights.pth"
    torch.save({"_fc.weight": RunsCode(marker)}, weights)
    with pytest.raises(WeightsError, match=f"refused to load {weights}"):
        build_model("efficientnet-b0", 3, weights=weights)
    assert not marker.exists()


@pytest.mark.parametrize(("arch", "classes"), [("efficientnet-b0", 4), ("tv_efficientnet_b0", 3)])
def test_a_checkpoint_for_another_model_is_a_clear_error(one_epoch_checkpoint: Path, arch: str, classes: int) -> None:
    with pytest.raises(CheckpointError) as err:
        load_model_state(build_model(arch, classes, pretrained=False), load_checkpoint(one_epoch_checkpoint),
                         one_epoch_checkpoint)
    message = str(err.value)
    assert f"{one_epoch_checkpoint} was saved from efficientnet-b0 with 3 classes" in message
    assert len(message.splitlines()) == 1 and "size mismatch" not in message


# --- non-finite loss ------------------------------------------------------------------------------


class NaNLoss(torch.nn.CrossEntropyLoss):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().forward(logits, targets) * float("nan")


@pytest.mark.parametrize("where", ["train", "eval"])
def test_a_non_finite_loss_stops_with_epoch_and_step_keeping_the_last_good_checkpoint(
        first_of_two_epochs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], where: str) -> None:
    run = shutil.copytree(first_of_two_epochs, tmp_path / "run")
    good = (run / "last.pt").read_bytes()
    if where == "train":
        monkeypatch.setattr(torch.nn, "CrossEntropyLoss", NaNLoss)
        expected = "the training loss became nan in epoch 2 at step 6"  # 3 steps per epoch, logged at the last
    else:
        evaluate = engine.evaluate
        monkeypatch.setattr(engine, "evaluate",
                            lambda *a, **k: dataclasses.replace(evaluate(*a, **k), loss=float("nan")))
        expected = "the test loss became nan after epoch 2"
    capsys.readouterr()
    assert main(["train", "--resume", str(run / "last.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "last.pt keeps epoch 1, the last good one" in err and "Traceback" not in err
    assert (run / "last.pt").read_bytes() == good
    assert [r["epoch"] for r in read_rows(run / "epochs.csv")] == [1]  # nothing of epoch 2 was kept


# --- odd inputs to predict ------------------------------------------------------------------------


def odd_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """Images in unusual formats that must be predicted, and files that must be refused."""
    ramp = np.linspace(0, 65535, 24 * 32).reshape(24, 32).astype(np.uint16)
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[:, 20:] = (255, 0, 0, 255)  # left half fully transparent (black underneath), right half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = Image.new("RGB", (60, 40), "blue")
    stored.paste((255, 0, 0), (0, 0, 15, 10))  # red in the top-left corner as stored
    good = {"grey.png": lambda p: Image.new("L", (40, 30), 128).save(p),
            "cmyk.jpg": lambda p: Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(p),
            "sixteen-bit.png": lambda p: Image.fromarray(ramp).save(p),
            "alpha.png": lambda p: Image.fromarray(rgba, "RGBA").save(p),
            "grey-alpha.png": lambda p: Image.new("LA", (40, 30), (90, 120)).save(p),
            "rotated.jpg": lambda p: stored.save(p, exif=exif)}
    refused = {"notes.jpg": lambda p: p.write_text("not a picture"),
               "empty.jpg": lambda p: p.write_bytes(b""),
               "bomb.png": lambda p: Image.new("RGB", (200, 200), "white").save(p)}
    for name, write in {**good, **refused}.items():
        write(folder / name)
    return [folder / n for n in good], [folder / n for n in refused]


def test_odd_images_are_converted_and_bad_ones_refused_per_file(one_epoch_checkpoint: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    good, refused = odd_images(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # bomb.png has 40,000 pixels, the others at most 2,400
    paths = [refused[0], *good[:3], *refused[1:], *good[3:], tmp_path / "missing.jpg"]
    predictor = Predictor.from_checkpoint(one_epoch_checkpoint, device="cpu")
    results = predict_files(predictor, [str(p) for p in paths], topk=2)
    assert [r["file"] for r in results] == [str(p) for p in paths]
    for path, result in zip(paths, results):
        if path in good:
            assert len(result["top"]) == 2 and "error" not in result, path
        else:
            assert str(path) in result["error"] and "top" not in result, path
    errors = {Path(r["file"]).name: r["error"] for r in results if "error" in r}
    assert "not an image" in errors["notes.jpg"] and "empty file" in errors["empty.jpg"]
    assert "decompression bomb" in errors["bomb.png"] and "not found" in errors["missing.jpg"]


def test_odd_images_load_as_the_rgb_picture_they_show(tmp_path: Path) -> None:
    odd_images(tmp_path)
    pixels = {p.name: np.asarray(load_image(p)) for p in tmp_path.glob("*.*g") if p.stem not in ("notes", "empty")}
    assert all(a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 for a in pixels.values())
    grey = pixels["grey.png"]
    assert (grey == 128).all()
    assert tuple(pixels["cmyk.jpg"][0, 0]) == (255, 0, 0)
    ramp = pixels["sixteen-bit.png"][:, :, 0].ravel()
    assert ramp[0] == 0 and ramp[-1] == 255 and (np.diff(ramp.astype(int)) >= 0).all()  # scaled, not clipped
    assert tuple(pixels["alpha.png"][0, 0]) == (255, 255, 255) and tuple(pixels["alpha.png"][0, -1]) == (255, 0, 0)
    assert pixels["grey-alpha.png"].shape == (30, 40, 3)
    rotated = pixels["rotated.jpg"]
    assert rotated.shape == (60, 40, 3)  # stored 60 wide, 40 tall; shown rotated
    top_right, top_left = rotated[2, -3], rotated[2, 2]
    assert top_right[0] > 200 > top_right[2] and top_left[2] > 200 > top_left[0]
    with pytest.raises(BadImageError, match="30 px tall, expected more than the 30-px banner"):
        load_image(tmp_path / "grey.png", banner_px=30)


# --- bad configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "kind", "named"), [
    ({"arch": "resnet50"}, ConfigError, "arch='resnet50' is invalid: expected one of efficientnet-b0"),
    ({"epochs": 0}, ConfigError, "epochs=0 is invalid: expected a positive integer"),
    ({"batch_size": -4}, ConfigError, "batch_size=-4 is invalid: expected a positive integer"),
    ({"img_size": 0}, ConfigError, "img_size=0 is invalid: expected an integer >= 32"),
    ({"img_size": 16}, ConfigError, "img_size=16 is invalid: expected an integer >= 32"),
    ({"batch_size": 64}, DatasetError, "batch_size=64 is larger than split 'trainval' (12 images"),
    ({"run_dir": "in-the-way/run"}, FolderError, "cannot create run folder"),
])
def test_a_bad_config_is_refused_before_any_heavy_work(tiny_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, overrides: dict,
                                                       kind: type[FgvcError], named: str) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built for a config that should have been refused")

    monkeypatch.setattr(engine, "build_model", no_model)
    (tmp_path / "in-the-way").write_text("a file where the run folder should go")
    cfg = tiny_config(tiny_root, tmp_path / "run", **SMALL)
    if "run_dir" in overrides:
        overrides = {"run_dir": str(tmp_path / overrides["run_dir"])}
    with pytest.raises(kind) as err:
        fit(dataclasses.replace(cfg, **overrides), progress=False)
    assert named in str(err.value) and len(str(err.value).splitlines()) == 1
    if isinstance(err.value, ConfigError):
        assert not (tmp_path / "run").exists()  # refused before even the run folder was made


# --- two runs at once -------------------------------------------------------------------------------


def test_two_runs_never_write_into_the_same_folder(tiny_root: Path, one_epoch_checkpoint: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(fresh), str(one_epoch_checkpoint.parent)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderError, match=f"is in use by process {holder.pid}"):
            fit(tiny_config(tiny_root, fresh, **SMALL), progress=False)
        assert sorted(p.name for p in fresh.iterdir()) == [".lock"]  # nothing written by the refused run
        with pytest.raises(FolderError, match="in use"):
            fit(resume=one_epoch_checkpoint, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    for folder in (fresh, one_epoch_checkpoint.parent):  # a killed run leaves no stale lock
        claim_run_dir(folder)
        release_run_dir(folder)

    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(new_run_dir(tmp_path / "logs", "demo")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)
