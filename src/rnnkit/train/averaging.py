"""An exponential moving average of the weights, evaluated and saved in place of the last weights.

After ``n`` optimizer steps with weights ``W_1 ... W_n`` the average is

    W_avg = sum_k decay^(n-k) W_k / sum_k decay^(n-k)

the bias-corrected average Adam uses for its moments: each step weighs ``decay`` times the one after it, so
the average covers about the last ``1 / (1 - decay)`` steps, and it never leans on the random initial
weights the way an average started from them would in a short run. As a recursion it is a lerp towards
the new weights by ``(1 - decay) / (1 - decay^n)`` (1 at the first step: a copy). Training itself is
untouched: the optimizer only ever sees the live weights, so a run with an average follows exactly the
trajectory of one without.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel


def ema_weight(decay: float, update: int) -> float:
    """How far update number ``update`` (1, 2, ...) moves the average towards the new weights.

    >>> ema_weight(0.9, 1), round(ema_weight(0.9, 2), 4), round(ema_weight(0.9, 10_000), 4)
    (1.0, 0.5263, 0.1)
    """
    return (1 - decay) / (1 - decay**update)


def exponential_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """torch's ``AveragedModel`` of ``model`` with the bias-corrected average above (buffers follow the model)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates_before: torch.Tensor) -> None:
        weight = ema_weight(decay, int(updates_before) + 1)
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:  # integer parameters cannot be averaged; they follow the model
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(theirs)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=False)
