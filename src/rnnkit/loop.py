"""The time loop: the only reference code in rnnkit that iterates over time steps.

``recur`` runs one cell over a whole sequence in one direction; ``scan`` is its per-step part, which
the fused engine replaces. The input projection of all steps
is a single matrix multiply (it does not depend on the state); only ``W_hh h`` and the gate math run
per step. Variable-length batches are handled by masking: a sequence's state stops changing after its
last valid step and its outputs there are zero. The reverse direction reverses each sequence within
its own length, so it starts at that sequence's last valid element.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol
from functools import partial

import torch
from torch import Tensor

from rnnkit.cells.base import Params, RecurrentCell, State


class StepObserver(Protocol):
    """Receives what the loop computes while :func:`observing` is active (``rnnkit.diagnostics``)."""

    def layer(self, module) -> None:
        """A recurrent layer (an ``nn.Module``) starts its forward pass."""

    def begin(self, lengths: Tensor | None, reverse: bool) -> None:
        """A single-direction pass over a sequence starts."""

    def step(self, state: State) -> None:
        """The state after a step: the very tensors the next step reads."""


# A plain module attribute rather than a ContextVar: torch.compile traces through reading it (the layer's
# forward asks on every call), and the diagnostics that set it run in one thread.
_observer: StepObserver | None = None


@contextmanager
def observing(observer: StepObserver) -> Iterator[StepObserver]:
    """Within this block every recurrent layer runs this readable loop step by step and reports each
    pass and each step's state to ``observer`` (the per-step hook the gradient-flow diagnostics use)."""
    global _observer
    previous, _observer = _observer, observer
    try:
        yield observer
    finally:
        _observer = previous


def active_observer() -> StepObserver | None:
    return _observer


@dataclass(frozen=True)
class Regularization:
    """The recurrent regularisers of a layer in training (``RecurrentLayer.regularization``).

    ``recurrent_dropout``: variational dropout on the state the recurrent weights read (Gal &
    Ghahramani 2016): one mask per sequence, the same at every step, scaled by ``1 / (1 - p)``.
    ``zoneout``: each unit of the state keeps its previous value with probability ``p`` at each step
    (Krueger et al. 2016); outside training the state moves to its expectation,
    ``p * previous + (1 - p) * new``.
    """

    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    training: bool = False


def valid_mask(lengths: Tensor, steps: int, device: torch.device) -> Tensor:
    """``(steps, batch, 1)`` boolean mask, true where ``t < lengths[b]``."""
    time = torch.arange(steps).unsqueeze(1)
    return (time < lengths.unsqueeze(0)).unsqueeze(2).to(device)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse time-major ``x`` within each sequence's length; padding stays where it is."""
    if lengths is None:
        return x.flip(0)
    steps = x.shape[0]
    time = torch.arange(steps).unsqueeze(1)
    last = lengths.unsqueeze(0) - 1
    index = torch.where(time <= last, last - time, time).to(x.device)
    return x.gather(0, index.unsqueeze(2).expand_as(x))


@dataclass(frozen=True)
class Masks:
    """The random masks of one single-direction pass, drawn by :func:`draw_masks`.

    ``recurrent``: ``(batch, features of h)``, the variational recurrent dropout mask already scaled by
    ``1 / (1 - p)`` (``None`` without recurrent dropout); the state the recurrent weights read is
    ``h * recurrent`` at every step. ``zoneout``: one boolean ``(steps, batch, size)`` tensor per state
    tensor (``h``, then ``c``), true where the unit keeps its previous value at that step (``None``
    outside training or without zoneout; evaluation uses the expectation, ``Regularization.zoneout``).
    """

    recurrent: Tensor | None = None
    zoneout: tuple[Tensor, ...] | None = None


def draw_masks(regularization: Regularization | None, steps: int, state: State) -> Masks:
    """Draw the masks of one pass over ``steps`` steps from ``state`` (the initial state).

    The one place rnnkit draws them, for every path that runs the recurrent regularisers (the
    reference loop and the fused engine): the same seed gives the same masks on both. The order of the
    draws is fixed: the recurrent-dropout mask, then for each step one uniform draw per state tensor.
    """
    if regularization is None or not regularization.training:
        return Masks()
    recurrent = zoneout = None
    if regularization.recurrent_dropout > 0:
        keep = 1.0 - regularization.recurrent_dropout
        recurrent = torch.bernoulli(torch.full_like(state[0], keep)) / keep  # one mask per sequence
    if regularization.zoneout > 0:
        p = regularization.zoneout
        draws = [[torch.rand_like(s) < p for s in state] for _ in range(steps)]
        zoneout = tuple(torch.stack(per_state) for per_state in zip(*draws))
    return Masks(recurrent, zoneout)


