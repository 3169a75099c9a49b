"""What every recurrent cell shares: torch.nn-style parameters, argument checks and the step contract.

A cell describes one time step and nothing about time. Its math lives in two static functions that
the cell's own ``forward`` and the layers' time loop (``rnnkit.loop``) both call, so a single
definition is the reference for the cell and for every layer built from it:

* ``input_projection(x, weight_ih, bias_ih, bias_hh)`` -- the part that depends on the input only.
  It is linear in ``x``, so the loop computes it for all time steps in one matrix multiply.
* ``recurrence(x_proj, state, weight_hh, bias_hh, **options)`` -- the part that needs the previous
  state. ``state`` is a tuple (``(h,)`` or ``(h, c)``) and the new state is returned the same way.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit import _checks

State = tuple[Tensor, ...]


class RecurrentCell(nn.Module):
    """Base class of the cells: parameters laid out exactly as the matching ``torch.nn`` cell.

    Subclasses set ``num_chunks`` (gate blocks stacked in the weight rows), ``num_states`` (1 for
    ``h``, 2 for ``(h, c)``) and implement ``recurrence``.
    """

    num_chunks: ClassVar[int] = 1
    num_states: ClassVar[int] = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _checks.positive_int("input_size", input_size)
        _checks.positive_int("hidden_size", hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        factory = {"device": device, "dtype": dtype}
        rows = self.num_chunks * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **factory))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **factory))
            self.bias_hh = nn.Parameter(torch.empty(rows, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's default: every parameter drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def weight_groups(self) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
        """The ``(weight_ih, weight_hh, bias_ih, bias_hh)`` groups, used by ``rnnkit.init``."""
        return [(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)]

    def step_options(self) -> dict:
        """Keyword arguments this cell passes to ``recurrence`` (e.g. the Elman nonlinearity)."""
        return {}

    @staticmethod
    def input_projection(
        x: Tensor, weight_ih: Tensor, bias_ih: Tensor | None, bias_hh: Tensor | None
    ) -> Tensor:
        """``W_ih x + b_ih + b_hh``: both biases fold in when they are simply added to the gates."""
        bias = bias_ih + bias_hh if bias_ih is not None else None
        return F.linear(x, weight_ih, bias)

    @staticmethod
    def recurrence(
        x_proj: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None, **options
    ) -> State:
        raise NotImplementedError

    def forward(self, input: Tensor, hx=None):
        """One step, with torch.nn's signature: ``input`` is ``(batch, input_size)`` or ``(input_size,)``."""
        _checks.floating_input(input, self.weight_ih.dtype)
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expected input of shape (batch, {self.input_size}) or "
                f"({self.input_size},), got {tuple(input.shape)}"
            )
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        state = self._state_from_hx(hx, x.shape[0], batched, x)
        x_proj = self.input_projection(x, self.weight_ih, self.bias_ih, self.bias_hh)
        state = self.recurrence(x_proj, state, self.weight_hh, self.bias_hh, **self.step_options())
        if not batched:
            state = tuple(s.squeeze(0) for s in state)
        return state[0] if self.num_states == 1 else state

    def _state_from_hx(self, hx, batch: int, batched: bool, like: Tensor) -> State:
        shape = (batch, self.hidden_size)
        if hx is None:
            zeros = torch.zeros(shape, dtype=like.dtype, device=like.device)
            return (zeros,) * self.num_states
        parts = _checks.state_tuple(hx, self.num_states, type(self).__name__)
        expected = shape if batched else (self.hidden_size,)
        for name, part in zip(("h", "c"), parts):
            _checks.state_tensor(f"hx ({name})", part, expected, like)
        return parts if batched else tuple(p.unsqueeze(0) for p in parts)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"
