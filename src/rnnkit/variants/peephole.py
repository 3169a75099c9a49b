"""The peephole LSTM (Gers & Schmidhuber 2000): the gates also look at the cell state."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import ParameterSpec, Params, State, classic_specs
from rnnkit.cells.lstm import LSTMCell
from rnnkit.nn import LSTM


class PeepholeLSTMCell(LSTMCell):
    r"""LSTM cell with peephole connections (Gers & Schmidhuber 2000; the form of Graves 2013).

    .. math::
        i_t &= \sigma(W_{ii} x_t + W_{hi} h_{t-1} + w_{ci} \odot c_{t-1} + b_i) \\
        f_t &= \sigma(W_{if} x_t + W_{hf} h_{t-1} + w_{cf} \odot c_{t-1} + b_f) \\
        g_t &= \tanh(W_{ig} x_t + W_{hg} h_{t-1} + b_g) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        o_t &= \sigma(W_{io} x_t + W_{ho} h_{t-1} + w_{co} \odot c_t + b_o) \\
        h_t &= o_t \odot \tanh(c_t)

    The peepholes are diagonal (one weight per unit): ``weight_ci``, ``weight_cf``, ``weight_co`` of
    shape ``(hidden_size,)``, beside torch.nn's four LSTM parameters (gate order ``i, f, g, o``).
    The input and forget gates read ``c_{t-1}``, the output gate the new ``c_t``. With zero
    peepholes the cell is exactly ``rk.LSTMCell``.

    >>> cell = PeepholeLSTMCell(3, 5)
    >>> h, c = cell(torch.randn(2, 3))
    >>> [name for name, _ in cell.named_parameters()][-3:]
    ['weight_ci', 'weight_cf', 'weight_co']
    """

    supports_projection = False
    #: The fused engine's kernel for this cell (``rnnkit.engine``): forward and backward in C++.
    engine_kernel = "peephole_lstm"

    @classmethod
    def parameter_specs(cls, input_size: int, hidden_size: int, bias: bool = True, **options) -> list[ParameterSpec]:
        peepholes = [ParameterSpec(f"weight_c{gate}", (hidden_size,), "peephole") for gate in "ifo"]
        return classic_specs(cls.num_chunks, input_size, hidden_size, bias) + peepholes

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, recurrent_mask: Tensor | None = None) -> State:
        h, c = state
        read = h if recurrent_mask is None else h * recurrent_mask
        # x_proj already holds b_ih + b_hh (see RecurrentCell.input_projection).
        i, f, g, o = torch.addmm(x_proj, read, params["weight_hh"].t()).chunk(4, dim=1)
        i = torch.sigmoid(i + params["weight_ci"] * c)
        f = torch.sigmoid(f + params["weight_cf"] * c)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + params["weight_co"] * c)
        return o * torch.tanh(c), c


class PeepholeLSTM(LSTM):
    __doc__ = ("Peephole LSTM layer (see ``PeepholeLSTMCell``): the constructor and forward of ``rk.LSTM``, "
               "parameters ``weight_c{i,f,o}_l{k}[_reverse]`` besides torch.nn's.\n\n"
               "    >>> layer = PeepholeLSTM(4, 8, num_layers=2, bidirectional=True)\n"
               "    >>> layer(torch.randn(5, 3, 4))[0].shape\n"
               "    torch.Size([5, 3, 16])\n")

    cell_type = PeepholeLSTMCell
