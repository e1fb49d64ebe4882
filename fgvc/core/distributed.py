"""Several processes, one run: rank, world size, the device of each rank, and evaluation gathered across ranks.

    torchrun --nproc_per_node=4 -m fgvc train --preset b4                  # one machine, 4 GPUs
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m fgvc train ...

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``init`` joins the process group it
prepared (NCCL on GPUs, gloo on CPUs) and pins each process to ``cuda:LOCAL_RANK``. A plain
process is rank 0 of a world of 1, and nothing here changes what it does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from fgvc.core.errors import ConfigError, FgvcError


@dataclass(frozen=True)
class Dist:
    """This process's place among the processes of a run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def primary(self) -> bool:
        """Rank 0 alone writes the run folder, the logs and the checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


SINGLE = Dist()  # a plain process: rank 0 of a world of 1


def from_environment() -> Dist:
    """The ranks torchrun put in the environment (rank 0 of 1 without torchrun)."""
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def init(device: str) -> Dist:
    """Join torchrun's process group, once: NCCL when this rank runs on a GPU (pinned to ``cuda:LOCAL_RANK``,
    so ``cuda`` means this rank's GPU from here on), gloo otherwise."""
    ranks = from_environment()
    if ranks.enabled and not dist.is_initialized():
        on_gpu = device in ("auto", "cuda") and torch.cuda.is_available()
        if on_gpu:
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if on_gpu else "gloo")
    return ranks


def broadcast(value: Any, ranks: Dist) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not ranks.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean(value: torch.Tensor, ranks: Dist) -> torch.Tensor:
    """The mean of ``value`` over the ranks, the same on each (so every rank takes the same decision)."""
    if ranks.enabled:
        value = value.clone()
        dist.all_reduce(value)
        value /= ranks.world_size
    return value


def sync_buffers(model: torch.nn.Module, ranks: Dist) -> None:
    """Rank 0's buffers (batch-norm statistics) on every rank: after the last training step each rank's
    statistics moved with its own batch, and evaluation must use the ones the checkpoint keeps."""
    if ranks.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank`` on, in order: the evaluation shard of one rank. Unlike
    ``DistributedSampler`` it pads nothing, so no image is counted twice."""

    def __init__(self, length: int, ranks: Dist) -> None:
        self.indices = list(range(ranks.rank, length, ranks.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def gather_shards(scores: np.ndarray, targets: np.ndarray, ranks: Dist) -> tuple[np.ndarray, np.ndarray]:
    """Each rank's ``ShardSampler`` results put back into dataset order, on every rank."""
    if not ranks.enabled:
        return scores, targets
    shards: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(shards, (scores, targets))
    length = sum(len(t) for _, t in shards)
    all_scores = np.empty((length, scores.shape[1]), dtype=scores.dtype)
    all_targets = np.empty(length, dtype=targets.dtype)
    for rank, (shard_scores, shard_targets) in enumerate(shards):
        all_scores[rank::ranks.world_size] = shard_scores
        all_targets[rank::ranks.world_size] = shard_targets
    return all_scores, all_targets


def wrap(model: torch.nn.Module, device: torch.device, sync_bn: bool = False) -> torch.nn.Module:
    """``model`` in DistributedDataParallel on ``device``, with batch norm synchronised across GPUs if asked."""
    on_gpu = device.type == "cuda"
    if sync_bn:
        if not on_gpu:
            raise ConfigError("--sync-bn needs GPUs (PyTorch's SyncBatchNorm has no CPU kernel): leave it out "
                              "on the CPU")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None)


def shutdown() -> None:
    """Leave the process group (at the end of a run under torchrun)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def on_primary(action: Callable[[], Any], ranks: Dist) -> Any:
    """Run ``action`` on rank 0 alone and give every rank its result; its ``FgvcError`` stops every rank
    with the same message."""
    if not ranks.enabled:
        return action()
    outcome: Any = None
    if ranks.primary:
        try:
            outcome = action()
        except FgvcError as err:
            broadcast(FgvcError(str(err)), ranks)
            raise
    outcome = broadcast(outcome, ranks)
    if isinstance(outcome, FgvcError):
        raise outcome
    return outcome
