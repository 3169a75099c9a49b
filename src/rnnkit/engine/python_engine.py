"""The engine's loops in plain PyTorch: the fallback when the C++ engine cannot be built.

Same signatures and the same math as ``csrc/engine.cpp`` (``forward`` and ``backward``), one PyTorch
op per gate instead of fused C++ loops.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.engine.cells import BY_NAME
from rnnkit.loop import valid_mask


def forward(cell: str, x_proj: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, lengths: Tensor | None,
            training: bool) -> list[Tensor]:
    spec = BY_NAME[cell]
    mask = None if lengths is None else valid_mask(lengths, x_proj.shape[0], x_proj.device)
    state, outputs, saved = h0, [], []
    for t, gx in enumerate(x_proj.unbind(0)):
        gh = state @ w_hh.t() if b_hh is None else torch.addmm(b_hh, state, w_hh.t())
        h_new, keep = spec.forward(gx, gh, state)
        if mask is not None:
            state = torch.where(mask[t], h_new, state)
            h_new = h_new.masked_fill(~mask[t], 0.0)
        else:
            state = h_new
        outputs.append(h_new)
        if training and keep is not None:
            saved.append(keep)
    saved_all = torch.stack(saved) if saved else x_proj.new_empty(0)
    return [torch.stack(outputs), state, saved_all]


def backward(cell: str, d_out: Tensor, d_state: Tensor, h0: Tensor, w_hh: Tensor, has_bias: bool, out: Tensor,
             saved: Tensor, lengths: Tensor | None) -> list[Tensor | None]:
    spec = BY_NAME[cell]
    steps = out.shape[0]
    mask = None if lengths is None else valid_mask(lengths, steps, out.device)
    dh, dgx_steps, dgh_steps = d_state, [None] * steps, [None] * steps
    for t in range(steps - 1, -1, -1):
        h_prev = h0 if t == 0 else out[t - 1]
        g = dh + d_out[t]
        dgx, dgh, direct = spec.backward(g, h_prev, out[t], saved[t] if spec.saved else None)
        if mask is not None:
            dgx, dgh = dgx.masked_fill(~mask[t], 0.0), dgh.masked_fill(~mask[t], 0.0)
            direct = torch.where(mask[t], direct, dh)
        dgx_steps[t], dgh_steps[t] = dgx, dgh
        dh = torch.addmm(direct, dgh, w_hh)
    dgh_all = torch.stack(dgh_steps)
    h_prev_all = torch.cat([h0.unsqueeze(0), out[:-1]])
    d_w_hh = dgh_all.flatten(0, 1).t() @ h_prev_all.flatten(0, 1)
    d_b_hh = dgh_all.sum((0, 1)) if has_bias else None
    return [torch.stack(dgx_steps), dh, d_w_hh, d_b_hh]
