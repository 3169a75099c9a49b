r"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?",
arXiv:2410.01201): gates that read the input only, so a whole sequence runs as one scan.

Formulation: the paper's log-space version (its appendix), used alike by the step and the scans:

.. math::
    g(v) &= v + \tfrac12 \text{ if } v \ge 0 \text{ else } \sigma(v) \;=\; \max(v + \tfrac12, \sigma(v)) > 0 \\[4pt]
    \textbf{minGRU:}\quad z_t &= \sigma(W_z x_t + b_z), \quad \tilde h_t = g(W_h x_t + b_h), \quad
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t \\[4pt]
    \textbf{minLSTM:}\quad f_t &= \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad
        \tilde h_t = g(W_h x_t + b_h), \\
    h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde h_t, \qquad
    f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}

The candidate goes through the paper's ``g``, not the plain ``W_h x + b_h`` of its main text: ``g``
keeps ``h̃`` positive so that the scan can run on logarithms, and the step-by-step ``recurrence`` uses
the same ``g``, so the step and every scan compute one function. Unlike the paper's parallel code
the initial state is used as given (any sign; not ``g(h_0)``), exactly as the step uses it.

Both cells are one *gated interpolation* ``h_t = lerp(h_{t-1}, c_t, w_t) = (1 - w_t) h_{t-1} + w_t c_t``
with ``c = g(v)`` and ``w = σ(k)`` computed from the input only: minGRU ``k = W_z x + b_z``; minLSTM
``k = d = softplus(-k_f) - softplus(-k_i) = log(i / f)``, since ``i' = σ(d)`` and ``f' = σ(-d) = 1 - i'``
(this form of the normalised gates stays finite when both gates saturate at 0, where ``f / (f + i)``
is ``0 / 0``). The state after a sequence's length does not change (its final state is the one at its
last valid step) and the outputs there are zero.

Two scans compute it, selected by the layers' ``scan=``:

