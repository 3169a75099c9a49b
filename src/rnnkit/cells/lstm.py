"""The long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate, Gers et al. 2000)."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import ParameterSpec, Params, RecurrentCell, State, classic_specs


class LSTMCell(RecurrentCell):
    r"""LSTM cell, a drop-in for ``torch.nn.LSTMCell``.

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})   && \text{input gate} \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})   && \text{forget gate} \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})    && \text{candidate} \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})   && \text{output gate} \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t                          && \text{cell state} \\
        h_t &= o_t \odot \tanh(c_t)

    The cell state ``c`` is updated additively, which is what lets gradients survive many steps.

    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t`` and ``c_t``.
        bias: add ``b_ih`` and ``b_hh``. Default: ``True``.

    Parameters (torch.nn names and gate order ``i, f, g, o`` stacked in the rows):
        weight_ih ``(4*hidden_size, input_size)``, weight_hh ``(4*hidden_size, hidden_size)``,
        bias_ih, bias_hh ``(4*hidden_size,)``; all U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
        ``rnnkit.init.forget_gate_bias_`` sets the forget bias (1.0 per Jozefowicz et al. 2015).

    Shape:
        input ``(batch, input_size)`` or ``(input_size,)``; hx and the result are ``(h, c)``, each
        ``(batch, hidden_size)`` or ``(hidden_size,)``.

    >>> cell = LSTMCell(3, 5)
    >>> h, c = cell(torch.randn(2, 3))
    >>> h.shape, c.shape
    (torch.Size([2, 5]), torch.Size([2, 5]))
    """

    num_chunks = 4
    num_states = 2
    forget_gate = 1
    torch_kernels = {None: "LSTM"}
    accepts_recurrent_mask = True
    supports_projection = True

    @classmethod
    def parameter_specs(cls, input_size: int, hidden_size: int, bias: bool = True, proj_size: int = 0,
                        **options) -> list[ParameterSpec]:
        """torch.nn's four; with ``proj_size`` the recurrent weight reads the projected ``h`` and
        ``weight_hr (proj_size, hidden_size)`` projects it (torch.nn.LSTM's ``proj_size``)."""
        specs = classic_specs(cls.num_chunks, input_size, hidden_size, bias, recurrent_size=proj_size or None)
        return [*specs, ParameterSpec("weight_hr", (proj_size, hidden_size), "projection")] if proj_size else specs

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, recurrent_mask: Tensor | None = None) -> State:
        h, c = state
        read = h if recurrent_mask is None else h * recurrent_mask
        # x_proj already holds b_ih + b_hh (see RecurrentCell.input_projection).
        gates = torch.addmm(x_proj, read, params["weight_hh"].t())
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        if "weight_hr" in params:  # proj_size: h_t = W_hr (o * tanh(c_t))
            h = h @ params["weight_hr"].t()
        return h, c
