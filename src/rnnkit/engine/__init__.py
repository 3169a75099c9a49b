"""The fused recurrent engine: hand-derived backpropagation through time for gated cells.

``scan`` is a drop-in for ``rnnkit.loop.scan`` (same arguments, same results) that runs the
recurrence of a whole sequence as one autograd node; ``recur`` is ``loop.recur`` using it. Forward stores only what backward needs (for the
GRU: r, z, n and W_hn h + b_hn per step; for the Elman cell: nothing beyond the outputs; for the
LSTM: its gates, tanh(c) and c); backward
does one GEMM per step and computes the recurrent weight gradient as one GEMM over all steps. The
input projection stays outside as a single ``F.linear`` over all steps, so autograd's own GEMMs
give the input and input-weight gradients.

The loops are C++ (``csrc/engine.cpp``), compiled on first use; without a compiler the same loops run
in PyTorch (``python_engine``). See ``docs/engine.md`` for adding a cell.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnkit.cells.base import Params, RecurrentCell, State
from rnnkit.engine import _build, python_engine
from rnnkit.engine.cells import BY_NAME, ELMAN_RELU, ELMAN_TANH, GRU, LSTM, EngineCell
from rnnkit import loop

DTYPES = (torch.float32, torch.float64)


#: The engine's cells by the name of the torch kernel computing the same math (``RecurrentCell.torch_kernel``).
BY_KERNEL = {"GRU": GRU, "LSTM": LSTM, "RNN_TANH": ELMAN_TANH, "RNN_RELU": ELMAN_RELU}


def engine_cell(cell: type[RecurrentCell], options: dict) -> EngineCell | None:
    """The engine's description of ``cell`` with these step options, or ``None`` if it has none."""
    return BY_KERNEL.get(cell.torch_kernel(options))


def implementation(kind: str = "auto"):
    """``'cpp'`` (compiled, built on first use), ``'python'`` (the fallback) or ``'auto'`` (C++ if it builds)."""
    if kind == "python":
        return python_engine
    compiled = _build.extension()
    if compiled is None and kind == "cpp":
        raise RuntimeError("the C++ engine is not available here; see the warning emitted when it failed to build")
    return compiled or python_engine


class FusedRecurrence(torch.autograd.Function):
    """One autograd node for a whole sequence: ``(x_proj, h0, c0, w_hh, b_hh) -> (out, h_n, c_n)``.

    ``c0`` is ``None`` for single-state cells, whose ``c_n`` is then an empty tensor.
    """

    @staticmethod
    def forward(ctx, spec: EngineCell, impl, x_proj, h0, c0, w_hh, b_hh, lengths):
        out, h_n, c_n, saved, cells = impl.forward(spec.name, x_proj, h0, c0, w_hh, b_hh, lengths, True)
        ctx.save_for_backward(h0, c0, w_hh, out, cells, saved)
        ctx.spec, ctx.impl, ctx.lengths, ctx.has_bias = spec, impl, lengths, b_hh is not None
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h_n, d_c_n):
        h0, c0, w_hh, out, cells, saved = ctx.saved_tensors
        d_x, d_h0, d_c0, d_w, d_b = ctx.impl.backward(
            ctx.spec.name, d_out, d_h_n, d_c_n if c0 is not None else None, h0, c0, w_hh, ctx.has_bias, out,
            cells, saved, ctx.lengths,
        )
        return None, None, d_x, d_h0, d_c0 if c0 is not None else None, d_w, d_b if ctx.has_bias else None, None


def run(spec: EngineCell, x_proj: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None,
        lengths: Tensor | None = None, impl=None) -> tuple[Tensor, State]:
    """The recurrence over time-major ``x_proj`` from ``state`` (``(h0,)`` or ``(h0, c0)``).

    Returns ``(out, final_state)``, differentiable in all tensors.
    """
    impl = impl or implementation()
    # The C++ loops read raw row-major buffers; contiguous() is free for the usual, contiguous, case.
    # Under autocast the input projection arrives in bfloat16/float16: the recurrence itself runs in
    # the weights' precision (the cast is differentiable, so gradients flow back in the lower one).
    dtype = w_hh.dtype
    x_proj, w_hh = x_proj.to(dtype).contiguous(), w_hh.contiguous()
    h0 = state[0].to(dtype).contiguous()
    c0 = state[1].to(dtype).contiguous() if spec.states == 2 else None
    tensors = [t for t in (x_proj, h0, c0, w_hh, b_hh) if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        out, h_n, c_n = FusedRecurrence.apply(spec, impl, x_proj, h0, c0, w_hh, b_hh, lengths)
    else:
        out, h_n, c_n, _, _ = impl.forward(spec.name, x_proj, h0, c0, w_hh, b_hh, lengths, False)
    return out, (h_n, c_n) if spec.states == 2 else (h_n,)


def scan(
    cell: type[RecurrentCell],
    x_proj: Tensor,
    state: State,
    params: Params,
    *,
    lengths: Tensor | None = None,
    options: dict | None = None,
) -> tuple[Tensor, State]:
    """``rnnkit.loop.scan`` on the engine; same arguments and results."""
    spec = engine_cell(cell, options or {})
    if spec is None:
        raise ValueError(f"the fused engine has no kernel for {cell.__name__}")
    return run(spec, x_proj, state, params["weight_hh"], params.get("bias_hh") if spec.uses_hh_bias else None, lengths)


#: ``rnnkit.loop.recur`` with the engine's ``scan``: same arguments and results.
recur = partial(loop.recur, scan=scan)


__all__ = ["EngineCell", "FusedRecurrence", "BY_NAME", "BY_KERNEL", "DTYPES", "engine_cell", "implementation", "run", "scan", "recur"]
