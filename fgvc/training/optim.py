"""The optimizer and learning-rate schedule factories (timm's ``optim`` and ``scheduler``, in a page).

    optimizer = build_optimizer(model, cfg)                        # SGD or AdamW, no decay on norms and biases
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)   # per-step warmup, then cosine to 0

With ``layer_decay`` below 1 each block of the backbone trains at that multiple of the rate of the block above
it (timm's ``param_groups_layer_decay``); with ``head_only_epochs`` the backbone waits at rate 0 while the new
head learns alone (a linear probe, then fine-tuning: Kumar et al., 2022), and its warmup and cosine follow.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from fgvc.core.config import TrainConfig
from fgvc.models.backbones import model_spec

# The block a parameter belongs to: an MBConv block of efficientnet_pytorch and its Lite fork (`_blocks.3.`), a
# block of a torchvision stage (`features.2.1.`), a torchvision stem or head stage (`features.0.`), or else the
# module it hangs from (`_conv_stem.`, `_bn0.`, `_conv_head.`).
_BLOCK = re.compile(r"(_blocks\.\d+|features\.\d+\.\d+|features\.\d+|[^.]+)\.")
# Where PyTorch (>= 2.4) has fused SGD and AdamW kernels: the same update in one kernel for all parameters instead of
# a loop over them (PyTorch's default on a CPU).
FUSED_DEVICES = ("cpu", "cuda")


def layer_scales(model: nn.Module, head: str, decay: float) -> dict[str, float]:
    """Each parameter's learning-rate multiple: ``decay`` to the power of the number of blocks between its block and
    the head (the head and its parameters: 1), blocks counted in the order the model registers them."""
    blocks: dict[str, int] = {}
    for name, _ in model.named_parameters():
        if not name.startswith(head + "."):
            blocks.setdefault(_BLOCK.match(name).group(1), len(blocks))
    return {name: 1.0 if name.startswith(head + ".") else decay ** (len(blocks) - blocks[_BLOCK.match(name).group(1)])
            for name, _ in model.named_parameters()}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov) or AdamW; norms and biases get no weight decay, the classifier head (new for the
    dataset's classes) trains at ``head_lr_scale`` x ``lr`` and the backbone's blocks at ``lr`` times their
    ``layer_scales``. The head has groups of its own (``"head": True``) when its rate or schedule differs. Its step
    is fused where the parameters' device has the kernels (``FUSED_DEVICES``)."""
    head = model_spec(cfg.arch).head
    scales = layer_scales(model, head, cfg.layer_decay)
    apart = cfg.head_lr_scale != 1 or cfg.head_only_epochs > 0
    by_kind: dict[tuple[bool, float, bool], list[nn.Parameter]] = {}  # (in the head, lr, no decay) -> parameters
    for name, param in model.named_parameters():
        if param.requires_grad:
            in_head = apart and name.startswith(head + ".")
            lr = cfg.lr * (cfg.head_lr_scale if in_head else scales[name])
            by_kind.setdefault((in_head, lr, param.ndim <= 1), []).append(param)
    groups = [{"params": params, "weight_decay": 0.0 if no_decay else cfg.weight_decay, "lr": lr, "head": in_head}
              for (in_head, lr, no_decay), params in sorted(by_kind.items(), key=lambda kind: kind[0])]
    fused = all(param.device.type in FUSED_DEVICES for group in groups for param in group["params"]) or None
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, fused=fused)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step warmup + cosine schedule over the whole run (``steps_per_epoch`` optimizer steps an epoch); with
    ``head_only_epochs`` the backbone's groups wait at 0 for those epochs, then warm up and decay over the rest."""
    warmup, total = cfg.warmup_epochs * steps_per_epoch, cfg.epochs * steps_per_epoch
    wait = cfg.head_only_epochs * steps_per_epoch

    def head(step: int) -> float:
        return lr_factor(step, warmup, total)

    def backbone(step: int) -> float:
        return 0.0 if step < wait else lr_factor(step - wait, warmup, total - wait)

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [head if group.get("head") else backbone for group in optimizer.param_groups])


def follow_schedule(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set each group's learning rate to its schedule's at the position ``scheduler`` holds (after a resume or a
    new length)."""
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(scheduler.last_epoch)
