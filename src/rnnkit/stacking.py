"""Composition of time loops into layers: bidirectional merges and stacking with dropout.

``run_stack`` is the readable reference for a whole multi-layer, possibly bidirectional network:
each layer runs ``loop.recur`` forwards (and backwards), merges the two directions and feeds the
next layer, with dropout between layers as torch.nn applies it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.cells.base import Params, RecurrentCell, State
from rnnkit.loop import Regularization, recur

Merge = Callable[[Tensor, Tensor], Tensor]

#: How the forward and backward outputs of a bidirectional layer are combined.
#: ``concat`` doubles the feature size (torch.nn's behaviour); the others keep ``hidden_size``.
MERGE_MODES: dict[str, Merge] = {
    "concat": lambda forward, backward: torch.cat([forward, backward], dim=-1),
    "sum": lambda forward, backward: forward + backward,
    "mean": lambda forward, backward: (forward + backward) * 0.5,
    "mul": lambda forward, backward: forward * backward,
}


def merged_size(hidden_size: int, bidirectional: bool, merge: str) -> int:
    """Feature size of a layer's output."""
    return 2 * hidden_size if bidirectional and merge == "concat" else hidden_size


def merge_halves(output: Tensor, merge: str) -> Tensor:
    """Apply a merge mode to an output whose last dimension is ``[forward | backward]``."""
    if merge == "concat":
        return output
    forward, backward = output.chunk(2, dim=-1)
    return MERGE_MODES[merge](forward, backward)


def run_stack(
    cell: type[RecurrentCell],
    x: Tensor,
    state: State,
    params: list[Params],
    *,
    num_layers: int,
    bidirectional: bool,
    merge: str = "concat",
    dropout: float = 0.0,
    training: bool = False,
    lengths: Tensor | None = None,
    options: dict | None = None,
    recur: Callable = recur,
    regularization: Regularization | None = None,
) -> tuple[Tensor, State]:
    """Run a stacked (bi)directional network over time-major ``x``.

    Args:
        params: the cell's parameters by name, one mapping per layer and direction, in torch.nn's
            order (layer 0 forward, layer 0 reverse, layer 1 forward, ...).
        state: initial states, each ``(num_layers * num_directions, batch, hidden_size)``.
        recur: the single-direction time loop; ``rnnkit.loop.recur`` or a faster drop-in for it.
        regularization: recurrent dropout and zoneout for every layer and direction (``loop.recur`` only).

    Returns:
        ``(output, final_state)`` with the final states stacked as in ``state``.
    """
    directions = 2 if bidirectional else 1
    finals: list[list[Tensor]] = [[] for _ in state]
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            initial = tuple(s[index] for s in state)
            extra = {"regularization": regularization} if regularization is not None else {}
            output, final = recur(
                cell, x, initial, params[index], lengths=lengths, reverse=direction == 1, options=options, **extra
            )
            outputs.append(output)
            for collected, part in zip(finals, final):
                collected.append(part)
        x = MERGE_MODES[merge](*outputs) if bidirectional else outputs[0]
        if dropout > 0 and training and layer < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    return x, tuple(torch.stack(parts) for parts in finals)
