"""What the engine needs to know about a cell: its gate equations and their derivatives, row-wise.

Each ``EngineCell`` mirrors one struct in ``csrc/engine.cpp``. The Python functions here are the
fallback used when no C++ compiler is available, and the specification the C++ is tested against.

* ``forward(gx, gh, h) -> (h_new, saved)``: ``gx = W_ih x + b`` for this step, ``gh = W_hh h (+ b_hh)``,
  both ``(batch, gates * hidden)``; ``saved`` is what backward needs, ``(batch, saved * hidden)``.
* ``backward(g, h, h_new, saved) -> (dgx, dgh, dh_direct)``: ``g = dL/dh_new``; returns the gradients
  with respect to ``gx`` and ``gh`` and the part of ``dL/dh`` that bypasses ``W_hh``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class EngineCell:
    name: str  # the C++ cell, as the extension knows it
    gates: int  # blocks of hidden_size in gx and gh
    saved: int  # blocks of hidden_size saved per step for backward
    uses_hh_bias: bool  # False when the cell's input projection already folds b_hh in
    forward: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor | None]]
    backward: Callable[[Tensor, Tensor, Tensor, Tensor | None], tuple[Tensor, Tensor, Tensor]]


def _elman(activation: str) -> EngineCell:
    def forward(gx, gh, h):
        pre = gx + gh
        return (torch.tanh(pre) if activation == "tanh" else torch.relu(pre)), None

    def backward(g, h, h_new, saved):
        d = g * (1 - h_new * h_new) if activation == "tanh" else g * (h_new > 0)
        return d, d, torch.zeros_like(g)

    return EngineCell(f"elman_{activation}", 1, 0, False, forward, backward)


def _gru_forward(gx, gh, h):
    x_r, x_z, x_n = gx.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return n + z * (h - n), torch.cat([r, z, n, h_n], dim=1)


def _gru_backward(g, h, h_new, saved):
    r, z, n, h_n = saved.chunk(4, dim=1)
    dn = g * (1 - z) * (1 - n * n)
    dz = g * (h - n) * z * (1 - z)
    dr = dn * h_n * r * (1 - r)
    return torch.cat([dr, dz, dn], dim=1), torch.cat([dr, dz, dn * r], dim=1), g * z


GRU = EngineCell("gru", 3, 4, True, _gru_forward, _gru_backward)
ELMAN_TANH = _elman("tanh")
ELMAN_RELU = _elman("relu")
BY_NAME = {cell.name: cell for cell in (GRU, ELMAN_TANH, ELMAN_RELU)}
