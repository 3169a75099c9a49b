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

The node is differentiable twice and more: a backward asked for a graph of the gradient
(``create_graph=True``) re-runs the recurrence in plain PyTorch ops and differentiates that. Under
torch.func transforms, forward-mode AD, ``torch.jit.trace`` and ``torch.compile``/``torch.export``,
which cannot see into the C++ loops, ``run`` computes the same recurrence in plain PyTorch ops (see
``transform_active``).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor
from torch.autograd import forward_ad

from rnnkit.cells.base import Params, RecurrentCell, State
from rnnkit.engine import _build, python_engine
from rnnkit.engine.cells import BY_NAME, ELMAN_RELU, ELMAN_TANH, GRU, LN_GRU, LN_LSTM, LSTM, PEEPHOLE_LSTM, EngineCell
from rnnkit import loop

DTYPES = (torch.float32, torch.float64)


#: The engine's cells by the name of the torch kernel computing the same math (``RecurrentCell.torch_kernel``).
BY_KERNEL = {"GRU": GRU, "LSTM": LSTM, "RNN_TANH": ELMAN_TANH, "RNN_RELU": ELMAN_RELU}


def engine_cell(cell: type[RecurrentCell], options: dict) -> EngineCell | None:
    """The engine's description of ``cell`` with these step options, or ``None`` if it has none.

    A cell names its engine kernel with the class attribute ``engine_kernel`` (read from the class that
    sets it, like ``torch_kernels``: a subclass changing the math must not inherit it); otherwise the
    classic cells map through the torch kernel computing the same math."""
    name = cell.__dict__.get("engine_kernel")
    if name is not None:
        return BY_NAME.get(name)
    return BY_KERNEL.get(cell.torch_kernel(options))


def implementation(kind: str = "auto"):
    """``'cpp'`` (compiled, built on first use), ``'python'`` (the fallback) or ``'auto'`` (C++ if it builds)."""
    if kind == "python":
        return python_engine
    compiled = _build.extension()
    if compiled is None and kind == "cpp":
        raise RuntimeError("the C++ engine is not available here; see the warning emitted when it failed to build")
    return compiled or python_engine


def transform_active(*tensors: Tensor | None) -> str | None:
    """Why the fused node cannot run now, or ``None`` when it can.

    ``'compile'``: ``torch.compile`` or ``torch.export`` is tracing (their fake tensors hold no data
    for the C++ loops); ``'trace'``: ``torch.jit.trace`` (it would record the node's result as a
    constant); ``'functorch'``: a torch.func transform (``grad``, ``vmap``, ``jacrev``, ...) is active,
    or one of ``tensors`` is batched by the older ``torch._vmap_internals.vmap`` (which gradcheck's
    batched check uses, with no torch.func transform active); the C++ loops cannot read wrapped
    tensors. ``'forward_ad'``: a ``torch.autograd.forward_ad.dual_level`` is open (the node has no
    forward-mode derivative). ``torch.compiler.is_compiling`` is asked first: dynamo folds it to a
    constant, and would refuse the private functorch queries.
    """
    if torch.compiler.is_compiling():
        return "compile"
    if torch.jit.is_tracing():
        return "trace"
    if _functorch_active():
        return "functorch"
    for tensor in tensors:
        if tensor is not None and _legacy_batched(tensor):
            return "functorch"
    if forward_ad._current_level >= 0:
        return "forward_ad"
    return None


_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", lambda: False)
# torch.func's own wrapped tensors come with an active transform; the older vmap's do not.
_legacy_batched = getattr(getattr(torch._C, "_functorch", None), "is_legacy_batchedtensor", lambda tensor: False)


