"""The gated recurrent unit (Cho et al. 2014), in the form cuDNN and torch.nn compute."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.cells.base import Params, RecurrentCell, State


class GRUCell(RecurrentCell):
    r"""GRU cell, a drop-in for ``torch.nn.GRUCell``.

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})            && \text{reset gate} \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})            && \text{update gate} \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))  && \text{candidate} \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    The reset gate multiplies ``W_hn h + b_hn`` (not ``h`` itself), as in cuDNN and torch.nn, so
    ``b_hn`` cannot be folded into the input projection.

    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t``.
        bias: add ``b_ih`` and ``b_hh``. Default: ``True``.

    Parameters (torch.nn names and gate order ``r, z, n`` stacked in the rows):
        weight_ih ``(3*hidden_size, input_size)``, weight_hh ``(3*hidden_size, hidden_size)``,
        bias_ih, bias_hh ``(3*hidden_size,)``; all U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).

    Shape:
        input ``(batch, input_size)`` or ``(input_size,)``; hx and the result ``(batch, hidden_size)``
        or ``(hidden_size,)``.

    >>> cell = GRUCell(3, 5)
    >>> cell(torch.randn(2, 3)).shape
    torch.Size([2, 5])
    """

    num_chunks = 3
    torch_kernels = {None: "GRU"}
    accepts_recurrent_mask = True

    @staticmethod
    def input_projection(x: Tensor, params: Params) -> Tensor:
        return F.linear(x, params["weight_ih"], params.get("bias_ih"))

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, recurrent_mask: Tensor | None = None) -> State:
        (h,) = state
        read = h if recurrent_mask is None else h * recurrent_mask  # the carried h itself is not dropped
        x_r, x_z, x_n = x_proj.chunk(3, dim=1)
        h_r, h_z, h_n = F.linear(read, params["weight_hh"], params.get("bias_hh")).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        # (1 - z) * n + z * h, in the state's precision (under autocast n and z may be in a lower one)
        return (torch.lerp(n.to(h.dtype), h, z.to(h.dtype)),)
