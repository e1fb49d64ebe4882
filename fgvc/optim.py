"""The optimizer and learning-rate schedule factories (timm's ``optim`` and ``scheduler``, in a page).

    optimizer = build_optimizer(model, cfg)                        # SGD or AdamW, no decay on norms and biases
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)   # per-step warmup, then cosine to 0
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fgvc.config import TrainConfig
from fgvc.model import model_spec


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov) or AdamW; norms and biases get no weight decay, and with ``head_lr_scale``
    the classifier head (new for the dataset's classes) trains at that multiple of ``lr``."""
    head_prefix = model_spec(cfg.arch).head + "."
    by_kind: dict[tuple[bool, bool], list[nn.Parameter]] = {}  # (in the head, decays): backbone first, decay first
    for name, param in model.named_parameters():
        if param.requires_grad:
            in_head = cfg.head_lr_scale != 1 and name.startswith(head_prefix)
            by_kind.setdefault((in_head, param.ndim <= 1), []).append(param)
    groups = [{"params": params, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
               "lr": cfg.lr * (cfg.head_lr_scale if in_head else 1.0)}
              for (in_head, no_decay), params in sorted(by_kind.items())]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step warmup + cosine schedule over the whole run (``steps_per_epoch`` optimizer steps an epoch)."""
    warmup, total = cfg.warmup_epochs * steps_per_epoch, cfg.epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total))