class FusedRecurrence(torch.autograd.Function):
    """One autograd node for a whole sequence: ``(x_proj, h0, c0, w_hh, b_hh) -> (out, h_n, c_n)``.

    ``c0`` is ``None`` for single-state cells, whose ``c_n`` is then an empty tensor. ``rmask`` and
    ``zone`` are the recurrent regularisers' masks (``mask_inputs``), constants of the node; ``w_hr``
    the LSTM's projection (``proj_size``), an input like ``w_hh``; ``params`` the cell's own per-unit
    parameters (``EngineCell.cell_params``, e.g. the peepholes), an input too.

    Backward runs the C++ (or PyTorch) adjoint loop. When a graph of the gradient is asked for
    (``create_graph=True``: double backward, gradient penalties, ``gradgradcheck``) grad mode is on
    inside backward; the gradients are then those of the same recurrence re-run in plain PyTorch ops
    (``python_engine.forward``, differentiable) from the node's inputs, so they are differentiable in
    turn. ``source``, if given, is a function recomputing ``x_proj`` differentiably from tensors that
    are kept alive anyway (the layer input and the input weights, which the input projection's own
    node saves), so that the node need not keep ``x_proj``; without it ``x_proj`` is saved.
    """

    @staticmethod
    def forward(ctx, spec: EngineCell, impl, x_proj, h0, c0, w_hh, b_hh, lengths, source=None, rmask=None,
                zone=None, w_hr=None, params=None):
        out, h_n, c_n, saved, cells = impl.forward(spec.name, x_proj, h0, c0, w_hh, b_hh, lengths, True, rmask, zone,
                                                   w_hr, params)
        ctx.save_for_backward(h0, c0, w_hh, b_hh, out, cells, saved, None if source is not None else x_proj, w_hr,
                              params)
        ctx.spec, ctx.impl, ctx.lengths, ctx.has_bias, ctx.source = spec, impl, lengths, b_hh is not None, source
        ctx.rmask, ctx.zone = rmask, zone
        return out, h_n, c_n

    @staticmethod
    def backward(ctx, d_out, d_h_n, d_c_n):
        h0, c0, w_hh, b_hh, out, cells, saved, x_proj, w_hr, params = ctx.saved_tensors
        rest = (None, None, None, None)  # lengths, source, rmask, zone
        # create_graph=True wants a differentiable gradient; a transform over backward (vmap over the
        # gradient: gradcheck's batched check, jacrev of a gradient) hands in wrapped gradients the C++
        # loops cannot read. Both differentiate the plain re-run instead.
        if torch.is_grad_enabled() or transform_active(d_out, d_h_n, d_c_n) is not None:
            x_proj = ctx.source() if x_proj is None else x_proj
            *grads, d_w_hr, d_params = _differentiable_backward(ctx, (x_proj, h0, c0, w_hh, b_hh, w_hr, params),
                                                                (d_out, d_h_n, d_c_n))
            return (None, None, *grads, *rest, d_w_hr, d_params)
        d_x, d_h0, d_c0, d_w, d_b, d_w_hr, d_params = ctx.impl.backward(
            ctx.spec.name, d_out, d_h_n, d_c_n if c0 is not None else None, h0, c0, w_hh, ctx.has_bias, out,
            cells, saved, ctx.lengths, ctx.rmask, ctx.zone, w_hr, params,
        )
        return (None, None, d_x, d_h0, d_c0 if c0 is not None else None, d_w, d_b if ctx.has_bias else None, *rest,
                d_w_hr if w_hr is not None else None, d_params if params is not None else None)


