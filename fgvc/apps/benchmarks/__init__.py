"""Benchmarks: images per second against a baseline measured in the same run.

    fgvc bench data       # the training input pipeline at 448 px
    fgvc bench train      # one optimisation step: fp32 NCHW against autocast, channels_last, torch.compile
    fgvc bench recipe     # the cpu preset's step against smaller inputs and frozen early stages
    fgvc bench predict    # fgvc predict's path and ONNX Runtime: throughput and the latency of one image
    bash fgvc/apps/benchmarks/gpu.sh        # on a GPU machine: bench train and bench data at 448 px
    bash fgvc/apps/benchmarks/gpu_ddp.sh    # DDP scaling on every GPU (fgvc.apps.benchmarks.ddp under torchrun)

Each configuration runs a warm-up, then several repeats; a row reports the median, the peak memory
while it ran and its ratio to the first row, the baseline. The data they run on is generated
(``fgvc_sized_dataset``), so every benchmark runs offline. Each benchmark's ``run`` takes keyword
arguments; the CLI unpacks its flags into them.
"""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from fgvc.data.layout import synthetic_info

# FGVC-Aircraft's photos: 1000-1600 px wide, about 3:2, with the 20-px banner below, JPEG quality 90.
FGVC_WIDTHS = (1000, 1600)
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Row:
    """One configuration's measurement."""

    name: str
    images_per_s: float
    peak_mb: float
    note: str = ""


def _rss_mb(pids: list[int]) -> float:
    """Resident memory of the processes ``pids``, in MB (0 for one that has gone)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 2**20


def _process_tree() -> list[int]:
    """This process and its children (DataLoader workers), from /proc."""
    pids, queue = [], [os.getpid()]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                queue += [int(child) for child in f.read().split()]
        except FileNotFoundError:
            continue
    return pids


class PeakMemory:
    """The peak memory while the ``with`` block runs: CUDA's allocator peak on a GPU, otherwise the resident
    memory of this process and its children, sampled every 10 ms (where /proc exists; else 0)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.mb = device, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.mb = max(self.mb, _rss_mb(_process_tree()))

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif Path("/proc/self/statm").exists():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._thread.is_alive():
            self._stop.set()
            self._thread.join()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, run: Callable[[], int], repeats: int = 5, warmup: int = 1,
            device: torch.device = CPU, note: str = "") -> Row:
    """Call ``run`` (which returns how many images it processed) ``warmup`` times, then ``repeats`` times
    timed; the row gives the median images per second and the peak memory over the timed calls."""
    for _ in range(warmup):
        run()
    rates = []
    with PeakMemory(device) as peak:
        for _ in range(repeats):
            _synchronize(device)
            started = time.perf_counter()
            images = run()
            _synchronize(device)
            rates.append(images / (time.perf_counter() - started))
    return Row(name, statistics.median(rates), peak.mb, note)


def machine() -> str:
    """The machine in one line: CPU model, cores, the CPU's vector flags, GPU, torch version."""
    cpu, flags = platform.processor() or platform.machine(), set()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    vector = sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx2", "avx512_vnni")))
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {len(os.sched_getaffinity(0))} cores ({' '.join(vector) or 'no AVX flags'}), {gpu}, "
            f"torch {torch.__version__}")


def table(title: str, rows: list[Row]) -> str:
    """A Markdown table of ``rows``; the ratio column divides each row's images/s by the first row's."""
    base = rows[0].images_per_s
    lines = [f"### {title}", "", f"Machine: {machine()}", "",
             "| configuration | images/s | vs baseline | peak memory (MB) | note |",
             "| --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        lines.append(f"| {row.name} | {row.images_per_s:.1f} | {row.images_per_s / base:.2f}x | "
                     f"{row.peak_mb:.0f} | {row.note} |")
    return "\n".join(lines)


def fgvc_sized_dataset(out: str | Path, images: int, classes: int = 4, seed: int = 0) -> Path:
    """A synthetic FGVC-Aircraft of ``images`` JPEGs the size of the real ones (1000-1600 px wide, 3:2, with
    the banner, quality 90) under ``out``; kept and reused when ``out`` already holds it."""
    from fgvc.data.synthetic import write_synthetic_dataset

    per_class = max(3, images // classes)
    wanted = f"per_class={per_class} size=160x140 seed={seed} width_range={FGVC_WIDTHS}"
    if wanted not in (synthetic_info(out) or ""):
        write_synthetic_dataset(out, classes, per_class, seed=seed, width_range=FGVC_WIDTHS)
    return Path(out)
