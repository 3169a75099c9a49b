"""The engine's loops in plain PyTorch: the fallback when the C++ engine cannot be built.

Same signatures and the same math as ``csrc/engine.cpp`` (``forward`` and ``backward``), one PyTorch
op per gate instead of fused C++ loops.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.engine.cells import BY_NAME
from rnnkit.loop import valid_mask


def _held(mask, new, old):
    return new if mask is None or new is None else torch.where(mask, new, old)


def forward(cell: str, x_proj: Tensor, h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None,
            lengths: Tensor | None, training: bool) -> list[Tensor]:
    spec = BY_NAME[cell]
    mask = None if lengths is None else valid_mask(lengths, x_proj.shape[0], x_proj.device)
    h, c, outputs, saved, cells = h0, c0, [], [], []
    for t, gx in enumerate(x_proj.unbind(0)):
        gh = h @ w_hh.t() if b_hh is None else torch.addmm(b_hh, h, w_hh.t())
        h_new, c_new, keep = spec.forward(gx, gh, h, c)
        valid = None if mask is None else mask[t]
        h, c = _held(valid, h_new, h), _held(valid, c_new, c)
        outputs.append(h_new if valid is None else h_new.masked_fill(~valid, 0.0))
        if training:
            saved.append(keep)
            cells.append(c)
    empty = x_proj.new_empty(0)
    saved_all = torch.stack(saved) if training and spec.saved else empty
    cells_all = torch.stack(cells) if training and spec.states == 2 else empty
    return [torch.stack(outputs), h, c if spec.states == 2 else empty, saved_all, cells_all]


def backward(cell: str, d_out: Tensor, d_h_n: Tensor, d_c_n: Tensor | None, h0: Tensor, c0: Tensor | None,
             w_hh: Tensor, has_bias: bool, out: Tensor, cells: Tensor, saved: Tensor,
             lengths: Tensor | None) -> list[Tensor | None]:
    spec = BY_NAME[cell]
    steps = out.shape[0]
    mask = None if lengths is None else valid_mask(lengths, steps, out.device)
    dh, dc = d_h_n, d_c_n if spec.states == 2 else None
    dgx_steps, dgh_steps = [None] * steps, [None] * steps
    for t in range(steps - 1, -1, -1):
        h_prev = h0 if t == 0 else out[t - 1]
        c_prev = None if dc is None else (c0 if t == 0 else cells[t - 1])
        c_new = None if dc is None else cells[t]
        dgx, dgh, direct, dc_prev = spec.backward(dh + d_out[t], dc, h_prev, c_prev, out[t], c_new,
                                                  saved[t] if spec.saved else None)
        if mask is not None:
            dgx, dgh = dgx.masked_fill(~mask[t], 0.0), dgh.masked_fill(~mask[t], 0.0)
            direct = torch.where(mask[t], direct, dh)
            dc_prev = _held(mask[t], dc_prev, dc)
        dgx_steps[t], dgh_steps[t], dc = dgx, dgh, dc_prev
        dh = torch.addmm(direct, dgh, w_hh)
    dgh_all = torch.stack(dgh_steps)
    h_prev_all = torch.cat([h0.unsqueeze(0), out[:-1]])
    d_w_hh = dgh_all.flatten(0, 1).t() @ h_prev_all.flatten(0, 1)
    d_b_hh = dgh_all.sum((0, 1)) if has_bias else None
    return [torch.stack(dgx_steps), dh, dc, d_w_hh, d_b_hh]
