"""slurm/train.sbatch run as SLURM runs it, on 2 CPU processes (gloo), with stand-ins for ``srun`` (runs its
arguments) and ``scontrol`` (records a requeue): a signal to the job script stops every rank at the step in
progress, leaves no process behind and requeues the job; run again, it resumes and finishes without a requeue.
Also ``fgvc status``, which the script asks, and the stop that waits for rank 0's records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from helpers import MakeDataset

from fgvc.checkpoint import load_checkpoint, save_checkpoint
from fgvc.cli import UNFINISHED_EXIT, main
from fgvc.errors import Preempted
from fgvc.preemption import preemption_signals, uninterrupted
from fgvc.tracking import read_rows

REPO = Path(__file__).resolve().parents[1]
JOB_SCRIPT = REPO / "slurm" / "train.sbatch"
JOB_ID = "4242"


@pytest.fixture(scope="module")
def job_data(make_dataset: MakeDataset) -> Path:
    """3 classes, 60 trainval images: 15 steps a rank at batch 2, long enough to signal the job mid-run."""
    return make_dataset(3, 30, size=(96, 88))


def job_environment(tmp_path: Path, data: Path) -> dict[str, str]:
    """What ``sbatch`` would give the script: the run's variables, a job id, and ``srun``/``scontrol`` stand-ins
    first on PATH (then this interpreter's, for ``python`` and ``torchrun``); fgvc imported from this checkout."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\nexec "$@"  # one task: the command itself, signals and all\n')
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$*" >> {tmp_path / "requeues"}\n')
    for stand_in in bin_dir.iterdir():
        stand_in.chmod(0o755)
    args = (f"--preset demo --arch efficientnet-b0 --no-pretrained --data-root {data} --img-size 32 --batch-size 2 "
            f"--workers 0 --device cpu --epochs 3 --log-every 1 --no-tensorboard")
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    return {**os.environ, "PATH": path, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "SLURM_JOB_ID": JOB_ID,
            "FGVC_RUN": str(tmp_path / "run"), "FGVC_ARGS": args, "NPROC": "2"}


