"""An exponential moving average of the weights, evaluated and saved in place of the last weights.

The average after update ``n`` (``n = 1`` copies the weights) is

    decay_n = min(decay, (1 + n) / (10 + n))
    W_avg  <- decay_n * W_avg + (1 - decay_n) * W

The ramp (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``) lets the average forget the random
initial weights within a few hundred steps even at ``decay = 0.999``; without it a short run would report
a blend dominated by its first steps. Training itself is untouched: the optimizer only ever sees the live
weights, so a run with an average follows exactly the trajectory of one without.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel


def ema_decay_at(decay: float, updates_before: int) -> float:
    """The decay applied at the update that follows ``updates_before`` earlier ones (the ramp above).

    >>> ema_decay_at(0.999, 1), ema_decay_at(0.999, 10_000)
    (0.18181818181818182, 0.999)
    """
    return min(decay, (1 + updates_before) / (10 + updates_before))


def exponential_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """torch's ``AveragedModel`` of ``model`` updated by :func:`ema_decay_at` (buffers follow the model)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates_before: torch.Tensor) -> None:
        weight = 1 - ema_decay_at(decay, int(updates_before))
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:  # integer parameters cannot be averaged; they follow the model
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(theirs)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=False)
