"""torchrun with 2 processes on the CPU (gloo): one run folder written by rank 0, every test image counted once,
ranks that fail together, resume on another number of processes, gradient accumulation."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import PROBABILITY_TOLERANCE, MakeDataset, tiny_config, train
from torch.utils.data import DataLoader, TensorDataset

from fgvc.apps.benchmarks import ddp as ddp_benchmark
from fgvc.apps.cli import main
from fgvc.core.config import make_config
from fgvc.core.distributed import wrap
from fgvc.core.errors import ConfigError
from fgvc.data import FGVC_FOLDER
from fgvc.evaluation.evaluate import evaluate_checkpoint
from fgvc.models.checkpoint import load_checkpoint
from fgvc.runs.csvlog import read_rows
from fgvc.training.engine import fit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def odd_root(make_dataset: MakeDataset) -> Path:
    """3 classes, 30 trainval and 15 test images: an odd test split, which a padding sampler would inflate."""
    return make_dataset(3, 15, size=(96, 88))


def torchrun(run: Path, root: Path, *extra: str, logs: Path) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node=2 -m fgvc train ...`` on the CPU, each rank's output in ``logs``:
    the demo preset at 64 px, batch 4 a process, into ``run`` (or, given ``--resume``, just ``extra``)."""
    new_run = ["--preset", "demo", "--data-root", str(root), "--img-size", "64", "--batch-size", "4", "--workers",
               "0", "--device", "cpu", "--run-dir", str(run)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "--log-dir", str(logs), "--redirects", "3", "-m", "fgvc", "train",
               *([] if "--resume" in extra else new_run), "--no-progress", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def rank_output(logs: Path, rank: int, stream: str) -> str:
    return "".join(p.read_text() for p in logs.rglob(f"{rank}/{stream}.log"))


@pytest.fixture(scope="module")
def two_process_run(odd_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """2 epochs under torchrun with an EMA of the weights (each rank averages its own batch-norm statistics into
    it: every rank must evaluate rank 0's) and a time budget (rank 0's probe and first epoch decide the length for
    every rank): the run folder and the ranks' logs."""
    base = tmp_path_factory.mktemp("ddp")
    result = torchrun(base / "run", odd_root, "--epochs", "2", "--ema-decay", "0.5", "--time-budget", "60",
                      logs=base / "logs")
    assert result.returncode == 0, result.stdout + result.stderr + rank_output(base / "logs", 0, "stderr")
    return base / "run", base / "logs"


@pytest.mark.slow
def test_one_run_folder_written_by_rank_0_alone(two_process_run: tuple[Path, Path]) -> None:
    run, logs = two_process_run
    events = [p.name for p in run.glob("events.out.tfevents.*")]
    assert len(events) == 1  # TensorBoard events: rank 0's alone
    assert sorted(p.name for p in run.iterdir() if p.name not in events) == [
        ".lock", "config.json", "curves.png", "epochs.csv", "eval-test", "last.pt", "provenance.json", "samples.png",
        "schedule.json", "steps.csv", "train.log"]
    assert [r["epoch"] for r in read_rows(run / "epochs.csv")] == [1, 2]
    schedule = json.loads((run / "schedule.json").read_text())
    assert schedule["epochs"] == 2 and schedule["pace"]["evaluations"] == 2 and schedule["refit"]["first_epoch_s"] > 0
    config = json.loads((run / "config.json").read_text())
    assert (config["processes"], config["global_batch"]) == (2, 8)
    assert "global batch 8 = 2 process(es) x batch 4" in (run / "train.log").read_text()
    assert "run folder:" in rank_output(logs, 0, "stdout")
    assert rank_output(logs, 1, "stdout") == "" and rank_output(logs, 1, "stderr") == ""  # the others stay quiet


@pytest.mark.slow
def test_evaluation_counts_every_test_image_once_and_agrees_with_one_process(
        two_process_run: tuple[Path, Path], odd_root: Path, tmp_path: Path) -> None:
    """The run's final report (its EMA weights) and each epoch's evaluation of both weights, against one process."""
    run, _ = two_process_run
    test_ids = [line.split(" ")[0] for line in
                (odd_root / FGVC_FOLDER / "data" / "images_variant_test.txt").read_text().splitlines()]
    with (run / "eval-test" / "predictions.csv").open(newline="") as f:
        distributed = {Path(r["file"]).stem: r for r in csv.DictReader(f)}
    assert len(test_ids) == 15 and sorted(distributed) == sorted(test_ids)  # 15, not 16: nothing padded
    single = evaluate_checkpoint(run / "last.pt", "test", device="cpu", out=tmp_path / "single")
    assert single.report["weights"] == "ema"
    with (tmp_path / "single" / "predictions.csv").open(newline="") as f:
        alone = {Path(r["file"]).stem: r for r in csv.DictReader(f)}
    for image_id, row in alone.items():
        assert distributed[image_id]["predicted"] == row["predicted"], image_id
        assert float(distributed[image_id]["probability"]) == pytest.approx(float(row["probability"]),
                                                                            abs=PROBABILITY_TOLERANCE)
    last_epoch = read_rows(run / "epochs.csv")[-1]
    assert last_epoch["ema_eval_top1"] == pytest.approx(single.report["top1"])
    raw = evaluate_checkpoint(run / "last.pt", "test", device="cpu", out=tmp_path / "raw", weights="raw")
    assert last_epoch["eval_top1"] == pytest.approx(raw.report["top1"])
    assert len({row["probability"] for row in alone.values()}) > 3  # a model whose scores depend on the image


@pytest.mark.slow
def test_sigterm_to_the_launcher_leaves_a_last_pt_that_resumes_under_two_processes_then_on_one(
        make_dataset: MakeDataset, tmp_path: Path) -> None:
    root = make_dataset(3, 30, size=(96, 88))  # 60 trainval: 15 steps a rank
    run, last, logs = tmp_path / "run", tmp_path / "run" / "last.pt", tmp_path / "logs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "--log-dir", str(logs), "--redirects", "3", "-m", "fgvc", "train", "--preset", "demo",
               "--arch", "efficientnet-b0", "--no-pretrained", "--data-root", str(root), "--img-size", "32",
               "--batch-size", "2", "--workers", "0", "--device", "cpu", "--epochs", "3", "--log-every", "1",
               "--run-dir", str(run), "--no-progress"]
    launcher = subprocess.Popen(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / "steps.csv").exists() or not any(r["epoch"] == 2 for r in read_rows(run / "steps.csv")):
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()
        time.sleep(0.02)
    launcher.send_signal(signal.SIGTERM)  # what a scheduler does to the job
    launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    assert load_checkpoint(last)["epoch"] == 1
    assert "preempted by SIGTERM" in rank_output(logs, 0, "stdout")
    result = torchrun(run, root, "--resume", str(last), "--stop-after", "1", logs=tmp_path / "logs2")
    assert result.returncode == 0, result.stderr + rank_output(tmp_path / "logs2", 0, "stderr")
    assert load_checkpoint(last)["epoch"] == 2
    assert main(["train", "--resume", str(last), "--no-progress"]) == 0  # the two-process run, on one
    assert [r["epoch"] for r in read_rows(run / "epochs.csv")] == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["processes"] == 1
    assert "resuming" in (run / "train.log").read_text()


@pytest.mark.slow
def test_a_bad_image_stops_every_rank_with_the_same_message(odd_root: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(odd_root, root)
    images = root / FGVC_FOLDER / "data" / "images"
    bad = sorted(images.glob("*.jpg"))[0]
    bad.write_bytes(b"not a picture")
    result = torchrun(tmp_path / "run", root, "--epochs", "1", logs=tmp_path / "logs")
    assert result.returncode != 0  # and it returned: no rank was left waiting
    for rank in (0, 1):
        assert f"fgvc: error: {bad}: not an image" in rank_output(tmp_path / "logs", rank, "stderr"), rank


@pytest.mark.slow
def test_gradient_accumulation_steps_the_optimizer_once_per_k_batches(odd_root: Path, tmp_path: Path) -> None:
    run = fit(tiny_config(odd_root, tmp_path / "run", epochs=1, batch_size=4, accum_steps=3), progress=False)
    batches = 30 // 4  # 7 batches a epoch: optimizer steps after batches 3, 6 and 7
    assert load_checkpoint(run / "last.pt")["scheduler"]["last_epoch"] == 3
    assert [int(r["step"]) for r in read_rows(run / "steps.csv")] == [5, batches]
    assert "global batch 12 = 1 process(es) x batch 4 x 3 accumulation step(s)" in (run / "train.log").read_text()


def test_sync_bn_is_refused_on_the_cpu() -> None:
    with pytest.raises(ConfigError, match="--sync-bn needs GPUs"):
        wrap(torch.nn.BatchNorm2d(3), torch.device("cpu"), sync_bn=True)


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(
        two_process_run: tuple[Path, Path], odd_root: Path, tmp_path: Path) -> None:
    """Both runs see the same images in each global batch (one permutation per epoch, every 2nd index per rank).
    They are not bit-identical: each rank's batch norm normalises its own 4 images instead of all 8, each rank
    draws its own augmentations, and the gradients are averaged in another order."""
    run, _ = two_process_run
    alone = fit(make_config("demo", data_root=str(odd_root), img_size=64, batch_size=8, workers=0, device="cpu",
                            epochs=2, run_dir=str(tmp_path / "alone")), progress=False)
    two, one = read_rows(run / "epochs.csv"), read_rows(alone / "epochs.csv")
    print("\n2 processes x 4:", [(r["train_loss"], r["eval_top1"]) for r in two],
          "\n1 process x 8: ", [(r["train_loss"], r["eval_top1"]) for r in one])
    for a, b in zip(two, one, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=0.25)
        assert a["eval_top1"] == pytest.approx(b["eval_top1"], abs=3 / 15 + 1e-9)  # 3 of the 15 test images


def test_accumulating_k_batches_of_b_is_one_step_of_k_times_b() -> None:
    """On a model without batch norm, gradients of 2 batches of 4 added up (each loss divided by 2) are the
    gradient of one batch of 8: the two runs end with the same weights, up to float rounding."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 6), torch.randint(0, 3, (32,)))
    cfg = tiny_config(Path("unused"), Path("unused"), optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                      epochs=1, warmup_epochs=0)
    weights = {}
    for batch, accum in ((8, 1), (4, 2)):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        state = train(model, cfg, DataLoader(data, batch_size=batch), accum_steps=accum)
        assert state.scheduler.last_epoch == 4  # four optimizer steps either way
        weights[accum] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.allclose(weights[1], weights[2], atol=1e-6)
    assert not torch.allclose(weights[1], torch.cat([p.detach().flatten() for p in torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).parameters()]), atol=1e-3)


@pytest.mark.slow
def test_the_ddp_benchmark_runs_and_reports_its_scaling(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """fgvc/apps/benchmarks/gpu_ddp.sh's Python part on 2 CPU processes: it runs and reports (the figures
    themselves belong to BENCHMARKS.md, measured on GPUs, never asserted here)."""
    small = ["--device", "cpu", "--arch", "efficientnet-b0", "--img-size", "64", "--batch-size", "4", "--steps",
             "2", "--warmup", "1"]
    lines = []
    for processes in (1, 2):
        result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 f"--nproc_per_node={processes}", "-m", "fgvc.apps.benchmarks.ddp", *small], cwd=REPO,
                                capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr
        lines.append(result.stdout.strip().splitlines()[-1])
        assert json.loads(lines[-1])["processes"] == processes and json.loads(lines[-1])["images_per_s"] > 0
    monkeypatch.setattr(sys, "argv", ["ddp.py", "--report", *lines])
    ddp_benchmark.main()
    assert "scaling efficiency" in capsys.readouterr().out
