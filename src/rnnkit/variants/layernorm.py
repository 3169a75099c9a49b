r"""Layer-normalised LSTM and GRU (Ba, Kiros & Hinton 2016, "Layer Normalization", arXiv:1607.06450).

Layer normalisation re-centres and re-scales a vector of summed inputs by its own mean and standard
deviation, then applies a learnable per-unit gain ``γ`` and shift ``β``:

.. math::
    \mathrm{LN}(v; γ, β) = γ \odot \frac{v - \mu(v)}{\sqrt{\sigma^2(v) + ε}} + β, \qquad ε = 10^{-5}

with ``μ`` and ``σ²`` (biased) over all of ``v``'s units, one row (one sequence, one step) at a time,
exactly ``torch.nn.functional.layer_norm``. In a recurrent net this keeps the gate pre-activations
at a fixed scale whatever the scale of ``x`` and ``h``, step after step.

Formulation (the paper's layer-normalised LSTM; the GRU by the same rule):

* the input pre-activations ``W_ih x_t`` and the recurrent pre-activations ``W_hh h_{t-1}`` are
  normalised *separately*, each over its **whole** gate vector (all ``4H`` units of the LSTM, all
  ``3H`` of the GRU; not per gate), each with its own gain and shift;
* torch.nn's biases ``b_ih`` and ``b_hh`` are added *after* the normalisation, so they are the gates'
  offsets as in ``rk.LSTM`` (and ``forget_bias=`` sets the forget gate's pre-activation offset);
* the LSTM normalises the cell state before the output ``tanh``: ``h = o ⊙ tanh(LN(c))``; the state
  carried to the next step is the un-normalised ``c``.

The LN shifts and torch.nn's biases all add to the same pre-activations, so for the forward pass only
their sums matter (as already for ``b_ih + b_hh`` in torch.nn); they are kept so that each LN is a
standard affine layer norm and a torch.nn checkpoint's four names mean what they mean there.
``bias=False`` drops ``b_ih``, ``b_hh`` *and* every LN shift (as ``torch.nn.LayerNorm(bias=False)``),
leaving a network with no additive parameters; the gains stay.

Both cells run on rnnkit's fused CPU engine (``engine_kernel``: the recurrent layer norms, forward
and hand-derived backward, in C++) and otherwise on the reference loop; either way the input
projection, layer norm included, is computed for all steps at once (the normalisation is per step
and per row).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.cells.base import ParameterSpec, Params, RecurrentCell, State, classic_specs
from rnnkit.nn import _LAYER_ARGS, GRU, LSTM

#: The layer norm's ε, torch.nn.LayerNorm's default (and Haste's).
EPS = 1e-5


def _layer_norm(v: Tensor, params: Params, name: str) -> Tensor:
    """``LN(v; ln_<name>_weight, ln_<name>_bias)`` over the last dimension (no shift when bias=False)."""
    return F.layer_norm(v, v.shape[-1:], params[f"ln_{name}_weight"], params.get(f"ln_{name}_bias"), EPS)


def _layer_norm_specs(num_chunks: int, hidden_size: int, bias: bool, names: tuple[str, ...]) -> list[ParameterSpec]:
    """Gain (and shift) of each layer norm: ``ih``/``hh`` over ``num_chunks * H`` units, ``c`` over ``H``."""
    specs = []
    for name in names:
        chunks = 1 if name == "c" else num_chunks
        shape = (chunks * hidden_size,)
        specs.append(ParameterSpec(f"ln_{name}_weight", shape, "gain", chunks))
        if bias:
            specs.append(ParameterSpec(f"ln_{name}_bias", shape, "shift", chunks))
    return specs


class LayerNormLSTMCell(RecurrentCell):
    r"""Layer-normalised LSTM cell (Ba, Kiros & Hinton 2016), gate order ``i, f, g, o`` as torch.nn.

    .. math::
        a_t &= \mathrm{LN}(W_{ih} x_t;\ γ_{ih}, β_{ih}) + \mathrm{LN}(W_{hh} h_{t-1};\ γ_{hh}, β_{hh})
               + b_{ih} + b_{hh}                                 && \text{(4H units, one LN each)} \\
        i_t, f_t, g_t, o_t &= \sigma(a^i_t),\ \sigma(a^f_t),\ \tanh(a^g_t),\ \sigma(a^o_t) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(\mathrm{LN}(c_t;\ γ_c, β_c))

    Each LN normalises over all of its vector's units (``4H`` for ``W_ih x`` and ``W_hh h``, ``H`` for
    ``c``) with ε = 1e-5; see :mod:`rnnkit.variants.layernorm` for the formulation and how it relates
    to Haste's ``LayerNormLSTM``. No torch kernel computes this cell; on CPU layers run it on the
    fused engine (``engine_kernel``), elsewhere on the reference loop.

    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t`` and ``c_t``.
        bias: add ``b_ih``, ``b_hh`` and the LN shifts ``β``. Default: ``True``.

    Parameters:
        torch.nn's ``weight_ih (4H, input_size)``, ``weight_hh (4H, H)``, ``bias_ih``, ``bias_hh (4H,)``
        (U(±1/√H) by default); the gains ``ln_ih_weight``, ``ln_hh_weight (4H,)``, ``ln_c_weight (H,)``
        (ones) and shifts ``ln_ih_bias``, ``ln_hh_bias (4H,)``, ``ln_c_bias (H,)`` (zeros).

    >>> cell = LayerNormLSTMCell(3, 5)
    >>> h, c = cell(torch.randn(2, 3))
    >>> h.shape, c.shape
    (torch.Size([2, 5]), torch.Size([2, 5]))
    """

    num_chunks = 4
    num_states = 2
    forget_gate = 1
    accepts_recurrent_mask = True
    #: The fused engine's kernel for this cell (``rnnkit.engine``): both recurrent layer norms in C++.
    engine_kernel = "ln_lstm"

    @classmethod
    def parameter_specs(cls, input_size: int, hidden_size: int, bias: bool = True, **options) -> list[ParameterSpec]:
        return (classic_specs(cls.num_chunks, input_size, hidden_size, bias)
                + _layer_norm_specs(cls.num_chunks, hidden_size, bias, ("ih", "hh", "c")))

    @staticmethod
    def input_projection(x: Tensor, params: Params) -> Tensor:
        """``LN(W_ih x; γ_ih, β_ih) + b_ih + b_hh``, for any leading dimensions (all steps at once)."""
        projected = _layer_norm(F.linear(x, params["weight_ih"]), params, "ih")
        if "bias_ih" in params:
            projected = projected + (params["bias_ih"] + params["bias_hh"])
        return projected

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, recurrent_mask: Tensor | None = None) -> State:
        h, c = state
        read = h if recurrent_mask is None else h * recurrent_mask  # recurrent_dropout=: the state W_hh reads
        gates = x_proj + _layer_norm(F.linear(read, params["weight_hh"]), params, "hh")
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(_layer_norm(c, params, "c"))
        return h, c


class LayerNormGRUCell(RecurrentCell):
    r"""Layer-normalised GRU cell (layer norm of Ba, Kiros & Hinton 2016), gate order ``r, z, n`` as torch.nn.

    .. math::
        \hat x_t &= \mathrm{LN}(W_{ih} x_t;\ γ_{ih}, β_{ih}) + b_{ih}          && \text{(3H units)} \\
        \hat h_t &= \mathrm{LN}(W_{hh} h_{t-1};\ γ_{hh}, β_{hh}) + b_{hh}      && \text{(3H units)} \\
        r_t &= \sigma(\hat x^r_t + \hat h^r_t), \quad z_t = \sigma(\hat x^z_t + \hat h^z_t) \\
        n_t &= \tanh(\hat x^n_t + r_t \odot \hat h^n_t) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    The reset gate multiplies the normalised ``W_hn h + b_hn`` block, as torch.nn's (cuDNN's) GRU
    multiplies ``W_hn h + b_hn``. Each LN normalises over all ``3H`` units with ε = 1e-5.

    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t``.
        bias: add ``b_ih``, ``b_hh`` and the LN shifts ``β``. Default: ``True``.

    Parameters:
        torch.nn's ``weight_ih (3H, input_size)``, ``weight_hh (3H, H)``, ``bias_ih``, ``bias_hh (3H,)``;
        the gains ``ln_ih_weight``, ``ln_hh_weight (3H,)`` (ones) and shifts ``ln_ih_bias``,
        ``ln_hh_bias (3H,)`` (zeros).

    >>> LayerNormGRUCell(3, 5)(torch.randn(2, 3)).shape
    torch.Size([2, 5])
    """

    num_chunks = 3
    accepts_recurrent_mask = True
    #: The fused engine's kernel for this cell (``rnnkit.engine``): the recurrent layer norm in C++.
    engine_kernel = "ln_gru"

    @classmethod
    def parameter_specs(cls, input_size: int, hidden_size: int, bias: bool = True, **options) -> list[ParameterSpec]:
        return (classic_specs(cls.num_chunks, input_size, hidden_size, bias)
                + _layer_norm_specs(cls.num_chunks, hidden_size, bias, ("ih", "hh")))

    @staticmethod
    def input_projection(x: Tensor, params: Params) -> Tensor:
        """``LN(W_ih x; γ_ih, β_ih) + b_ih`` (``b_hh`` stays inside the reset gate's product)."""
        projected = _layer_norm(F.linear(x, params["weight_ih"]), params, "ih")
        return projected + params["bias_ih"] if "bias_ih" in params else projected

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, recurrent_mask: Tensor | None = None) -> State:
        (h,) = state
        read = h if recurrent_mask is None else h * recurrent_mask  # recurrent_dropout=: the state W_hh reads
        recurrent = _layer_norm(F.linear(read, params["weight_hh"]), params, "hh")
        if "bias_hh" in params:
            recurrent = recurrent + params["bias_hh"]
        x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
        h_r, h_z, h_n = recurrent.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (torch.lerp(n, h, z),)  # (1 - z) * n + z * h