def start_job(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["bash", str(JOB_SCRIPT)], cwd=REPO, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def finish(job: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The job script's exit status; on a timeout its whole process group is killed and the test fails."""
    try:
        return job.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail(f"the job script did not end within {timeout} s:\n{log.read_text()}")


def processes_of(run: Path) -> list[psutil.Process]:
    """Running processes whose command line names the run folder (torchrun and its ranks do)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(run) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


@pytest.mark.slow
def test_a_signalled_job_stops_every_rank_requeues_and_its_rerun_resumes_and_finishes(
        job_data: Path, tmp_path: Path) -> None:
    env, log = job_environment(tmp_path, job_data), tmp_path / "job.log"
    run, requeues = Path(env["FGVC_RUN"]), tmp_path / "requeues"
    job = start_job(env, log)
    deadline = time.monotonic() + 300
    while not (run / "steps.csv").exists() or not any(r["epoch"] == 2 for r in read_rows(run / "steps.csv")):
        assert job.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    job.send_signal(signal.SIGUSR1)  # --signal=B:USR1@300 signals the job script alone
    stopped = time.monotonic()
    assert finish(job, log, timeout=90) == 0, log.read_text()
    print(f"\nthe job script ended {time.monotonic() - stopped:.1f} s after the signal")
    assert requeues.read_text() == f"requeue {JOB_ID}\n", log.read_text()
    trained = load_checkpoint(run / "last.pt")["epoch"]
    assert trained in (1, 2) and [r["epoch"] for r in read_rows(run / "epochs.csv")] == list(range(1, trained + 1))
    assert not list(run.glob(".*.tmp")), "a checkpoint write was cut"
    assert f"preempted by SIGUSR1; {run / 'last.pt'} keeps the last finished epoch" in log.read_text()
    deadline = time.monotonic() + 10  # the processes have ended; give /proc a moment to drop them
    while processes_of(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_of(run), [p.info["cmdline"] for p in processes_of(run)]
    assert main(["status", str(run)]) == UNFINISHED_EXIT

    job = start_job(env, log)  # the requeued job
    assert finish(job, log, timeout=300) == 0, log.read_text()
    assert requeues.read_text() == f"requeue {JOB_ID}\n", "a finished run was requeued"
    assert f"resuming {run} after epoch {trained} of 3" in (run / "train.log").read_text()
    assert [r["epoch"] for r in read_rows(run / "epochs.csv")] == [1, 2, 3]
    assert main(["status", str(run)]) == 0
    assert not processes_of(run)


@pytest.mark.slow
def test_a_sigterm_to_the_job_script_reaches_the_step_as_one_sigusr1_and_requeues(tmp_path: Path) -> None:
    """A SIGTERM that reaches the job script alone counts as its SIGUSR1: the step gets SIGUSR1 (the signal the
    ranks stop on: the test above), once however many signals follow, and the unfinished run is requeued. The
    step is a stand-in for srun and torchrun that records its command and the signals it gets."""
    env = job_environment(tmp_path, tmp_path / "unused")
    run = fake_run(Path(env["FGVC_RUN"]), epochs=3, trained=1)
    step, signals = tmp_path / "step", tmp_path / "signals"
    (tmp_path / "bin" / "srun").write_text(  # on SIGUSR1: records it, and ends half a second later
        f'#!/bin/bash\ntrap \'echo USR1 >> {signals}; stopping=1\' USR1\necho "$*" > {step}\n'
        'while [[ -z ${stopping:-} ]]; do sleep 0.02; done\nsleep 0.5\n')
    log = tmp_path / "job.log"
    job = start_job(env, log)
    deadline = time.monotonic() + 60
    while not step.exists():
        assert job.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    job.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    job.send_signal(signal.SIGTERM)  # a second signal while the step stops
    assert finish(job, log, timeout=60) == 0, log.read_text()
    assert step.read_text().split()[:4] == ["torchrun", "--standalone", "--nproc_per_node=2",
                                            "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"]
    assert f"--resume {run / 'last.pt'}" in step.read_text()
    assert signals.read_text() == "USR1\n", log.read_text()
    assert "train.sbatch: got SIGTERM, stopping the run at the step in progress" in log.read_text()
    assert (tmp_path / "requeues").read_text() == f"requeue {JOB_ID}\n", log.read_text()


def test_a_signal_waits_for_an_uninterrupted_section_and_a_second_one_is_ignored() -> None:
    reached = []
    with pytest.raises(Preempted, match="preempted by SIGUSR1"), preemption_signals(), uninterrupted():
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)  # srun's step and torchrun can both send one
        reached.append("end of the section")
    assert reached == ["end of the section"]
    with pytest.raises(Preempted, match="preempted by SIGTERM"), preemption_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # never reached: outside a section the signal stops at once
        reached.append("after the signal")
    assert reached == ["end of the section"]


def fake_run(run: Path, *, epochs: int, trained: int | None, analysed: bool = False) -> Path:
    """A run folder as ``fgvc status`` reads it: config.json, last.pt after ``trained`` epochs, the analysis."""
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"epochs": epochs, "eval_split": "test"}))
    if trained is not None:
        save_checkpoint(run / "last.pt", {"model": {"w": torch.zeros(1)}, "epoch": trained, "config": {},
                                          "classes": []})
    if analysed:
        (run / "eval-test").mkdir()
        (run / "eval-test" / "metrics.json").write_text("{}")
    return run


def test_status_says_whether_a_run_has_finished(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(fake_run(tmp_path / "new", epochs=3, trained=None))]) == UNFINISHED_EXIT
    assert "unfinished: 0 of 3 epochs trained; no epoch has finished" in capsys.readouterr().out
    assert main(["status", str(fake_run(tmp_path / "half", epochs=3, trained=2))]) == UNFINISHED_EXIT
    assert f"2 of 3 epochs trained; resume with: fgvc train --resume {tmp_path / 'half' / 'last.pt'}" in \
        capsys.readouterr().out
    assert main(["status", str(fake_run(tmp_path / "done", epochs=3, trained=3, analysed=True))]) == 0
    assert "finished: 3 of 3 epochs trained" in capsys.readouterr().out
    assert main(["status", str(fake_run(tmp_path / "cut", epochs=3, trained=3))]) == 2  # requeueing would not help
    assert f"fgvc evaluate --checkpoint {tmp_path / 'cut' / 'last.pt'} --split test" in capsys.readouterr().err
    assert main(["status", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'} holds no run" in capsys.readouterr().err