* ``"log"``, :func:`log_linear_scan` -- the parallel scan in log space (Heinsen 2023). With
  ``a = 1 - w ∈ (0, 1)``, ``b = w c > 0`` and ``A_t = a_1 ⋯ a_t``,

  .. math::
      h_t = A_t \, h_0 + \sum_{s \le t} \frac{A_t}{A_s} b_s
          = A_t \, h_0 + \exp\bigl(\log A_t + \operatorname{logcumsumexp}_{s \le t}(\log b_s - \log A_s)\bigr)

  ``log A`` is a cumulative sum of ``log a``, so no product underflows or overflows however small
  the ``a`` are; the ``h_0`` term, which may be negative, stays out of the logarithms (a plain
  product ``A_t h_0``). The logarithms come straight from the pre-activations
  (``log a = -softplus(k)``, ``log w = -softplus(-k)``, ``log g``), so saturated gates give large
  finite logarithms, never ``log 0``. *Stability over long sequences:* ``log A_t`` and
  ``log b_s - log A_s`` grow with the number of steps, and adding them back loses
  ``|log A_t| · ε`` of relative precision (``ε`` the dtype's). So time is cut into chunks of
  :data:`SCAN_CHUNK` steps, with ``log A`` restarting at each chunk: the error is bounded by the chunk
  length, not the sequence length. The chunks' end states are combined by a doubling scan over the
  chunks in linear space (products of ``a ∈ (0, 1)`` and sums of positive terms: nothing cancels or
  overflows). Parallel over time and differentiable by autograd: the path for GPUs.
* ``"fused"``, :func:`fused_gated_scan` -- the same recurrence as one time loop of fused ``lerp`` s in
  a custom autograd function whose backward is the adjoint recurrence run once backwards: one small
  cache-resident operation per step each way, no autograd graph per step, and the outputs and the
  pre-activations as the only saved tensors. Time is cut into chunks of :data:`FUSED_CHUNK` steps
  (the state, and backward's gradient, carried across), so ``w`` and ``c`` exist one chunk at a time
  and the working memory is bounded by the chunk. It never
  leaves linear space and only interpolates, so it is as stable as the step itself. On CPUs it is several times faster than the log-space scan (whose
  ``logcumsumexp`` is scalar code there); on GPUs one launch per step makes it slow. A double
  backward differentiates the same lerps in plain ops; under torch.func transforms, tracing and
  export those plain lerps run instead of the fused function.
* ``"auto"`` (the default) takes ``"fused"`` on CPU and ``"log"`` elsewhere.

``recurrence`` remains the one-step reference and the generation path; the loop (``rnnkit.loop``)
calls ``parallel_scan`` for whole sequences.

Parameters (one layer and direction): ``weight_ih`` ``(G*H, input_size)`` and, with ``bias=True``,
``bias_ih`` ``(G*H,)``, ``G`` gate blocks stacked in the rows (minGRU ``z, h̃``; minLSTM
``f, i, h̃``). There is no recurrent weight: no ``weight_hh``, no ``bias_hh``.
"""

from __future__ import annotations


import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit import _checks
from rnnkit.cells.base import ParameterSpec, Params, RecurrentCell, State
from rnnkit.engine import transform_active
from rnnkit.nn import _LAYER_ARGS, RecurrentLayer

#: Time steps per chunk of the log-space scan (see the module docstring).
SCAN_CHUNK = 16
#: Time steps per chunk of the fused scan (:func:`fused_gated_scan`): its working memory is one chunk's
#: (``None``: the whole sequence as one chunk).
FUSED_CHUNK = 256
#: The values of the layers' ``scan=``.
SCANS = ("auto", "log", "fused")


def g(v: Tensor) -> Tensor:
    """The paper's positive candidate activation: ``v + 0.5`` for ``v >= 0``, else ``sigmoid(v)``.

    Computed as ``max(v + 0.5, sigmoid(v))``, the same function (``sigmoid(v) < v + 0.5`` exactly
    when ``v > 0``; equal at 0) in three passes instead of four.
    """
    return torch.maximum(v + 0.5, torch.sigmoid(v))


def log_g(v: Tensor) -> Tensor:
    """``log g(v)`` without forming ``g``: ``log(v + 0.5)`` for ``v >= 0``, else ``-softplus(-v)``."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


def _apply_lengths(output: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """Zero the outputs past each length; the final state is the output at each last valid step.

    Steps past a length come after all of that sequence's valid steps, so no valid output depends
    on them: the scans run over them unmasked.
    """
    if lengths is None:
        return output, output[-1]
    steps, batch, hidden = output.shape
    last = (lengths - 1).to(output.device)
    final = output.gather(0, last.view(1, -1, 1).expand(1, batch, hidden)).squeeze(0)
    valid = torch.arange(steps, device=output.device).unsqueeze(1) < lengths.to(output.device).unsqueeze(0)
    return output.masked_fill(~valid.unsqueeze(2), 0.0), final


def _doubling_scan(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Inclusive prefixes of ``x_k = a_k x_{k-1} + b_k`` along dim 0 as ``(A_k, B_k)``: ``x_k = A_k x_{-1} + B_k``.

    Hillis-Steele doubling in linear space: ``log2(len)`` rounds of products and sums.
    """
    shift = 1
    while shift < a.shape[0]:
        b = torch.cat([b[:shift], b[shift:] + a[shift:] * b[:-shift]])
        a = torch.cat([a[:shift], a[shift:] * a[:-shift]])
        shift *= 2
    return a, b


def log_linear_scan(log_a: Tensor, log_b: Tensor, h0: Tensor, *, lengths: Tensor | None = None,
                    chunk: int = SCAN_CHUNK) -> tuple[Tensor, Tensor]:
    """All states of ``h_t = a_t h_{t-1} + b_t`` (``a_t, b_t > 0``) from their logarithms, in parallel.

    The chunked log-space scan of the module docstring, differentiable through torch's operations.

    Args:
        log_a, log_b: ``(steps, batch, hidden)`` logarithms of the coefficients and of the inputs.
        h0: ``(batch, hidden)`` initial state, any sign.
        lengths: optional CPU int64 ``(batch,)`` valid lengths; outputs past them are zero and the
            final state is the one at each sequence's last valid step.
        chunk: steps per chunk.

    Returns:
        ``(outputs (steps, batch, hidden), final (batch, hidden))``.
    """
    steps = log_a.shape[0]
    chunk = max(1, min(chunk, steps))
    count = -(-steps // chunk)
    pad = count * chunk - steps
    if pad:  # padded steps come after every real one and are cut off again: their values do not matter
        log_a = torch.cat([log_a, log_a.new_zeros((pad, *log_a.shape[1:]))])
        log_b = torch.cat([log_b, log_b.new_zeros((pad, *log_b.shape[1:]))])
    log_a = log_a.reshape(count, chunk, *log_a.shape[1:])
    log_b = log_b.reshape(count, chunk, *log_b.shape[1:])
    log_decay = log_a.cumsum(dim=1)  # log A_t from the chunk's start: in [-chunk * max|log a|, 0]
    local = torch.exp(log_decay + torch.logcumsumexp(log_b - log_decay, dim=1))  # from a zero chunk start
    decay = torch.exp(log_decay)
    if count > 1:  # each chunk's start state, from a doubling scan over the chunks' end states
        through, offset = _doubling_scan(decay[:-1, -1], local[:-1, -1])
        starts = torch.cat([h0.unsqueeze(0), through * h0 + offset])
    else:
        starts = h0.unsqueeze(0)
    output = (local + decay * starts.unsqueeze(1)).reshape(count * chunk, *h0.shape)[:steps]
    return _apply_lengths(output, lengths)


class _FusedGatedScan(torch.autograd.Function):
    """``h_t = lerp(h_{t-1}, g(v_t), σ(k_t))`` as one loop of fused lerps, with the adjoint loop as backward.

    With ``w = σ(k)``, ``c = g(v)`` and ``ḡ_t = dL/dh_t + (1 - w_{t+1}) ḡ_{t+1}`` (the total gradient
    reaching ``h_t``, one reverse loop): ``dL/dk_t = ḡ_t w_t (1 - w_t) (c_t - h_{t-1})``,
    ``dL/dv_t = ḡ_t w_t g'(v_t)`` with ``g' = 1`` where ``c >= 0.5`` (``v >= 0``) else ``c (1 - c)``,
    and ``dL/dh_0 = (1 - w_1) ḡ_1``. ``k`` and ``v`` arrive as the two halves of one tensor, and their
    gradients leave as one; that tensor is kept too, for a double backward.

    Time is cut into chunks of ``chunk`` steps (:data:`FUSED_CHUNK`; ``None``: one chunk). Forward
    carries the state from chunk to chunk (a chunk starts from the previous one's last output);
    backward walks the chunks from the last, carrying ``ḡ`` (a chunk's ``dL/dh_0`` is added to the
    gradient of the previous chunk's last output). The node keeps only ``pre``, ``h0`` and the outputs;
    ``w`` and ``c`` exist one chunk at a time, in forward and again (recomputed) in backward, so the
    memory beyond the node's inputs and outputs is bounded by the chunk, not the sequence. On CPU in
    float32/float64 each chunk's loops run in the fused engine's C++ extension
    (``gated_scan_forward``/``_backward``: each batch row's time loop on one thread, vectorised over
    units); otherwise (no compiler, other devices) in PyTorch ops (:func:`_chunk_forward`,
    :func:`_chunk_backward`). When a graph of the gradient is asked for (``create_graph=True``)
    backward differentiates :func:`_plain_gated_scan` instead, so the gradients are differentiable in turn.
    """

    @staticmethod
    def forward(ctx, pre: Tensor, h0: Tensor, chunk: int | None = None) -> Tensor:
        compiled = _compiled_scan(pre)
        pre, h0 = pre.contiguous(), h0.contiguous()
        steps = pre.shape[0]
        chunk = steps if chunk is None else chunk
        out = torch.empty((*pre.shape[:-1], pre.shape[-1] // 2), dtype=pre.dtype, device=pre.device)
        h = h0
        for start in range(0, steps, chunk):
            piece = slice(start, start + chunk)
            if compiled is not None:
                out[piece] = compiled.gated_scan_forward(pre[piece], h.contiguous())
            else:
                _chunk_forward(pre[piece], h, out[piece])
            h = out[min(start + chunk, steps) - 1]
        ctx.compiled, ctx.chunk = compiled, chunk
        ctx.save_for_backward(h0, out, pre)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        h0, out, pre = ctx.saved_tensors
        if torch.is_grad_enabled() or transform_active(grad_out) is not None:  # create_graph=True or a transform over
            # backward (vmap over the gradient, as gradcheck's batched check does): differentiate the plain loop
            return *_differentiable_backward(pre, h0, grad_out, ctx.needs_input_grad[:2]), None
        steps, chunk = out.shape[0], ctx.chunk
        grad_out = grad_out.contiguous()
        grad_pre = torch.empty_like(pre)
        carry = None  # ḡ reaching the last output of the chunk before, from the chunks after it
        for start in reversed(range(0, steps, chunk)):
            piece = slice(start, start + chunk)
            given = grad_out[piece]
            if carry is not None:
                given = given.clone()
                given[-1] += carry
            h_start = h0 if start == 0 else out[start - 1]
            if ctx.compiled is not None:
                grad_pre[piece], carry = ctx.compiled.gated_scan_backward(given, pre[piece], h_start.contiguous(),
                                                                          out[piece])
            else:
                carry = _chunk_backward(given, pre[piece], h_start, out[piece], grad_pre[piece])
        carry = torch.zeros_like(h0) if carry is None else carry  # no steps: h0 is the final state untouched
        return (grad_pre if ctx.needs_input_grad[0] else None, carry if ctx.needs_input_grad[1] else None, None)


def _chunk_forward(pre: Tensor, h0: Tensor, out: Tensor) -> None:
    """One chunk of :class:`_FusedGatedScan`'s forward in PyTorch ops, into ``out``."""
    k, v = pre.chunk(2, dim=-1)
    h = h0
    for w_t, c_t, out_t in zip(torch.sigmoid(k).unbind(0), g(v).unbind(0), out.unbind(0)):
        h = torch.lerp(h, c_t, w_t, out=out_t)


def _chunk_backward(grad_out: Tensor, pre: Tensor, h0: Tensor, out: Tensor, grad_pre: Tensor) -> Tensor:
    """One chunk of :class:`_FusedGatedScan`'s backward in PyTorch ops: writes ``grad_pre``, returns dL/dh0."""
    k, v = pre.chunk(2, dim=-1)
    w, c = torch.sigmoid(k), g(v)
    keep = 1 - w
    total = torch.empty(out.shape, dtype=out.dtype, device=out.device)
    totals, keeps, given = total.unbind(0), keep.unbind(0), grad_out.unbind(0)
    totals[-1].copy_(given[-1])
    for t in range(len(totals) - 2, -1, -1):
        torch.addcmul(given[t], keeps[t + 1], totals[t + 1], out=totals[t])
    grad_h0 = keep[0] * totals[0]
    weighted = total.mul_(w)  # ḡ w (total is not needed any more)
    grad_k, grad_v = grad_pre.chunk(2, dim=-1)
    torch.sub(c[0], h0, out=grad_k[0])
    torch.sub(c[1:], out[:-1], out=grad_k[1:])
    grad_k.mul_(weighted).mul_(keep)
    torch.addcmul(c, c, c, value=-1.0, out=grad_v)  # g'(v) = c (1 - c) = σ'(v) for v < 0 ...
    grad_v.masked_fill_(c >= 0.5, 1.0).mul_(weighted)  # ... and 1 for v >= 0
    return grad_h0


def _compiled_scan(pre: Tensor):
    """The fused engine's C++ extension when it can run this scan (CPU, float32/float64, built), else None:
    then :class:`_FusedGatedScan` runs its loops in PyTorch ops (the same lerps; its twin in the tests)."""
    if pre.device.type != "cpu" or pre.dtype not in (torch.float32, torch.float64):
        return None
    from rnnkit import engine

    implementation = engine.implementation()
    return implementation if hasattr(implementation, "gated_scan_forward") else None


def _plain_gated_scan(pre: Tensor, h0: Tensor) -> Tensor:
    """The outputs of :class:`_FusedGatedScan` (the same lerps) in plain differentiable ops.

    What runs under torch.func transforms, tracing and export, which cannot see through the fused
    function, and what its double backward differentiates.
    """
    k, v = pre.chunk(2, dim=-1)
    w, c = torch.sigmoid(k), g(v)
    h, outputs = h0, []
    for w_t, c_t in zip(w.unbind(0), c.unbind(0)):
        h = torch.lerp(h, c_t, w_t)
        outputs.append(h)
    return torch.stack(outputs)


def _differentiable_backward(pre: Tensor, h0: Tensor, grad_out: Tensor, needed) -> tuple[Tensor | None, ...]:
    """``torch.func.vjp`` of :func:`_plain_gated_scan`: differentiable by autograd and by outer transforms."""
    inputs = (pre, h0)

    def scan(*wanted):
        given = iter(wanted)
        return _plain_gated_scan(*[next(given) if need else t for t, need in zip(inputs, needed)])

    _, pullback = torch.func.vjp(scan, *[t for t, need in zip(inputs, needed) if need])
    found = iter(pullback(grad_out))
    return tuple(next(found) if need else None for need in needed)


def fused_gated_scan(pre: Tensor, h0: Tensor, *, lengths: Tensor | None = None,
                     chunk: int | None = FUSED_CHUNK) -> tuple[Tensor, Tensor]:
    """``h_t = (1 - σ(k_t)) h_{t-1} + σ(k_t) g(v_t)`` for all steps, by a fused time loop.

    Args:
        pre: ``(steps, batch, 2 * hidden)``: the gate pre-activations ``k`` and the candidate's ``v``
            side by side (``torch.cat([k, v], -1)``; minGRU's input projection is exactly this).
        h0: ``(batch, hidden)`` initial state, any sign.
        lengths: as for :func:`log_linear_scan`.
        chunk: time steps per chunk (:data:`FUSED_CHUNK`); ``None``: the whole sequence as one chunk.
            Any positive value gives the same results; it bounds the working memory.

    Returns:
        ``(outputs (steps, batch, hidden), final (batch, hidden))``, differentiable to any order.
        Under torch.func transforms, ``torch.jit.trace``, ``torch.compile`` and ``torch.export``
        (``rnnkit.engine.transform_active``) the same lerps run as plain ops, which those see through.
    """
    if transform_active(pre, h0) is not None:
        return _apply_lengths(_plain_gated_scan(pre, h0), lengths)
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive int or None, got {chunk!r}")
    return _apply_lengths(_FusedGatedScan.apply(pre, h0, chunk), lengths)


def gated_step(pre: Tensor, h: Tensor) -> Tensor:
    """One step ``h' = lerp(h, g(v), σ(k))`` from a state, for generation (no gradient).

    Args:
        pre: ``(batch, 2 * hidden)``: ``[k | v]`` of this step (:meth:`joined_preactivations`).
        h: ``(batch, hidden)`` the state.

    Returns ``(batch, hidden)``. On CPU in float32/float64, outside autograd and transforms, the fused
    engine's step kernel (``gated_step``: the C++ scan's own row loop, one step), so stepping a
    sequence gives the scan's outputs bit for bit; otherwise the same lerp in PyTorch ops
    (differentiable). ``rnnkit.sampling.FastStep`` generates through it.
    """
    compiled = _compiled_scan(pre)
    grad = torch.is_grad_enabled() and (pre.requires_grad or h.requires_grad)
    if compiled is None or grad or transform_active(pre, h) is not None or pre.dtype != h.dtype:
        k, v = pre.chunk(2, dim=-1)
        return torch.lerp(h, g(v), torch.sigmoid(k))
    return compiled.gated_step(pre.contiguous(), h.contiguous())


class _GatedInterpolationCell(RecurrentCell):
    """minGRU and minLSTM: ``h_t = lerp(h_{t-1}, g(v_t), σ(k_t))`` with ``k, v`` from the input only.

    A subclass gives :meth:`preactivations`; the step, both scans, the parameters (input weights
    only) and the single state are shared.
    """

    num_states = 1

    @classmethod
    def parameter_specs(cls, input_size: int, hidden_size: int, bias: bool = True, **options) -> list[ParameterSpec]:
        rows = cls.num_chunks * hidden_size
        specs = [ParameterSpec("weight_ih", (rows, input_size), "input", cls.num_chunks)]
        if bias:
            specs.append(ParameterSpec("bias_ih", (rows,), "bias", cls.num_chunks))
        return specs

    @staticmethod
    def input_projection(x: Tensor, params: Params) -> Tensor:
        return F.linear(x, params["weight_ih"], params.get("bias_ih"))

    @staticmethod
    def preactivations(x_proj: Tensor) -> tuple[Tensor, Tensor]:
        """``(k, v)``: the interpolation weight is ``σ(k)``, the candidate ``g(v)``."""
        raise NotImplementedError

    @classmethod
    def joined_preactivations(cls, x_proj: Tensor) -> Tensor:
        """``torch.cat([k, v], -1)`` (what :func:`fused_gated_scan` reads)."""
        return torch.cat(cls.preactivations(x_proj), dim=-1)

    @classmethod
    def _step(cls, x_proj: Tensor, state: State) -> State:
        (h,) = state
        k, v = cls.preactivations(x_proj)
        return (torch.lerp(h, g(v), torch.sigmoid(k)),)

    @classmethod
    def generation_step(cls, x_proj: Tensor, state: State) -> State:
        """:meth:`recurrence`'s step through :func:`gated_step` (the engine's step kernel): for generation."""
        (h,) = state
        return (gated_step(cls.joined_preactivations(x_proj.to(h.dtype)), h),)

    @classmethod
    def _scan(cls, x_proj: Tensor, state: State, lengths: Tensor | None, scan: str) -> tuple[Tensor, State]:
        (h0,) = state
        x_proj = x_proj.to(h0.dtype)  # under autocast: scan in the state's precision
        if scan == "auto":
            scan = "fused" if h0.device.type == "cpu" else "log"
        if scan == "fused":
            output, final = fused_gated_scan(cls.joined_preactivations(x_proj), h0, lengths=lengths,
                                             chunk=FUSED_CHUNK)  # read now: the benchmark swaps it
        elif scan == "log":  # log(1 - σ(k)) = -softplus(k), log σ(k) = -softplus(-k)
            k, v = cls.preactivations(x_proj)
            output, final = log_linear_scan(-F.softplus(k), log_g(v) - F.softplus(-k), h0, lengths=lengths)
        else:
            raise ValueError(f"unknown scan {scan!r}; expected one of {', '.join(map(repr, SCANS))}")
        return output, (final,)


class MinGRUCell(_GatedInterpolationCell):
    r"""minGRU cell (Feng et al. 2024), gate blocks ``z, h̃``; see :mod:`rnnkit.variants.minimal`.

    .. math::
        z_t = \sigma(W_z x_t + b_z), \quad \tilde h_t = g(W_h x_t + b_h), \quad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    Parameters: ``weight_ih`` ``(2*hidden_size, input_size)``, ``bias_ih`` ``(2*hidden_size,)``.

    >>> cell = MinGRUCell(3, 5)
    >>> cell(torch.randn(2, 3)).shape
    torch.Size([2, 5])
    """

    num_chunks = 2

    @staticmethod
    def preactivations(x_proj: Tensor) -> tuple[Tensor, Tensor]:
        k_z, v = x_proj.chunk(2, dim=-1)
        return k_z, v

    @classmethod
    def joined_preactivations(cls, x_proj: Tensor) -> Tensor:
        return x_proj  # already [k_z | v]

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, scan: str = "auto") -> State:
        return MinGRUCell._step(x_proj, state)

    @staticmethod
    def parallel_scan(x_proj: Tensor, state: State, params: Params, *, lengths: Tensor | None = None,
                      scan: str = "auto") -> tuple[Tensor, State]:
        return MinGRUCell._scan(x_proj, state, lengths, scan)


class MinLSTMCell(_GatedInterpolationCell):
    r"""minLSTM cell (Feng et al. 2024), gate blocks ``f, i, h̃``; see :mod:`rnnkit.variants.minimal`.

    .. math::
        f_t = \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad \tilde h_t = g(W_h x_t + b_h), \\
        h_t = \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot \tilde h_t

    The normalised gates are computed as ``i' = σ(d)``, ``f' = 1 - i'`` with
    ``d = softplus(-k_f) - softplus(-k_i) = log(i / f)``: the same values, finite when both gates
    saturate at 0. A single state ``h`` (no cell state, no output gate).

    Parameters: ``weight_ih`` ``(3*hidden_size, input_size)``, ``bias_ih`` ``(3*hidden_size,)``.

    >>> cell = MinLSTMCell(3, 5)
    >>> cell(torch.randn(2, 3)).shape
    torch.Size([2, 5])
    """

    num_chunks = 3
    forget_gate = 0  # forget_bias= sets block f of bias_ih (the cell has no bias_hh)

    @staticmethod
    def preactivations(x_proj: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, v = x_proj.chunk(3, dim=-1)
        return F.softplus(-k_f) - F.softplus(-k_i), v  # log(i / f): σ of it is i / (f + i)

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, scan: str = "auto") -> State:
        return MinLSTMCell._step(x_proj, state)

    @staticmethod
    def parallel_scan(x_proj: Tensor, state: State, params: Params, *, lengths: Tensor | None = None,
                      scan: str = "auto") -> tuple[Tensor, State]:
        return MinLSTMCell._scan(x_proj, state, lengths, scan)


class _MinimalLayer(RecurrentLayer):
    """A layer of minGRU or minLSTM cells: ``rk.GRU``'s constructor plus ``scan=``."""

    def __init__(self, *args, scan: str = "auto", **kwargs) -> None:
        _checks.choice("scan", scan, SCANS)
        self.scan = scan
        super().__init__(*args, **kwargs)

    def step_options(self) -> dict:
        return {} if self.scan == "auto" else {"scan": self.scan}

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.scan == "auto" else text + f", scan={self.scan!r}"


_SCAN_ARG = """        scan: how whole sequences run: ``'log'`` (the log-space parallel scan), ``'fused'`` (a fused time
            loop with the adjoint loop as backward) or ``'auto'`` (``'fused'`` on
            CPU, ``'log'`` elsewhere). The same function either way. Keyword only.
"""


class MinGRU(_MinimalLayer):
    __doc__ = (
        "minGRU layer (Feng et al. 2024) with the constructor and forward of ``rk.GRU``; see "
        "``rnnkit.variants.minimal``.\n\n"
        "    No recurrent weight: ``init=`` acts on ``weight_ih`` and ``bias_ih`` only.\n"
        + _LAYER_ARGS
        + _SCAN_ARG
        + """
    >>> layer = MinGRU(8, 16, batch_first=True, bidirectional=True)
    >>> output, h_n = layer(torch.randn(3, 5, 8), lengths=torch.tensor([5, 2, 4]))
    >>> output.shape, h_n.shape
    (torch.Size([3, 5, 32]), torch.Size([2, 3, 16]))
    """
    )

    cell_type = MinGRUCell


class MinLSTM(_MinimalLayer):
    __doc__ = (
        "minLSTM layer (Feng et al. 2024) with the constructor of ``rk.LSTM`` and the forward of ``rk.GRU``\n"
        "    (a single state: ``h_n``, no ``c_n``); see ``rnnkit.variants.minimal``.\n"
        + _LAYER_ARGS
        + _SCAN_ARG
        + """        forget_bias: if given, the forget-gate bias (block ``f`` of ``bias_ih``) is set to this
            value after ``init``. Keyword only. (``proj_size`` must be 0: there is no projection.)

    >>> layer = MinLSTM(8, 16, num_layers=2, forget_bias=1.0)
    >>> output, h_n = layer(torch.randn(5, 3, 8))
    >>> output.shape, h_n.shape
    (torch.Size([5, 3, 16]), torch.Size([2, 3, 16]))
    """
    )

    cell_type = MinLSTMCell

    def __init__(self, *args, proj_size: int = 0, **kwargs) -> None:
        if proj_size != 0:
            raise ValueError(f"proj_size={proj_size!r}: MinLSTM has no output projection; use proj_size=0")
        super().__init__(*args, **kwargs)

__all__ = ["MinGRUCell", "MinLSTMCell", "MinGRU", "MinLSTM", "log_linear_scan", "fused_gated_scan", "g", "log_g",
           "gated_step", "SCAN_CHUNK", "FUSED_CHUNK", "SCANS"]
