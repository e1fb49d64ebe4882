"""Does a training step fit in memory? A rough estimate before training, and one message when memory runs out.

    check_fits(cfg, runtime)                       # before training: NotEnoughMemoryError, naming what fits
    with explain_out_of_memory(cfg, run_dir):      # during training: an out-of-memory error, the same message
        ...

Without them, B4 at 448 px, batch 32, fp32 on a 24 GiB machine without a GPU is ended by the kernel's OOM
killer at 23.6 GB resident, and the shell says only ``Killed``; a GPU of 8-16 GB raises CUDA's out-of-memory
error. The estimate of one training step (``step_bytes``), a rough bound from above:

    batch x img_size^2 x SAVED_BYTES[arch][fp32 or half-precision autocast] x PEAK_PER_SAVED
    + PARAMS[arch] x 4 bytes x (weights + gradients + optimizer state + EMA)

``SAVED_BYTES`` is what autograd keeps for the backward pass per pixel of one image (counted with
``torch.autograd.graph.saved_tensors_hooks`` over a forward pass at 128 px, batch 2, random weights). The step's
peak needs more: the gradients being computed, the allocator's slack. ``PEAK_PER_SAVED`` relates the two: the
peak resident memory an SGD step adds per image pixel, measured here on the CPU (PyTorch 2.14, a fresh process
each), over the saved bytes came to 1.3-1.4 from batch 2 to 8 at 128 px (B0 fp32, Lite0 bf16) and 1.1-2.1 from
the noisier batch 2 to 4 (B0, B1, B3, B4, Lite0, torchvision's B0 and B4, fp32 and bf16); 1.7 stays above all
but one. B4 at 448 px, batch 32, fp32 comes to about 50 GiB, which the OOM killer's 23.6 GB agrees with. A GPU
keeps the same tensors; free memory is what ``free_bytes`` reads.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import torch

from fgvc.core.config import TrainConfig
from fgvc.core.errors import NotEnoughMemoryError
from fgvc.core.presets import PRESETS
from fgvc.core.runtime import Runtime, resolve_device, resolve_precision

# arch: bytes autograd keeps for the backward pass per pixel of one image, (fp32, under bf16 or fp16 autocast)
SAVED_BYTES: dict[str, tuple[int, int]] = {
    "efficientnet-b0": (1914, 1204),
    "efficientnet-b1": (2669, 1735),
    "efficientnet-b2": (2813, 1880),
    "efficientnet-b3": (3711, 2513),
    "efficientnet-b4": (4929, 3542),
    "efficientnet-b5": (6779, 5128),
    "efficientnet-b6": (8690, 6842),
    "efficientnet-b7": (11669, 9742),
    "efficientnet-lite0": (1725, 1071),
    "efficientnet-lite1": (2242, 1376),
    "efficientnet-lite2": (2361, 1478),
    "tv_efficientnet_b0": (1787, 1140),
    "tv_efficientnet_b1": (2484, 1643),
    "tv_efficientnet_b2": (2607, 1777),
    "tv_efficientnet_b3": (3444, 2379),
    "tv_efficientnet_b4": (4546, 3350),
    "tv_efficientnet_b5": (6256, 4866),
    "tv_efficientnet_b6": (8003, 6498),
    "tv_efficientnet_b7": (10732, 9274),
}
# arch: millions of parameters (with a 100-class head; ImageNet's 1000-class head adds at most 2.6 M)
PARAMS: dict[str, float] = {
    "efficientnet-b0": 4.1,
    "efficientnet-b1": 6.6,
    "efficientnet-b2": 7.8,
    "efficientnet-b3": 10.8,
    "efficientnet-b4": 17.7,
    "efficientnet-b5": 28.5,
    "efficientnet-b6": 41.0,
    "efficientnet-b7": 64.0,
    "efficientnet-lite0": 3.5,
    "efficientnet-lite1": 4.3,
    "efficientnet-lite2": 4.9,
    "tv_efficientnet_b0": 4.1,
    "tv_efficientnet_b1": 6.6,
    "tv_efficientnet_b2": 7.8,
    "tv_efficientnet_b3": 10.8,
    "tv_efficientnet_b4": 17.7,
    "tv_efficientnet_b5": 28.5,
    "tv_efficientnet_b6": 41.0,
    "tv_efficientnet_b7": 64.0,
}
PEAK_PER_SAVED = 1.7  # a training step's peak per byte autograd saves (measured: 1.1-2.1, see above)
OPTIMIZER_STATES = {"sgd": 1, "adamw": 2}  # tensors the optimizer keeps per parameter (momentum; two moments)
CPU_ALLOCATION_FAILURE = "DefaultCPUAllocator: can't allocate memory"  # the CPU's out of memory: a RuntimeError
GIB = 2**30


def step_bytes(cfg: TrainConfig, half: bool, batch_size: int | None = None) -> float:
    """Bytes one training step of ``cfg`` needs at ``batch_size`` (default: its own), ``half``: under bf16 or fp16
    autocast; a rough bound from above (see the module's docstring)."""
    activations = SAVED_BYTES[cfg.arch][half] * PEAK_PER_SAVED * cfg.img_size**2 * (batch_size or cfg.batch_size)
    copies = 2 + OPTIMIZER_STATES[cfg.optimizer] + (cfg.ema_decay > 0)  # weights, gradients, optimizer, EMA
    return activations + PARAMS[cfg.arch] * 1e6 * 4 * copies


def free_bytes(device: torch.device) -> int | None:
    """Memory this process may still take on ``device``: CUDA's free memory, or the CPU's ``MemAvailable``
    (``/proc/meminfo``) within the cgroup's limit; None where unknown (MPS, systems without ``/proc``)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    free = next(int(line.split()[1]) * 1024 for line in meminfo.splitlines() if line.startswith("MemAvailable:"))
    for limit, usage in (("memory.max", "memory.current"),  # cgroup v2, then v1: a container's own limit
                         ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        with contextlib.suppress(OSError, ValueError):  # no such file; v2's limit "max"
            cgroup = Path("/sys/fs/cgroup")
            free = min(free, int((cgroup / limit).read_text()) - int((cgroup / usage).read_text()))
    return free


def batches(cfg: TrainConfig) -> list[int]:
    """The batch sizes that keep the global batch of one process (batch_size x accum_steps): its divisors."""
    per_process = cfg.batch_size * cfg.accum_steps
    return [b for b in range(1, per_process + 1) if per_process % b == 0]


def largest_batch(cfg: TrainConfig, half: bool, free: float) -> int:
    """The largest of ``batches(cfg)`` whose step fits in ``free`` bytes by the estimate; 0 when none does."""
    return max((b for b in batches(cfg) if step_bytes(cfg, half, b) <= free), default=0)


def advice(cfg: TrainConfig, device: torch.device, batch_size: int) -> str:
    """What to run instead: ``batch_size`` with the accumulation steps that keep the global batch (when it is
    at least 1), or a smaller image, and on the CPU the ``cpu`` preset instead of one made for a GPU."""
    per_process = cfg.batch_size * cfg.accum_steps
    options = ([f"--batch-size {batch_size} --accum-steps {per_process // batch_size} (the same {per_process} images "
                f"per optimizer step)"] if batch_size >= 1 else [f"a smaller --img-size than {cfg.img_size}"])
    if device.type == "cpu" and PRESETS.get(cfg.preset, {}).get("device") != "cpu":  # a preset made for a GPU
        options.append("--preset cpu (the recipe measured for CPUs)")
    return "try " + ", or ".join(options)


def check_fits(cfg: TrainConfig, runtime: Runtime) -> None:
    """Refuse ``cfg`` with ``NotEnoughMemoryError`` when one training step needs more memory than
    ``runtime.device`` has free, by ``step_bytes``'s estimate; the message offers the largest batch that fits."""
    free, half = free_bytes(runtime.device), runtime.dtype is not None
    if free is None or step_bytes(cfg, half) <= free:
        return
    fits = largest_batch(cfg, half, free)
    then = f", about {step_bytes(cfg, half, fits) / GIB:.1f} GiB" if fits else ""
    raise NotEnoughMemoryError(
        f"{cfg.arch} at {cfg.img_size} px, batch {cfg.batch_size}, {runtime.precision_name} needs about "
        f"{step_bytes(cfg, half) / GIB:.1f} GiB for a training step (a rough estimate) and {runtime.device} has "
        f"{free / GIB:.1f} GiB free: {advice(cfg, runtime.device, fits)}{then}")


def is_out_of_memory(err: BaseException) -> bool:
    """``torch.OutOfMemoryError`` (CUDA), Python's ``MemoryError``, or the CPU allocator's failure (a plain
    ``RuntimeError`` that torch raises, recognised by its message)."""
    return isinstance(err, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(err, RuntimeError) and CPU_ALLOCATION_FAILURE in str(err))


@contextlib.contextmanager
def explain_out_of_memory(cfg: TrainConfig, run_dir: Path) -> Iterator[None]:
    """Turn an out-of-memory error inside the block into ``NotEnoughMemoryError``: the batch, the image size, the
    precision, what to try (half the batch, the global batch kept) and what ``last.pt`` keeps. Any other error
    passes unchanged."""
    try:
        yield
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            raise
        device = resolve_device(cfg.device)
        precision = Runtime(device, resolve_precision(cfg.precision, device, training=True)).precision_name
        half_batch = max((b for b in batches(cfg) if b <= cfg.batch_size // 2), default=0)
        last = run_dir / "last.pt"
        kept = (f"{last} keeps the last finished epoch" if last.is_file()
                else "no epoch had finished, so there is no checkpoint")
        raise NotEnoughMemoryError(
            f"out of memory on {device} training {cfg.arch} at batch {cfg.batch_size}, {cfg.img_size} px, "
            f"{precision} ({textwrap.shorten(str(err), 160)}): start a new run and "
            f"{advice(cfg, device, half_batch)}; {kept}") from err
