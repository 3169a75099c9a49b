"""What the engine needs to know about a cell: its gate equations and their derivatives, row-wise.

Each ``EngineCell`` mirrors one struct in ``csrc/engine.cpp``. The Python functions here are the
fallback used when no C++ compiler is available, and the specification the C++ is tested against.

* ``forward(gx, gh, h, c) -> (h_new, c_new, saved)``: ``gx = W_ih x + b`` for this step,
  ``gh = W_hh h (+ b_hh)``, both ``(batch, gates * hidden)``; ``c`` is the extra state
  (``None`` for single-state cells); ``saved`` is what backward needs, ``(batch, saved * hidden)``.
* ``backward(g, gc, h, c, h_new, c_new, saved) -> (dgx, dgh, dh_direct, dc)``: ``g = dL/dh_new``,
  ``gc = dL/dc_new``; returns the gradients with respect to ``gx`` and ``gh``, the part of ``dL/dh``
  that bypasses ``W_hh`` and ``dL/dc``. A cell whose parameter gradients need more than ``dgx`` and
  ``saved`` (the layer-normalised LSTM: ``dL/dy`` of its cell-state norm) returns those rows fifth; the
  loops collect them over all steps for ``PARAM_GRADS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EngineCell:
    name: str  # the C++ cell, as the extension knows it
    gates: int  # blocks of hidden_size in gx and gh
    saved: int  # blocks of hidden_size saved per step for backward (some cells add per-row values after them)
    states: int  # 1 for h alone, 2 for (h, c)
    uses_hh_bias: bool  # False when the cell's input projection already folds b_hh in
    forward: Callable
    backward: Callable
    auto: bool = True  # whether backend="auto" prefers the engine for this cell on CPU
    #: Names of the cell's own per-unit parameters the loops read (concatenated, in this order), e.g. the
    #: peephole weights; their gradient is summed over all steps after the backward loop.
    cell_params: tuple[str, ...] = ()
    #: Whether the engine runs zoneout for this cell: its backward must not read the new state ``h_new``
    #: (zoneout replaces it by a mix of the new and the old one). Recurrent dropout runs for every cell.
    zoneout: bool = True


def _elman(activation: str) -> EngineCell:
    def forward(gx, gh, h, c):
        pre = gx + gh
        return (torch.tanh(pre) if activation == "tanh" else torch.relu(pre)), None, None

    def backward(g, gc, h, c, h_new, c_new, saved):
        d = g * (1 - h_new * h_new) if activation == "tanh" else g * (h_new > 0)
        return d, d, torch.zeros_like(g), None

    # backward reads h_new (the activation's derivative from its output): no zoneout on the engine
    return EngineCell(f"elman_{activation}", 1, 0, 1, False, forward, backward, zoneout=False)


def _gru_forward(gx, gh, h, c):
    x_r, x_z, x_n = gx.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return n + z * (h - n), None, torch.cat([r, z, n, h_n], dim=1)


def _gru_backward(g, gc, h, c, h_new, c_new, saved):
    r, z, n, h_n = saved.chunk(4, dim=1)
    dn = g * (1 - z) * (1 - n * n)
    dz = g * (h - n) * z * (1 - z)
    dr = dn * h_n * r * (1 - r)
    return torch.cat([dr, dz, dn], dim=1), torch.cat([dr, dz, dn * r], dim=1), g * z, None


def _lstm_forward(gx, gh, h, c):
    pre_i, pre_f, pre_g, pre_o = (gx + gh).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.tanh(pre_g), torch.sigmoid(pre_o)
    cell = f * c + i * g
    tanh_cell = torch.tanh(cell)
    return o * tanh_cell, cell, torch.cat([i, f, g, o, tanh_cell], dim=1)


def _lstm_backward(grad, gc, h, c, h_new, c_new, saved):
    i, f, g, o, tanh_cell = saved.chunk(5, dim=1)
    d_cell = gc + grad * o * (1 - tanh_cell * tanh_cell)
    d_gates = torch.cat(
        [d_cell * g * i * (1 - i), d_cell * c * f * (1 - f), d_cell * i * (1 - g * g), grad * tanh_cell * o * (1 - o)],
        dim=1,
    )
    return d_gates, d_gates, torch.zeros_like(grad), d_cell * f


def _peephole_forward(gx, gh, h, c, p):
    w_ci, w_cf, w_co = p.chunk(3)
    pre_i, pre_f, pre_g, pre_o = (gx + gh).chunk(4, dim=1)
    i, f, g = torch.sigmoid(pre_i + w_ci * c), torch.sigmoid(pre_f + w_cf * c), torch.tanh(pre_g)
    cell = f * c + i * g
    o = torch.sigmoid(pre_o + w_co * cell)
    return o * torch.tanh(cell), cell, torch.cat([i, f, g, o, cell], dim=1)


def _peephole_backward(grad, gc, h, c, h_new, c_new, saved, p):
    w_ci, w_cf, w_co = p.chunk(3)
    i, f, g, o, cell = saved.chunk(5, dim=1)
    tanh_cell = torch.tanh(cell)
    d_o = grad * tanh_cell * o * (1 - o)
    d_cell = gc + grad * o * (1 - tanh_cell * tanh_cell) + d_o * w_co
    d_i, d_f = d_cell * g * i * (1 - i), d_cell * c * f * (1 - f)
    d_gates = torch.cat([d_i, d_f, d_cell * i * (1 - g * g), d_o], dim=1)
    return d_gates, d_gates, torch.zeros_like(grad), d_cell * f + d_i * w_ci + d_f * w_cf


def _peephole_param_grads(dgx, c_prev, saved):
    """``d[w_ci | w_cf | w_co]`` from all steps' gate gradients: Σ di c_{t-1}, Σ df c_{t-1}, Σ do c'_t."""
    d_i, d_f, _, d_o = dgx.chunk(4, dim=2)
    cell = saved.chunk(5, dim=2)[4]
    return torch.cat([(d_i * c_prev).sum((0, 1)), (d_f * c_prev).sum((0, 1)), (d_o * cell).sum((0, 1))])


_LN_EPS = 1e-5  # torch.nn.LayerNorm's, rnnkit.variants.layernorm.EPS


def _ln_gru_forward(gx, gh, h, c, p):
    gamma, beta, bias = p.chunk(3)
    mean, var = gh.mean(1, keepdim=True), gh.var(1, unbiased=False, keepdim=True)
    rstd = torch.rsqrt(var + _LN_EPS)
    normed = (gh - mean) * rstd
    x_r, x_z, x_n = gx.chunk(3, dim=1)
    a_r, a_z, a_n = (gamma * normed + beta + bias).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + a_r), torch.sigmoid(x_z + a_z)
    n = torch.tanh(x_n + r * a_n)
    return n + z * (h - n), None, torch.cat([r, z, n, a_n, normed, rstd], dim=1)


def _ln_gru_backward(grad, gc, h, c, h_new, c_new, saved, p):
    hidden = h.shape[1]
    gamma = p.chunk(3)[0]
    r, z, n, a_n = saved[:, : 4 * hidden].chunk(4, dim=1)
    normed, rstd = saved[:, 4 * hidden : 7 * hidden], saved[:, 7 * hidden :][:, :1]
    d_n = grad * (1 - z) * (1 - n * n)
    d_z = grad * (h - n) * z * (1 - z)
    d_r = d_n * a_n * r * (1 - r)
    scaled = gamma * torch.cat([d_r, d_z, d_n * r], dim=1)  # γ ⊙ dL/da, then back through the layer norm
    d_raw = rstd * (scaled - scaled.mean(1, keepdim=True) - normed * (scaled * normed).mean(1, keepdim=True))
    return torch.cat([d_r, d_z, d_n], dim=1), d_raw, grad * z, None


def _ln_gru_param_grads(dgx, c_prev, saved):
    """``d[γ_hh | β_hh | b_hh]``: Σ dL/da ⊙ LN(gh), Σ dL/da, Σ dL/da, with dL/da = [dr, dz, dn ⊙ r]."""
    hidden = dgx.shape[2] // 3
    d_a = torch.cat([dgx[..., : 2 * hidden], dgx[..., 2 * hidden :] * saved[..., :hidden]], dim=2)
    summed = d_a.sum((0, 1))
    return torch.cat([(d_a * saved[..., 4 * hidden : 7 * hidden]).sum((0, 1)), summed, summed])


def _normalise(v):
    """``((v - μ) / σ, 1 / σ)`` over each row, with σ² biased plus ε (torch's layer norm without its affine)."""
    mean, var = v.mean(1, keepdim=True), v.var(1, unbiased=False, keepdim=True)
    rstd = torch.rsqrt(var + _LN_EPS)
    return (v - mean) * rstd, rstd


def _normalise_backward(d, normed, rstd):
    """dL/dv of ``normed = (v - μ) / σ`` given ``d = dL/dnormed``."""
    return rstd * (d - d.mean(1, keepdim=True) - normed * (d * normed).mean(1, keepdim=True))


def _ln_lstm_forward(gx, gh, h, c, p):
    hidden = h.shape[1] if c is None else c.shape[1]
    gates = 4 * hidden
    gamma, beta, gamma_c, beta_c = p[:gates], p[gates:2 * gates], p[2 * gates:2 * gates + hidden], p[-hidden:]
    normed_hh, rstd_hh = _normalise(gh)
    pre_i, pre_f, pre_g, pre_o = (gx + gamma * normed_hh + beta).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.tanh(pre_g), torch.sigmoid(pre_o)
    cell = f * c + i * g
    normed_c, rstd_c = _normalise(cell)
    tanh_y = torch.tanh(gamma_c * normed_c + beta_c)
    return o * tanh_y, cell, torch.cat([i, f, g, o, normed_hh, normed_c, rstd_hh, rstd_c], dim=1)


def _ln_lstm_backward(grad, gc, h, c, h_new, c_new, saved, p):
    """Also returns ``dL/dy`` per step (``y = γ_c ⊙ LN(c') + β_c``): the c-norm's parameter gradients need it."""
    hidden = c.shape[1]
    gates = 4 * hidden
    gamma, gamma_c, beta_c = p[:gates], p[2 * gates:2 * gates + hidden], p[-hidden:]
    i, f, g, o = saved[:, :gates].chunk(4, dim=1)
    normed_hh, normed_c = saved[:, gates:2 * gates], saved[:, 8 * hidden:9 * hidden]
    rstd_hh, rstd_c = saved[:, 9 * hidden:9 * hidden + 1], saved[:, 9 * hidden + 1:9 * hidden + 2]
    tanh_y = torch.tanh(gamma_c * normed_c + beta_c)  # recomputed: not saved
    d_y = grad * o * (1 - tanh_y * tanh_y)
    d_cell = gc + _normalise_backward(gamma_c * d_y, normed_c, rstd_c)
    d_gates = torch.cat([d_cell * g * i * (1 - i), d_cell * c * f * (1 - f), d_cell * i * (1 - g * g),
                         grad * tanh_y * o * (1 - o)], dim=1)
    d_raw = _normalise_backward(gamma * d_gates, normed_hh, rstd_hh)
    return d_gates, d_raw, torch.zeros_like(grad), d_cell * f, d_y


def _ln_lstm_param_grads(dgx, c_prev, saved, d_y):
    """``d[γ_hh | β_hh | γ_c | β_c]``: Σ da ⊙ LN(gh), Σ da (da = dgx), Σ dy ⊙ LN(c'), Σ dy."""
    hidden = dgx.shape[2] // 4  # saved: the gates, LN(gh), LN(c') (blocks of H), then the two 1/σ
    return torch.cat([(dgx * saved[..., 4 * hidden:8 * hidden]).sum((0, 1)), dgx.sum((0, 1)),
                      (d_y * saved[..., 8 * hidden:9 * hidden]).sum((0, 1)), d_y.sum((0, 1))])


GRU = EngineCell("gru", 3, 4, 1, True, _gru_forward, _gru_backward)
ELMAN_TANH = _elman("tanh")
ELMAN_RELU = _elman("relu")
# The LSTM runs on the engine only when asked for (backend="engine"): oneDNN's fused LSTM is as fast
# on CPU, so "auto" keeps it (see docs/benchmarks.md).
LSTM = EngineCell("lstm", 4, 5, 2, False, _lstm_forward, _lstm_backward, auto=False)
#: The peephole LSTM (rk.PeepholeLSTMCell): saves c' (before zoneout: the output gate reads it) in place
#: of tanh(c'), which backward recomputes.
PEEPHOLE_LSTM = EngineCell("peephole_lstm", 4, 5, 2, False, _peephole_forward, _peephole_backward,
                           cell_params=("weight_ci", "weight_cf", "weight_co"))
#: The layer-normalised GRU (rk.LayerNormGRUCell): b_hh is added after the layer norm, so it travels with
#: the layer norm's gain and shift as a cell parameter (missing ones, with bias=False, are zeros).
LN_GRU = EngineCell("ln_gru", 3, 7, 1, False, _ln_gru_forward, _ln_gru_backward,
                    cell_params=("ln_hh_weight", "ln_hh_bias", "bias_hh"))
#: The layer-normalised LSTM (rk.LayerNormLSTMCell): p = [γ_hh | β_hh (4H each) | γ_c | β_c (H each)]
#: (b_ih + b_hh are in the input projection). Saves the gates, LN(gh), LN(c') and the two 1/σ (one value
#: each per row); its backward also hands back dL/dy per step, from which the c-norm's gradients are summed.
LN_LSTM = EngineCell("ln_lstm", 4, 9, 2, False, _ln_lstm_forward, _ln_lstm_backward,
                     cell_params=("ln_hh_weight", "ln_hh_bias", "ln_c_weight", "ln_c_bias"))
PARAM_GRADS = {"peephole_lstm": _peephole_param_grads, "ln_gru": _ln_gru_param_grads,
               "ln_lstm": _ln_lstm_param_grads}
BY_NAME = {cell.name: cell for cell in (GRU, ELMAN_TANH, ELMAN_RELU, LSTM, PEEPHOLE_LSTM, LN_GRU, LN_LSTM)}
