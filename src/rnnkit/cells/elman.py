"""The Elman recurrent cell (vanilla RNN)."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit import _checks
from rnnkit.cells.base import Params, RecurrentCell, State

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


class ElmanCell(RecurrentCell):
    r"""Elman RNN cell, a drop-in for ``torch.nn.RNNCell``.

    .. math::
        h_t = \mathrm{act}(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    with ``act`` = tanh or relu. The output ``y_t = W_hy h_t`` of the textbook Elman network is a
    linear head on top of ``h_t`` and is left to the models.

    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t``.
        bias: add ``b_ih`` and ``b_hh``. Default: ``True``.
        nonlinearity: ``'tanh'`` (default) or ``'relu'`` (use relu with identity init, IRNN).

    Parameters (torch.nn names and shapes):
        weight_ih ``(hidden_size, input_size)``, weight_hh ``(hidden_size, hidden_size)``,
        bias_ih, bias_hh ``(hidden_size,)``; all U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).

    Shape:
        input ``(batch, input_size)`` or ``(input_size,)``; hx and the result ``(batch, hidden_size)``
        or ``(hidden_size,)``.

    >>> cell = ElmanCell(3, 5, nonlinearity="relu")
    >>> cell(torch.randn(2, 3)).shape
    torch.Size([2, 5])
    """

    num_chunks = 1
    torch_kernels = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
    accepts_recurrent_mask = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        _checks.choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def step_options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, nonlinearity: str = "tanh",
                   recurrent_mask: Tensor | None = None) -> State:
        (h,) = state
        read = h if recurrent_mask is None else h * recurrent_mask
        # x_proj already holds b_ih + b_hh (see RecurrentCell.input_projection).
        return (NONLINEARITIES[nonlinearity](torch.addmm(x_proj, read, params["weight_hh"].t())),)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


RNNCell = ElmanCell
