"""The benchmarks run on tiny inputs and print their tables (their figures are BENCHMARKS.md's, not tests')."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fgvc.apps.cli import main

REPO = Path(__file__).resolve().parents[1]


# data writes photos first: the slow tier
@pytest.mark.parametrize("benchmark", [pytest.param("data", marks=pytest.mark.slow), "train", "recipe"])
def test_a_benchmark_prints_its_table_against_a_same_run_baseline(benchmark: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.md"
    assert main(["bench", benchmark, "--quick", "--repeats", "1", "--device", "cpu", "--workdir", str(tmp_path),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| configuration | images/s | vs baseline | peak memory (MB) | note |" in printed
    baseline_rows = [line for line in printed.splitlines() if line.startswith("| baseline") or "(baseline)" in line]
    assert baseline_rows and all("| 1.00x |" in line for line in baseline_rows)
    assert "cores" in printed and out.read_text().strip() == printed.strip()


@pytest.mark.parametrize("script", ["fgvc/apps/benchmarks/gpu.sh", "fgvc/apps/benchmarks/gpu_ddp.sh",
                                    "slurm/train.sbatch"])
def test_the_shell_scripts_parse(script: str) -> None:
    """The GPU benchmarks and the job script run where no test here can run them (GPUs, SLURM): bash must at
    least read them whole."""
    result = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