class LayerNormLSTM(LSTM):
    __doc__ = (
        "Layer-normalised LSTM layer (Ba, Kiros & Hinton 2016): each step is ``rnnkit.LayerNormLSTMCell``,\n"
        "    ``h_t = o_t * tanh(LN(c_t))`` with ``LN(W_ih x_t) + LN(W_hh h_{t-1}) + b_ih + b_hh`` as the gates.\n\n"
        "    rk.LSTM's constructor and forward; its ``state_dict`` holds torch.nn's four names per layer and\n"
        "    direction plus ``ln_ih_weight_l{k}``, ``ln_ih_bias_l{k}``, ``ln_hh_weight_l{k}``, ``ln_hh_bias_l{k}``,\n"
        "    ``ln_c_weight_l{k}``, ``ln_c_bias_l{k}`` (so a torch.nn LSTM checkpoint does not load strictly).\n"
        "    Runs on rnnkit's fused engine on CPU, on the reference loop elsewhere.\n"
        + _LAYER_ARGS
        + """        forget_bias: if given, the forget gate's bias (added after the layer norm) is set to this
            value after ``init`` (1.0 per Jozefowicz et al. 2015). Keyword only.

    >>> lstm = LayerNormLSTM(8, 16, num_layers=2, bidirectional=True, forget_bias=1.0)
    >>> output, (h_n, c_n) = lstm(torch.randn(5, 3, 8), lengths=torch.tensor([5, 2, 4]))
    >>> output.shape, h_n.shape
    (torch.Size([5, 3, 32]), torch.Size([4, 3, 16]))
    """
    )

    cell_type = LayerNormLSTMCell


class LayerNormGRU(GRU):
    __doc__ = (
        "Layer-normalised GRU layer: each step is ``rnnkit.LayerNormGRUCell``, ``LN(W_ih x_t) + b_ih`` and\n"
        "    ``LN(W_hh h_{t-1}) + b_hh`` in place of the GRU's two projections.\n\n"
        "    rk.GRU's constructor and forward; its ``state_dict`` holds torch.nn's four names per layer and\n"
        "    direction plus ``ln_ih_weight_l{k}``, ``ln_ih_bias_l{k}``, ``ln_hh_weight_l{k}``, ``ln_hh_bias_l{k}``.\n"
        "    Runs on rnnkit's fused engine on CPU, on the reference loop elsewhere.\n"
        + _LAYER_ARGS
        + """
    >>> gru = LayerNormGRU(8, 16, batch_first=True)
    >>> output, h_n = gru(torch.randn(3, 5, 8))
    >>> output.shape, h_n.shape
    (torch.Size([3, 5, 16]), torch.Size([1, 3, 16]))
    """
    )

    cell_type = LayerNormGRUCell


__all__ = ["LayerNormLSTMCell", "LayerNormGRUCell", "LayerNormLSTM", "LayerNormGRU", "EPS"]
