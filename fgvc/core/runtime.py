"""The execution settings shared by training and inference: device, autocast precision, memory layout.

    runtime = Runtime.create(device="auto", precision="auto", channels_last=True)
    model = runtime.prepare(model)
    with runtime.autocast():
        logits = model(runtime.inputs(images))

``auto`` picks CUDA, then MPS, then the CPU; and bf16 autocast where the GPU has it, fp16 (with a
GradScaler while training) on older GPUs, fp32 elsewhere, except for training on a CPU that computes bf16
natively (AVX512-BF16 or AMX): there bf16 autocast made B0's training step 1.46x faster, while a CPU without it
(AVX2 only) emulates bf16 and ran Lite0's step at 0.54x of fp32 (BENCHMARKS.md). Inference on a CPU stays fp32,
so that ``fgvc predict``, ``evaluate`` and ONNX give the same numbers on any CPU. On CUDA, ``create`` also lets
cuDNN pick the fastest convolution algorithms for the fixed input size (``cudnn.benchmark``) and lets fp32 matrix
products use TF32 (``BENCHMARKS.md`` gives the measured reasons).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from fgvc.core.distributed import SINGLE, Dist
from fgvc.core.errors import DeviceError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA, then MPS, then CPU; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(name, False):
        raise DeviceError(f"device={name!r} is not available on this machine: expected 'auto' or 'cpu'")
    return torch.device(name)


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX512-BF16 or AMX), as oneDNN, which runs bf16 convolutions on
    CPUs, sees it; elsewhere PyTorch emulates bf16 through fp32, slower than fp32 itself."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(name: str, device: torch.device, training: bool = False) -> torch.dtype | None:
    """The autocast dtype for ``name`` on ``device``; ``None`` means plain fp32. ``auto`` on a CPU: bf16 for
    ``training`` on a CPU that computes it natively, else fp32."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if training and device.type == "cpu" and cpu_computes_bf16() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs."""

    device: torch.device
    dtype: torch.dtype | None = None  # autocast dtype; None: fp32
    channels_last: bool = False
    ranks: Dist = SINGLE  # this process among those of a torchrun run

    @classmethod
    def create(cls, device: str = "auto", precision: str = "auto", channels_last: bool = False,
               ranks: Dist = SINGLE, training: bool = False) -> Runtime:
        """Resolve ``auto`` device and precision names for this machine, for ``training`` or inference (under
        torchrun, ``cuda`` is this rank's GPU)."""
        torch_device = resolve_device(device)
        if torch_device.type == "cuda":
            torch_device = torch.device("cuda", torch.cuda.current_device())
            torch.backends.cudnn.benchmark = True  # every batch has the same shape: tune once, reuse
            torch.backends.cuda.matmul.fp32_precision = "tf32"  # fp32 layers under autocast and --precision fp32
            torch.backends.cudnn.conv.fp32_precision = "tf32"
        return cls(torch_device, resolve_precision(precision, torch_device, training), channels_last, ranks)

    @property
    def precision_name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to ``dtype`` on ``device``, or nothing for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` on the device, in the memory layout."""
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model.to(self.device)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of images on the device, in the memory layout."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, active only for fp16 (bf16 and fp32 need none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