def _differentiable_backward(ctx, inputs, grads) -> list[Tensor | None]:
    """The gradients of ``FusedRecurrence`` with respect to ``inputs``, as differentiable tensors.

    ``torch.func.vjp`` of the recurrence re-run in PyTorch ops: differentiable by the surrounding
    autograd (create_graph) and by outer transforms alike, and it needs no ``requires_grad_`` (which
    transforms forbid) on inputs that carry no graph.
    """
    flags = ctx.needs_input_grad
    needed = (*flags[2:7], len(flags) > 11 and flags[11], len(flags) > 12 and flags[12])
    spec, lengths, states = ctx.spec, ctx.lengths, ctx.spec.states

    def recurrence(*wanted):
        given = iter(wanted)
        x_proj, h0, c0, w_hh, b_hh, w_hr, params = [next(given) if need else t for t, need in zip(inputs, needed)]
        out, h_n, c_n, _, _ = python_engine.forward(spec.name, x_proj.to(w_hh.dtype), h0, c0, w_hh, b_hh, lengths,
                                                    False, ctx.rmask, ctx.zone, w_hr, params)
        return (out, h_n, c_n) if states == 2 else (out, h_n)

    _, pullback = torch.func.vjp(recurrence, *[t for t, need in zip(inputs, needed) if need])
    found = iter(pullback(tuple(grads[:3 if states == 2 else 2])))
    return [next(found) if need else None for need in needed]


def mask_inputs(masks: loop.Masks, regularization: loop.Regularization | None,
                dtype: torch.dtype) -> tuple[Tensor | None, Tensor | None]:
    """The regularisers' masks as the loops take them: ``(rmask, zone)``.

    ``rmask``: the recurrent-dropout mask ``(batch, H)`` (scaled), or None. ``zone``: zoneout's weight of
    the old state, ``(steps, batch, H + E)`` (the masks of ``h`` then ``c``, 0 or 1) in training, the
    single value ``p`` in evaluation (the expectation), or None.
    """
    rmask = None if masks.recurrent is None else masks.recurrent.to(dtype).contiguous()
    if masks.zoneout is not None:
        zone = torch.cat([m.to(dtype) for m in masks.zoneout], dim=2).contiguous()
    elif regularization is not None and regularization.zoneout > 0:
        zone = torch.full((1,), regularization.zoneout, dtype=dtype)
    else:
        zone = None
    return rmask, zone


def run(spec: EngineCell, x_proj: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None,
        lengths: Tensor | None = None, impl=None, source=None, rmask: Tensor | None = None,
        zone: Tensor | None = None, w_hr: Tensor | None = None, params: Tensor | None = None) -> tuple[Tensor, State]:
    """The recurrence over time-major ``x_proj`` from ``state`` (``(h0,)`` or ``(h0, c0)``).

    Returns ``(out, final_state)``, differentiable in all tensors (to any order). Under a transform
    or tracer (``transform_active``) the loop runs in PyTorch ops without the fused node, which those
    see through. ``source``: see ``FusedRecurrence``; ``rmask``, ``zone``: see ``mask_inputs``;
    ``w_hr``: the LSTM's projection (``proj_size``), or None; ``params``: the cell's own per-unit
    parameters (``EngineCell.cell_params``, concatenated), or None.
    """
    if transform_active(x_proj, *state, w_hh) is not None:
        impl, source = python_engine, None
        plain = True
    else:
        impl = impl or implementation()
        plain = False
    # The C++ loops read raw row-major buffers; contiguous() is free for the usual, contiguous, case.
    # Under autocast the input projection arrives in bfloat16/float16: the recurrence itself runs in
    # the weights' precision (the cast is differentiable, so gradients flow back in the lower one).
    dtype = w_hh.dtype
    x_proj, w_hh = x_proj.to(dtype).contiguous(), w_hh.contiguous()
    b_hh = None if b_hh is None else b_hh.contiguous()  # a parametrization may hand over a strided view
    lengths = None if lengths is None else lengths.contiguous()  # e.g. table[:, 0]
    w_hr = None if w_hr is None else w_hr.contiguous()
    params = None if params is None else params.to(dtype).contiguous()
    h0 = state[0].to(dtype).contiguous()
    c0 = state[1].to(dtype).contiguous() if spec.states == 2 else None
    tensors = [t for t in (x_proj, h0, c0, w_hh, b_hh, w_hr, params) if t is not None]
    extras = (rmask, zone, w_hr, params)
    if plain:  # python_engine's forward is plain PyTorch ops: autograd and the transforms differentiate it
        out, h_n, c_n, _, _ = python_engine.forward(spec.name, x_proj, h0, c0, w_hh, b_hh, lengths, False, *extras)
    elif torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        if source is not None and torch.is_autocast_enabled(x_proj.device.type):
            source = None  # the projection ran in autocast's precision: keep it rather than recompute it
        out, h_n, c_n = FusedRecurrence.apply(spec, impl, x_proj, h0, c0, w_hh, b_hh, lengths, source, *extras)
    else:
        out, h_n, c_n, _, _ = impl.forward(spec.name, x_proj, h0, c0, w_hh, b_hh, lengths, False, *extras)
    return out, (h_n, c_n) if spec.states == 2 else (h_n,)


