"""The engine's loops in plain PyTorch: the fallback when the C++ engine cannot be built.

Same signatures and the same math as ``csrc/engine.cpp`` (``forward`` and ``backward``), one PyTorch
op per gate instead of fused C++ loops. ``rmask`` and ``zone`` are the regularisers' masks as the
C++ loops take them (see ``rnnkit.engine.mask_inputs``): ``rmask (batch, H)`` multiplies the state
``W_hh`` reads; ``zone`` (``(steps, batch, H + E)`` or one value) is the weight of the old state in
``lerp(new, old, zone)`` after each step. ``w_hr (R, H)``: the LSTM's projection (torch.nn's
``weight_hr``), ``h = W_hr (o ⊙ tanh c)``; the state ``h`` then has ``R`` features, ``c`` still ``H``.
``params``: the cell's own per-unit parameters (``EngineCell.cell_params``, concatenated).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.engine.cells import BY_NAME, PARAM_GRADS
from rnnkit.loop import valid_mask


def _held(mask, new, old):
    return new if mask is None or new is None else torch.where(mask, new, old)


def _zone_weights(zone: Tensor | None, t: int, hidden: int) -> tuple[Tensor | None, Tensor | None]:
    """The zoneout weights of step ``t`` for ``h`` and ``c`` (one value in evaluation)."""
    if zone is None:
        return None, None
    if zone.numel() == 1:
        return zone.reshape(()), zone.reshape(())
    return zone[t, :, :hidden], zone[t, :, hidden:]


def forward(cell: str, x_proj: Tensor, h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None,
            lengths: Tensor | None, training: bool, rmask: Tensor | None = None,
            zone: Tensor | None = None, w_hr: Tensor | None = None, params: Tensor | None = None) -> list[Tensor]:
    spec = BY_NAME[cell]
    extra = () if params is None else (params,)
    mask = None if lengths is None else valid_mask(lengths, x_proj.shape[0], x_proj.device)
    h, c, outputs, saved, cells = h0, c0, [], [], []
    width = w_hh.shape[1]  # of h
    for t, gx in enumerate(x_proj.unbind(0)):
        read = h if rmask is None else h * rmask
        gh = read @ w_hh.t() if b_hh is None else torch.addmm(b_hh, read, w_hh.t())
        h_new, c_new, keep = spec.forward(gx, gh, h, c, *extra)
        if w_hr is not None:
            h_new = h_new @ w_hr.t()
        zone_h, zone_c = _zone_weights(zone, t, width)
        if zone_h is not None:
            h_new = torch.lerp(h_new, h, zone_h)
            c_new = None if c_new is None else torch.lerp(c_new, c, zone_c)
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
             lengths: Tensor | None, rmask: Tensor | None = None, zone: Tensor | None = None,
             w_hr: Tensor | None = None, params: Tensor | None = None) -> list[Tensor | None]:
    spec = BY_NAME[cell]
    extra = () if params is None else (params,)
    steps, width = out.shape[0], w_hh.shape[1]
    g_history = []
    mask = None if lengths is None else valid_mask(lengths, steps, out.device)
    dh, dc = d_h_n, d_c_n if spec.states == 2 else None
    dgx_steps, dgh_steps, row_steps = [None] * steps, [None] * steps, [None] * steps
    for t in range(steps - 1, -1, -1):
        h_prev = h0 if t == 0 else out[t - 1]
        c_prev = None if dc is None else (c0 if t == 0 else cells[t - 1])
        c_new = None if dc is None else cells[t]
        g, gc = dh + d_out[t], dc
        zone_h, zone_c = _zone_weights(zone, t, width)
        if zone_h is not None:  # x = lerp(x_new, x_old, w): dL/dx_new = (1 - w) g, dL/dx_old gets w g
            g_new, gc_new = g * (1 - zone_h), None if gc is None else gc * (1 - zone_c)
        else:
            g_new, gc_new = g, gc
        if w_hr is not None:  # h = W_hr p with p = o * tanh(c): dL/dp = g W_hr (the LSTM has no direct part)
            g_history.append(g_new if mask is None else g_new.masked_fill(~mask[t], 0.0))
            dgx, dgh, _, dc_prev = spec.backward(g_new @ w_hr, gc_new, h_prev, c_prev, None, c_new, saved[t])
            direct = torch.zeros_like(g)
        else:
            dgx, dgh, direct, dc_prev, *rows = spec.backward(g_new, gc_new, h_prev, c_prev, out[t], c_new,
                                                             saved[t] if spec.saved else None, *extra)
            row_steps[t] = rows  # what a cell's parameter gradients need beyond dgx (LN-LSTM: dL/dy)
        if zone_h is not None:
            direct = direct + zone_h * g
            dc_prev = None if dc_prev is None else dc_prev + zone_c * gc
        if mask is not None:
            dgx, dgh = dgx.masked_fill(~mask[t], 0.0), dgh.masked_fill(~mask[t], 0.0)
            if row_steps[t]:
                row_steps[t] = [row.masked_fill(~mask[t], 0.0) for row in row_steps[t]]
            direct = torch.where(mask[t], direct, dh)
            dc_prev = _held(mask[t], dc_prev, dc)
        dgx_steps[t], dgh_steps[t], dc = dgx, dgh, dc_prev
        dh = torch.addmm(direct, dgh, w_hh) if rmask is None else direct + (dgh @ w_hh) * rmask
    dgh_all = torch.stack(dgh_steps)
    h_prev_all = torch.cat([h0.unsqueeze(0), out[:-1]])
    if rmask is not None:
        h_prev_all = h_prev_all * rmask  # what W_hh read
    d_w_hh = dgh_all.flatten(0, 1).t() @ h_prev_all.flatten(0, 1)
    d_b_hh = dgh_all.sum((0, 1)) if has_bias else None
    d_w_hr = None
    if w_hr is not None:  # Σ_t g_tᵀ p_t, with p = o * tanh(c) from the LSTM's saved gates (blocks 3 and 4)
        _, _, _, o, tanh_cell = saved.chunk(5, dim=2)
        p = o * tanh_cell if mask is None else (o * tanh_cell).masked_fill(~mask, 0.0)
        d_w_hr = torch.stack(g_history[::-1]).flatten(0, 1).t() @ p.flatten(0, 1)
    d_params = None
    if params is not None:
        dgx_all = torch.stack(dgx_steps)
        c_prev_all = None if c0 is None else torch.cat([c0.unsqueeze(0), cells[:-1]])
        rows = [torch.stack(per_step) for per_step in zip(*row_steps)]
        d_params = PARAM_GRADS[cell](dgx_all, c_prev_all, saved, *rows)
    return [torch.stack(dgx_steps), dh, dc, d_w_hh, d_b_hh, d_w_hr, d_params]