def scan(
    cell: type[RecurrentCell],
    x_proj: Tensor,
    state: State,
    params: Params,
    *,
    lengths: Tensor | None = None,
    options: dict | None = None,
    observe: Callable[[State], None] | None = None,
    regularization: Regularization | None = None,
) -> tuple[Tensor, State]:
    """The per-step recurrence over an input projection ``x_proj`` of shape ``(steps, batch, gates)``.

    A sequence past its length keeps its state and outputs zero. ``observe``, if given, receives the
    state every step computes, before zoneout and the length mask pick from it: the tensors its output
    and (through those picks) the next step are made from, so ``torch.autograd.grad`` with respect to them
    measures how much of the loss reaches each step (``rnnkit.diagnostics``). (The picked state would miss
    an LSTM's path from ``c_t`` to ``h_t``, which was computed from the cell's own ``c_t``.)
    ``regularization`` applies recurrent dropout and zoneout (see :class:`Regularization`), with the
    masks of :func:`draw_masks`. Returns ``(outputs, final_state)``.
    """
    options = dict(options or {})
    zoneout = regularization.zoneout if regularization is not None else 0.0
    masks = draw_masks(regularization, x_proj.shape[0], state)
    if masks.recurrent is not None:
        options["recurrent_mask"] = masks.recurrent
    step = partial(cell.recurrence, params=params, **options)
    mask = None if lengths is None else valid_mask(lengths, x_proj.shape[0], x_proj.device)
    outputs = []
    for t, x_t in enumerate(x_proj.unbind(0)):
        new_state = step(x_t, state)
        if observe is not None:
            observe(new_state)
        if masks.zoneout is not None:  # training: each unit keeps its old value where its mask is set
            new_state = tuple(torch.where(keep[t], o, n) for keep, n, o in zip(masks.zoneout, new_state, state))
        elif zoneout > 0:  # evaluation: the expectation, p * old + (1 - p) * new
            new_state = tuple(torch.lerp(n, o, zoneout) for n, o in zip(new_state, state))
        if mask is not None:
            new_state = tuple(torch.where(mask[t], new, old) for new, old in zip(new_state, state))
        state = new_state
        outputs.append(state[0])
    output = torch.stack(outputs)
    if mask is not None:
        output = output.masked_fill(~mask, 0.0)
    return output, state


_sequential = scan


def recur(
    cell: type[RecurrentCell],
    x: Tensor,
    state: State,
    params: Params,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    options: dict | None = None,
    scan: Callable | None = None,
    regularization: Regularization | None = None,
) -> tuple[Tensor, State]:
    """Run ``cell`` over time-major ``x`` of shape ``(steps, batch, features)``.

    Args:
        cell: the cell class whose ``input_projection`` and ``recurrence`` define the step.
        x: the input sequence, time-major.
        state: the initial state, a tuple of ``(batch, hidden_size)`` tensors.
        params: the cell's parameters by name (one group of ``layer.parameter_groups()``).
        lengths: optional CPU int64 ``(batch,)`` valid lengths, each in ``[1, steps]``.
        reverse: process each sequence from its last valid element back to its first.
        options: extra keyword arguments for ``cell.recurrence``.
        scan: the recurrence over all steps, with ``loop.scan``'s signature: the engine's, or ``loop.scan``
            with an ``observe`` hook. ``None``: the cell's own ``parallel_scan`` when it has one (cells
            whose recurrence is linear in the state, minGRU/minLSTM), else ``loop.scan``.
        regularization: recurrent dropout and zoneout (training) for ``loop.scan``; ``None`` for none.

    Returns:
        ``(outputs, final_state)``: outputs ``(steps, batch, hidden_size)`` aligned with ``x`` and
        zero past each sequence's length; final_state holds each sequence's state after its last step.
    """
    if reverse:
        x = reverse_padded(x, lengths)
    x_proj = cell.input_projection(x, params)
    observer = _observer
    if observer is not None:  # step by step, whatever scan was asked for, so every state is seen
        observer.begin(lengths, reverse)
        scan = partial(_sequential, observe=observer.step)
    if regularization is not None:
        output, state = (scan or _sequential)(cell, x_proj, state, params, lengths=lengths, options=options,
                                              regularization=regularization)
    elif scan is None and hasattr(cell, "parallel_scan") and observer is None:
        output, state = cell.parallel_scan(x_proj, state, params, lengths=lengths, **(options or {}))
    else:
        output, state = (scan or _sequential)(cell, x_proj, state, params, lengths=lengths, options=options)
    if reverse:
        output = reverse_padded(output, lengths)
    return output, state
