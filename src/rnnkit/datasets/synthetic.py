"""Generated sequence tasks with known baselines, used to show that a model learns long-range memory."""

from __future__ import annotations

import math

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


#: Copy memory: symbols 1-8 to remember, 0 is the blank and 9 the delimiter that asks for recall.
COPY_BLANK, COPY_DELIMITER, COPY_SYMBOLS, COPY_LENGTH = 0, 9, 8, 10


def copy_memory_baseline(steps: int) -> float:
    """Cross-entropy per step of the best memoryless strategy: blanks, then uniform guesses (10 ln 8/(T+20))."""
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (steps + 2 * COPY_LENGTH)


def copy_memory(
    num_sequences: int, steps: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The copy-memory task (Hochreiter & Schmidhuber 1997; in the form of Arjovsky et al. 2016).

    The input is 10 symbols drawn from {1..8}, then ``steps - 1`` blanks (0), the delimiter (9) and
    10 more blanks: ``steps + 20`` tokens. The target is ``steps + 10`` blanks followed by the 10
    symbols: after a gap of ``steps`` the model must reproduce what it saw first. Predicting blanks and
    then guessing uniformly costs ``copy_memory_baseline(steps)`` = 10 ln 8 / (T + 20) nats per step.

    Returns:
        ``(inputs, targets)``, both ``(num_sequences, steps + 20)`` int64 token ids in ``[0, 9]``.

    >>> x, y = copy_memory(1, 5, generator=torch.Generator().manual_seed(0))
    >>> x.shape, bool((y[0, -10:] == x[0, :10]).all()), int(x[0, 14])
    (torch.Size([1, 25]), True, 9)
    """
    if steps < 1:
        raise ValueError(f"copy memory needs steps >= 1, got {steps}")
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (num_sequences, COPY_LENGTH), generator=generator)
    total = steps + 2 * COPY_LENGTH
    inputs = torch.full((num_sequences, total), COPY_BLANK, dtype=torch.int64)
    inputs[:, :COPY_LENGTH] = symbols
    inputs[:, steps + COPY_LENGTH - 1] = COPY_DELIMITER
    targets = torch.full((num_sequences, total), COPY_BLANK, dtype=torch.int64)
    targets[:, -COPY_LENGTH:] = symbols
    return inputs, targets


#: Temporal order: classes are the orders XX, XY, YX, YY of the two relevant symbols.
ORDER_CLASSES, ORDER_SYMBOLS = 4, 6
ORDER_BASELINE_ACCURACY = 1.0 / ORDER_CLASSES


def temporal_order(
    num_sequences: int, steps: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The temporal-order task (Hochreiter & Schmidhuber 1997, experiment 6a; used by Pascanu et al. 2013).

    A sequence of ``steps`` one-hot symbols: distractors from {a, b, c, d} everywhere except two
    positions, one in ``[T/10, 2T/10)`` and one in ``[5T/10, 6T/10)``, which hold X or Y. The class is
    the order of the two (XX, XY, YX, YY), so the first relevant symbol must be remembered for about
    ``0.4 T`` steps past many distractors. Guessing scores ``ORDER_BASELINE_ACCURACY`` = 0.25.

    Returns:
        ``(inputs, targets)``: ``(num_sequences, steps, 6)`` float one-hot (a, b, c, d, X, Y) and
        ``(num_sequences,)`` int64 classes ``2 * first + second`` with X = 0, Y = 1.

    >>> x, y = temporal_order(3, 20, generator=torch.Generator().manual_seed(0))
    >>> x.shape, y.shape, bool((x.sum(-1) == 1).all())
    (torch.Size([3, 20, 6]), torch.Size([3]), True)
    """
    if steps < 10:
        raise ValueError(f"temporal order needs steps >= 10, got {steps}")
    symbols = torch.randint(0, 4, (num_sequences, steps), generator=generator)
    rows = torch.arange(num_sequences)
    first_at = torch.randint(steps // 10, max(2 * steps // 10, steps // 10 + 1), (num_sequences,), generator=generator)
    second_at = torch.randint(5 * steps // 10, max(6 * steps // 10, 5 * steps // 10 + 1), (num_sequences,),
                              generator=generator)
    first = torch.randint(0, 2, (num_sequences,), generator=generator)
    second = torch.randint(0, 2, (num_sequences,), generator=generator)
    symbols[rows, first_at] = 4 + first
    symbols[rows, second_at] = 4 + second
    return torch.nn.functional.one_hot(symbols, ORDER_SYMBOLS).float(), 2 * first + second
