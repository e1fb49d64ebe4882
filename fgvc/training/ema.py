"""An exponential moving average (EMA) of the weights, kept by PyTorch's own ``AveragedModel``.

    ema = ema_model(model, decay=0.99)        # a copy of the plain model (not a DDP or compiled wrapper)
    ema.update_parameters(model)              # after every optimizer step
    ema.module                                # the averaged network, evaluated and saved like the model

After each optimizer step every averaged tensor moves a share ``1 - decay`` of the way to the
trained one (``torch.optim.swa_utils.get_ema_multi_avg_fn``); the first update copies the model.

Batch norm: ``use_buffers=True`` averages the buffers (each layer's running mean and variance)
with the same decay as the weights, so the averaged network normalises with statistics that
moved along with its own weights and is ready to evaluate at any step, without the pass over
the training data (``update_bn``) that plain weight averaging needs. (Without it, AveragedModel
would copy the raw model's statistics, which belong to other weights.)
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA of ``model``'s weights and batch-norm statistics with ``decay`` per update."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
