"""slurm/train.sbatch run as SLURM runs it, on 2 CPU processes (gloo), with stand-ins for ``srun`` (runs its
arguments) and ``scontrol`` (records a requeue): however the stop signal is delivered (to the job script alone,
to every process of the step, SIGTERM to every process of the job), every rank stops at the step in progress, no
process is left behind, and the job is requeued; the requeued job resumes. A job that fails is not requeued, a
finished one neither. Also ``fgvc status``, which the script asks, and the stop that waits for rank 0's records."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import torch
from helpers import MakeDataset

from fgvc.apps.cli import main
from fgvc.apps.cli.train_commands import REQUEUE_EXIT, UNFINISHED_EXIT
from fgvc.core.config import make_config
from fgvc.core.errors import Preempted
from fgvc.models.checkpoint import load_checkpoint, save_checkpoint
from fgvc.runs.csvlog import read_rows
from fgvc.runs.folders import hold_for_resume, release_run_dir, start_run
from fgvc.runs.status import STOP_FILE, record_stop, stop_signal
from fgvc.training.preemption import preemption_signals, uninterrupted

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


def wait_for(job: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool]) -> None:
    """Wait until ``ready()``; the test fails if the job script ends first or takes more than 300 s."""
    deadline = time.monotonic() + 300
    while not ready():
        assert job.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


def training(run: Path, resumes: int) -> bool:
    """Whether the run's session after ``resumes`` resumes has logged a training step."""
    log = run / "train.log"
    sessions = log.read_text().split(f"resuming {run} after epoch") if log.exists() else []
    return len(sessions) == resumes + 1 and re.search(r"epoch \d+ step \d+", sessions[-1]) is not None


def stopped_cleanly(job: subprocess.Popen[bytes], log: Path, run: Path, requeues: int, trained: int | None) -> int:
    """Check that the signalled job ended, was requeued (the ``requeues``-th time), left ``last.pt`` whole at the
    last finished epoch (``trained``, when known) and no process behind; return that epoch."""
    assert finish(job, log, timeout=90) == 0, log.read_text()
    assert (run.parent / "requeues").read_text() == f"requeue {JOB_ID}\n" * requeues, log.read_text()
    epoch = load_checkpoint(run / "last.pt")["epoch"]
    assert trained in (None, epoch) and [r["epoch"] for r in read_rows(run / "epochs.csv")] == list(range(1, epoch + 1))
    assert not list(run.glob(".*.tmp")), "a checkpoint write was cut"
    deadline = time.monotonic() + 10  # the processes have ended; give /proc a moment to drop them
    while processes_of(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_of(run), [p.info["cmdline"] for p in processes_of(run)]
    return epoch


@pytest.mark.slow
def test_a_job_is_requeued_whichever_processes_get_the_stop_signal(job_data: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """One run, stopped three times as SLURM can stop it, each time requeued and then resumed by the next job.
    (That a requeued job trains to the end is shown by test_distributed's resumes under torchrun.)"""
    env, log = job_environment(tmp_path, job_data), tmp_path / "job.log"
    run = Path(env["FGVC_RUN"])
    job = start_job(env, log)
    wait_for(job, log, lambda: (run / "steps.csv").exists() and any(r["epoch"] == 2 for r in
                                                                   read_rows(run / "steps.csv")))
    job.send_signal(signal.SIGUSR1)  # --signal=B:USR1@300: the job script alone, which passes it on to the step
    trained = stopped_cleanly(job, log, run, requeues=1, trained=None)
    assert trained in (1, 2)
    assert f"preempted by SIGUSR1; {run / 'last.pt'} keeps the last finished epoch" in log.read_text()
    assert main(["status", str(run)]) == REQUEUE_EXIT
    assert "stopped by SIGUSR1" in capsys.readouterr().out

    job = start_job(env, log)  # the requeued job resumes
    wait_for(job, log, lambda: training(run, resumes=1))
    for process in processes_of(run):  # --signal=USR1@300: torchrun and every rank, never the job script
        process.send_signal(signal.SIGUSR1)
    stopped_cleanly(job, log, run, requeues=2, trained=trained)
    assert log.read_text().count("train.sbatch: got SIG") == 1, "the second job's script was signalled"
    assert main(["status", str(run)]) == REQUEUE_EXIT  # requeued from the run folder's record alone

    job = start_job(env, log)
    wait_for(job, log, lambda: training(run, resumes=2))
    for process in processes_of(run):  # preemption: SIGTERM to every process of the job, the job script too
        process.send_signal(signal.SIGTERM)
    job.send_signal(signal.SIGTERM)
    stopped_cleanly(job, log, run, requeues=3, trained=trained)
    assert f"resuming {run} after epoch {trained} of 3" in (run / "train.log").read_text()
    assert main(["status", str(run)]) == REQUEUE_EXIT


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


@pytest.mark.slow
@pytest.mark.parametrize(("trained", "step_status", "job_status"), [
    (1, 1, 1),  # the step failed (a bad flag, a broken GPU) before fgvc train cleared the record: not requeued
    (3, 0, 0),  # the run has finished
])
def test_a_job_that_fails_or_finishes_is_not_requeued(tmp_path: Path, trained: int, step_status: int,
                                                      job_status: int) -> None:
    """Each after a job that a signal stopped (its record is still in the run folder): the script forgets that
    record before the step, so only the step's own end counts. The step is a stand-in that exits at once."""
    env = job_environment(tmp_path, tmp_path / "unused")
    run = fake_run(Path(env["FGVC_RUN"]), epochs=3, trained=trained, analysed=trained == 3)
    record_stop(run, "SIGUSR1")
    (tmp_path / "bin" / "srun").write_text(f"#!/bin/bash\nexit {step_status}\n")
    log = tmp_path / "job.log"
    assert finish(start_job(env, log), log, timeout=60) == job_status, log.read_text()
    assert not (tmp_path / "requeues").exists(), log.read_text()
    assert ("not requeued (torchrun exit status 1)" in log.read_text()) == (step_status == 1), log.read_text()


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


def test_status_asks_for_a_requeue_when_a_signal_stopped_the_run(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    half = fake_run(tmp_path / "half", epochs=3, trained=2)
    record_stop(half, "SIGTERM")
    assert main(["status", str(half)]) == REQUEUE_EXIT
    assert capsys.readouterr().out.splitlines()[1] == \
        f"stopped by SIGTERM: exit status {REQUEUE_EXIT}, requeue the job to resume the run"
    done = fake_run(tmp_path / "done", epochs=3, trained=3, analysed=True)
    record_stop(done, "SIGUSR1")  # the signal came during the final analysis, which finished
    assert main(["status", str(done)]) == 0
    (half / STOP_FILE).write_text("SIGTERM")
    assert main(["status", str(half)]) == 2
    assert f"{half / STOP_FILE} is not the stop record fgvc writes" in capsys.readouterr().err


def test_a_new_session_forgets_how_the_last_one_ended(tmp_path: Path) -> None:
    """Rank 0's first step in fit (start_run, or hold_for_resume) clears the stop record, so a session that then
    fails is not requeued for its predecessor's signal."""
    cfg = make_config("demo", run_dir=str(tmp_path / "run"), epochs=3)
    run = fake_run(tmp_path / "run", epochs=3, trained=None)  # stopped before its first epoch finished
    record_stop(run, "SIGUSR1")
    start_run(cfg)
    release_run_dir(run)
    assert stop_signal(run) is None
    record_stop(run, "SIGUSR1")
    hold_for_resume(run, cfg, 1)
    release_run_dir(run)
    assert stop_signal(run) is None