def scan(
    cell: type[RecurrentCell],
    x_proj: Tensor,
    state: State,
    params: Params,
    *,
    lengths: Tensor | None = None,
    options: dict | None = None,
    source=None,
    regularization: loop.Regularization | None = None,
) -> tuple[Tensor, State]:
    """``rnnkit.loop.scan`` on the engine; same arguments and results (``source``: see ``FusedRecurrence``).

    The regularisers' masks are drawn by ``loop.draw_masks``, as the reference loop draws them: the
    same seed gives the same masks, hence the same results, on both.
    """
    spec = engine_cell(cell, options or {})
    if spec is None:
        raise ValueError(f"the fused engine has no kernel for {cell.__name__}")
    rmask, zone = mask_inputs(loop.draw_masks(regularization, x_proj.shape[0], state), regularization,
                              params["weight_hh"].dtype)
    if zone is not None and not spec.zoneout:
        raise ValueError(f"the fused engine has no zoneout for {cell.__name__}; use the reference loop")
    return run(spec, x_proj, state, params["weight_hh"], params.get("bias_hh") if spec.uses_hh_bias else None, lengths,
               source=source, rmask=rmask, zone=zone, w_hr=params.get("weight_hr"),
               params=_cell_params(spec, params))


def _cell_params(spec: EngineCell, params: Params) -> Tensor | None:
    """The cell's own per-unit parameters, concatenated.

    A ``bias=False`` layer lacks its shifts and biases: each missing one is zeros of the shape of the
    parameter before it (a gain, or another missing shift), which is its own shape in every cell."""
    if not spec.cell_params:
        return None
    found = []
    for name in spec.cell_params:
        found.append(params[name] if name in params else found[-1].new_zeros(found[-1].shape))
    return torch.cat(found)


def recur(
    cell: type[RecurrentCell],
    x: Tensor,
    state: State,
    params: Params,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    options: dict | None = None,
    regularization: loop.Regularization | None = None,
) -> tuple[Tensor, State]:
    """``rnnkit.loop.recur`` with the engine's ``scan``: same arguments and results.

    The node is told how to recompute the input projection from ``x`` and ``params`` (which the
    projection's own autograd node keeps), so it does not keep ``x_proj`` for a double backward.
    Within ``loop.observing`` it is ``loop.recur`` itself, which then runs step by step.
    """
    if loop.active_observer() is not None:
        return loop.recur(cell, x, state, params, lengths=lengths, reverse=reverse, options=options, scan=scan,
                          regularization=regularization)
    if reverse:
        x = loop.reverse_padded(x, lengths)
    x_proj = cell.input_projection(x, params)
    output, state = scan(cell, x_proj, state, params, lengths=lengths, options=options,
                         source=partial(cell.input_projection, x, params), regularization=regularization)
    if reverse:
        output = loop.reverse_padded(output, lengths)
    return output, state


__all__ = ["EngineCell", "FusedRecurrence", "BY_NAME", "BY_KERNEL", "DTYPES", "engine_cell", "implementation",
           "mask_inputs", "run", "scan", "recur", "transform_active"]
