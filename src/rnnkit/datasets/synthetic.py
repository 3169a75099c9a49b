"""Generated sequence tasks with known baselines, used to show that a model learns long-range memory."""

from __future__ import annotations

import torch
from torch import Tensor

#: MSE of always predicting 1, the mean target: Var(U1 + U2) for two U(0, 1) values = 1/6.
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(
    num_sequences: int, steps: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997, modern form of Le et al. 2015 / Arjovsky 2016).

    Each step carries two channels: a value drawn from U(0, 1) and a marker that is 1 at exactly two
    steps, one in each half of the sequence. The target is the sum of the two marked values, so the
    model must remember a value across up to ``steps`` time steps. Predicting the mean scores
    ``ADDING_BASELINE_MSE`` (about 0.167).

    Args:
        num_sequences: batch size to generate.
        steps: sequence length (at least 2).
        generator: optional ``torch.Generator`` for reproducible data.

    Returns:
        ``(inputs, targets)`` of shapes ``(num_sequences, steps, 2)`` and ``(num_sequences, 1)``.

    >>> x, y = adding_problem(4, 10, generator=torch.Generator().manual_seed(0))
    >>> x.shape, y.shape, x[..., 1].sum(dim=1).tolist()
    (torch.Size([4, 10, 2]), torch.Size([4, 1]), [2.0, 2.0, 2.0, 2.0])
    """
    if steps < 2:
        raise ValueError(f"the adding problem needs steps >= 2, got {steps}")
    values = torch.rand(num_sequences, steps, generator=generator)
    half = steps // 2
    first = torch.randint(0, half, (num_sequences,), generator=generator)
    second = torch.randint(half, steps, (num_sequences,), generator=generator)
    markers = torch.zeros(num_sequences, steps)
    rows = torch.arange(num_sequences)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = (values * markers).sum(dim=1, keepdim=True)
    return torch.stack([values, markers], dim=2), targets
