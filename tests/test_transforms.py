"""torch.func transforms, double backward, jit.trace and torch.export on every backend (#12).

Each layer is compared with torch.nn's on the same weights (``harness.make_pair``), in float64 so
that the tolerances are tight: the transformed results must be torch.nn's, not merely run.
"""

import warnings

import pytest
import torch
from torch.autograd import forward_ad
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, vmap

import rnnkit as rk
from rnnkit import backends, engine
from rnnkit.engine import python_engine

from harness import make_pair

# torch loads its forward-AD decompositions with torch.jit.script on first use, which warns in 2.13.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

KINDS = ["rnn_tanh", "lstm", "gru"]
BACKENDS = ["auto", "builtin", "reference", "engine"]
DTYPE = torch.float64
TOL = 1e-10
STEPS, BATCH, INPUT, HIDDEN = 4, 3, 2, 3


def _pair(kind, backend, **kwargs):
    return make_pair(kind, INPUT, HIDDEN, dtype=DTYPE, backend=backend, **kwargs)


def _x(steps=STEPS, batch=BATCH, seed=0):
    return torch.randn(steps, batch, INPUT, dtype=DTYPE, generator=torch.Generator().manual_seed(seed))


def _flat(result):
    """``(output, h_n)`` or ``(output, (h_n, c_n))`` as a flat tuple."""
    output, state = result
    return (output, *(state if isinstance(state, tuple) else (state,)))


def _scalar(module, params, x):
    """A loss that reads every result: the output and the final state(s)."""
    results = _flat(functional_call(module, params, (x,)))
    weights = torch.linspace(-1.0, 1.0, results[0].numel(), dtype=x.dtype).view_as(results[0])
    return (results[0] * weights).sum() + sum((r * r).sum() for r in results[1:])


def _params(module):
    return {name: p.detach() for name, p in module.named_parameters()}


class _Output(torch.nn.Module):
    """Wraps a layer so that tracing and export see one tensor in and one out."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        output, state = self.layer(x)
        h_n = state[0] if isinstance(state, tuple) else state
        return output + 0.5 * h_n[-1]


# ----------------------------------------------------------------------------- routing


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_path_outside_transforms_is_unchanged(backend):
    ours, _ = _pair("gru", backend)
    expected = {"auto": "engine", "builtin": "builtin", "reference": "reference", "engine": "engine"}[backend]
    assert backends.select(ours).name == expected
    assert engine.transform_active() is None


def test_the_layer_path_uses_the_fused_node_by_default():
    ours, _ = _pair("gru", "auto")
    output, _ = ours(_x().requires_grad_())
    assert type(output.grad_fn).__name__ == "FusedRecurrenceBackward"


@pytest.mark.parametrize("backend", BACKENDS)
def test_functorch_transforms_route_to_the_reference_silently(backend):
    ours, _ = _pair("gru", backend)
    seen = []

    def run(x):
        seen.append((engine.transform_active(), backends.select(ours).name))
        return ours(x)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vmap(run, in_dims=1, out_dims=1)(_x())
    assert seen == [("functorch", "reference")]


@pytest.mark.parametrize("backend,expected", [("auto", "builtin"), ("engine", "builtin"), ("builtin", "builtin"),
                                              ("reference", "reference")])
def test_tracing_routes_the_engine_to_torch_kernels(backend, expected):
    ours, _ = _pair("gru", backend)
    seen = []

    class Probe(_Output):
        def forward(self, x):
            seen.append((engine.transform_active(), backends.select(self.layer).name))
            return super().forward(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit.trace's own deprecation and tracer warnings
        torch.jit.trace(Probe(ours), (_x(),), check_trace=False)
    assert seen == [("trace", expected)]


# ----------------------------------------------------------------------------- torch.func


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_func_grad_equals_torch_nn(kind, backend):
    ours, oracle = _pair(kind, backend)
    x = _x()
    got = grad(lambda p: _scalar(ours, p, x))(_params(ours))
    want = grad(lambda p: _scalar(oracle, p, x))(_params(oracle))
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=TOL, rtol=TOL, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_func_grad_with_lengths_equals_eager_gradients(kind, backend):
    """``lengths=`` under a transform (torch.nn's own PackedSequence path fails under torch.func in 2.13)."""
    ours, _ = _pair(kind, backend, bidirectional=True)
    x, lengths = _x(), torch.tensor([4, 2, 3])

    def loss(params):
        return sum((r * r).sum() for r in _flat(functional_call(ours, params, (x,), {"lengths": lengths})))

    got = grad(loss)(_params(ours))
    want = torch.autograd.grad(loss(dict(ours.named_parameters())), list(ours.parameters()))
    for (name, a), b in zip(got.items(), want):
        torch.testing.assert_close(a, b, atol=TOL, rtol=TOL, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_vmap_equals_a_loop(kind, backend):
    ours, oracle = _pair(kind, backend)
    xs = torch.stack([_x(seed=s) for s in range(3)])  # 3 independent (steps, batch, input) inputs
    got = vmap(lambda x: _flat(ours(x)))(xs)
    want = [torch.stack(parts) for parts in zip(*(_flat(oracle(x)) for x in xs))]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_jacrev_wrt_input_equals_torch_nn(kind, backend):
    ours, oracle = _pair(kind, backend)
    x = _x(steps=3, batch=2)
    got = jacrev(lambda v: ours(v)[0])(x)
    want = jacrev(lambda v: oracle(v)[0])(x)
    torch.testing.assert_close(got, want, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_mode_jacfwd_hessian_and_dual_tensors_equal_torch_nn(kind, backend):
    ours, oracle = _pair(kind, backend)
    x = _x(steps=3, batch=2)
    torch.testing.assert_close(jacfwd(lambda v: ours(v)[0])(x), jacfwd(lambda v: oracle(v)[0])(x), atol=TOL, rtol=TOL)
    torch.testing.assert_close(hessian(lambda v: ours(v)[0].sum())(x), hessian(lambda v: oracle(v)[0].sum())(x),
                               atol=TOL, rtol=TOL)
    tangent = torch.randn_like(x)
    with forward_ad.dual_level():
        got = [forward_ad.unpack_dual(r) for r in _flat(ours(forward_ad.make_dual(x, tangent)))]
        want = [forward_ad.unpack_dual(r) for r in _flat(oracle(forward_ad.make_dual(x, tangent)))]
    for a, b in zip(got, want):
        torch.testing.assert_close(a.primal, b.primal, atol=TOL, rtol=TOL)
        torch.testing.assert_close(a.tangent, b.tangent, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_per_sample_gradients_equal_single_sample_gradients(kind, backend):
    ours, oracle = _pair(kind, backend)
    x = _x()

    def one(params, sample):  # sample: (steps, input); the layer sees a batch of one
        return _scalar(ours, params, sample.unsqueeze(1))

    got = vmap(grad(one), in_dims=(None, 1))(_params(ours), x)
    for b in range(BATCH):
        oracle.zero_grad()
        _scalar(oracle, dict(oracle.named_parameters()), x[:, b : b + 1]).backward()
        for name, p in oracle.named_parameters():
            torch.testing.assert_close(got[name][b], p.grad, atol=TOL, rtol=TOL, msg=f"{name}[{b}]")


# ----------------------------------------------------------------------------- double backward


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_layer_passes_batched_gradcheck_and_gradgradcheck(kind, backend):
    ours, _ = _pair(kind, backend)
    names = [name for name, _ in ours.named_parameters()]
    x = _x(steps=3, batch=2).requires_grad_()
    h0 = torch.randn(1, 2, HIDDEN, dtype=DTYPE, requires_grad=True)

    def fn(x, h0, *weights):
        hx = (h0, torch.tanh(h0)) if kind == "lstm" else h0
        return _flat(functional_call(ours, dict(zip(names, weights)), (x, hx)))

    weights = [p.detach().clone().requires_grad_() for p in ours.parameters()]
    inputs = (x, h0, *weights)
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=True, check_batched_grad=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_gradient_penalty_equals_torch_nn(kind, backend):
    ours, oracle = _pair(kind, backend, num_layers=2, bidirectional=True)

    def penalised(module):
        x = _x().requires_grad_()
        results = _flat(module(x))
        loss = sum((r * r).sum() for r in results)
        (dx,) = torch.autograd.grad(loss, x, create_graph=True)
        total = loss + (dx * dx).sum()
        return torch.autograd.grad(total, [p for _, p in sorted(module.named_parameters())])

    for a, b in zip(penalised(ours), penalised(oracle)):
        torch.testing.assert_close(a, b, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_double_backward_with_lengths_equals_the_reference(kind):
    engine_layer, _ = _pair(kind, "engine", bidirectional=True)
    reference, _ = _pair(kind, "reference", bidirectional=True)
    reference.load_state_dict(engine_layer.state_dict())
    lengths = torch.tensor([4, 2, 3])

    def penalised(module):
        x = _x().requires_grad_()
        loss = sum((r * r).sum() for r in _flat(module(x, lengths=lengths)))
        grads = torch.autograd.grad(loss, [x, *module.parameters()], create_graph=True)
        return torch.autograd.grad(sum((g * g).sum() for g in grads), [x, *module.parameters()])

    for a, b in zip(penalised(engine_layer), penalised(reference)):
        torch.testing.assert_close(a, b, atol=TOL, rtol=TOL)


ENGINE_CELLS = [(rk.GRUCell, {}), (rk.ElmanCell, {"nonlinearity": "tanh"}), (rk.LSTMCell, {})]


@pytest.mark.parametrize("impl", ["cpp", "python"])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("cell_type,options", ENGINE_CELLS, ids=["gru", "elman_tanh", "lstm"])
def test_fused_node_passes_gradgradcheck(cell_type, options, with_lengths, impl):
    """The node itself, ``x_proj`` a leaf (no ``source``: the node keeps ``x_proj``)."""
    torch.manual_seed(0)
    hidden, batch, steps = 3, 3, 4
    spec = engine.engine_cell(cell_type, options)
    cell = cell_type(hidden, hidden, **options).to(DTYPE)
    lengths = torch.tensor([4, 2, 3]) if with_lengths else None
    implementation = engine.implementation(impl)
    tensors = [torch.randn(steps, batch, spec.gates * hidden, dtype=DTYPE), torch.randn(batch, hidden, dtype=DTYPE)]
    if spec.states == 2:
        tensors.append(torch.randn(batch, hidden, dtype=DTYPE))
    tensors.append(cell.weight_hh.detach().clone())
    if spec.uses_hh_bias:
        tensors.append(cell.bias_hh.detach().clone())
    tensors = [t.requires_grad_() for t in tensors]

    def fn(*given):
        x_proj, h0, *rest = given
        c0 = rest.pop(0) if spec.states == 2 else None
        w_hh, b_hh = rest[0], (rest[1] if spec.uses_hh_bias else None)
        out, h_n, c_n = engine.FusedRecurrence.apply(spec, implementation, x_proj, h0, c0, w_hh, b_hh, lengths)
        return (out, h_n, c_n) if c0 is not None else (out, h_n)

    assert torch.autograd.gradgradcheck(fn, tensors, fast_mode=True)


def test_first_order_backward_does_not_differentiate_the_recurrence_again(monkeypatch):
    """Without create_graph the fast adjoint loop runs; the re-run is only for a graph of the gradient."""
    calls = []
    original = python_engine.forward
    monkeypatch.setattr(python_engine, "forward", lambda *a: calls.append(1) or original(*a))
    ours, _ = _pair("gru", "engine")
    x = _x().requires_grad_()
    ours(x)[0].sum().backward()
    if engine.implementation() is not python_engine:
        assert calls == []
    calls.clear()
    (dx,) = torch.autograd.grad(ours(x)[0].sum(), x, create_graph=True)
    assert calls and dx.requires_grad


# ----------------------------------------------------------------------------- export and tracing


@pytest.mark.filterwarnings("ignore:The tensor attributes")  # torch.nn's own layers, exported
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_torch_export_equals_eager(kind, backend):
    ours, oracle = _pair(kind, backend)
    x, other = _x(), _x(seed=1)
    try:
        torch.export.export(_Output(oracle), (x,))
    except Exception as error:  # pragma: no cover - depends on the torch release
        pytest.skip(f"torch.export of torch.nn's own {kind} fails here: {error}")
    exported = torch.export.export(_Output(ours), (x,)).module()
    for data in (x, other):
        torch.testing.assert_close(exported(data), _Output(ours)(data), atol=TOL, rtol=TOL)
        torch.testing.assert_close(exported(data), _Output(oracle)(data), atol=TOL, rtol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_jit_trace_passes_its_check_and_equals_eager(kind, backend):
    ours, oracle = _pair(kind, backend)
    x, other = _x(), _x(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit.trace is deprecated; its tracer warnings are torch.nn's too
        traced = torch.jit.trace(_Output(ours), (x,), check_trace=True, check_inputs=[(other,)])
    for data in (x, other):
        torch.testing.assert_close(traced(data), _Output(ours)(data), atol=TOL, rtol=TOL)
        torch.testing.assert_close(traced(data), _Output(oracle)(data), atol=TOL, rtol=TOL)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["auto", "engine"])
def test_torch_compile_equals_eager(backend):
    ours, oracle = _pair("gru", backend)
    x = _x()
    compiled = torch.compile(_Output(ours), backend="eager", fullgraph=True)  # one graph: no break in rnnkit
    torch.testing.assert_close(compiled(x), _Output(oracle)(x), atol=TOL, rtol=TOL)


# ----------------------------------------------------------------------------- cells

CELL_PAIRS = [
    (rk.RNNCell, torch.nn.RNNCell),
    (rk.LSTMCell, torch.nn.LSTMCell),
    (rk.GRUCell, torch.nn.GRUCell),
]


def _cell_pair(ours_cls, torch_cls):
    oracle = torch_cls(INPUT, HIDDEN).to(DTYPE)
    ours = ours_cls(INPUT, HIDDEN).to(DTYPE)
    ours.load_state_dict(oracle.state_dict(), strict=True)
    return ours, oracle


def _cell_scalar(cell, params, x):
    result = functional_call(cell, params, (x,))
    parts = result if isinstance(result, tuple) else (result,)
    return sum((p * p).sum() for p in parts)


@pytest.mark.parametrize("ours_cls,torch_cls", CELL_PAIRS, ids=["rnn", "lstm", "gru"])
def test_cells_under_grad_vmap_and_jacrev_equal_torch_nn(ours_cls, torch_cls):
    ours, oracle = _cell_pair(ours_cls, torch_cls)
    x = torch.randn(BATCH, INPUT, dtype=DTYPE)
    got = grad(lambda p: _cell_scalar(ours, p, x))(_params(ours))
    want = grad(lambda p: _cell_scalar(oracle, p, x))(_params(oracle))
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=TOL, rtol=TOL, msg=name)
    per_sample = vmap(grad(lambda p, v: _cell_scalar(ours, p, v.unsqueeze(0))), in_dims=(None, 0))(_params(ours), x)
    for b in range(BATCH):
        single = grad(lambda p: _cell_scalar(oracle, p, x[b : b + 1]))(_params(oracle))
        for name in single:
            torch.testing.assert_close(per_sample[name][b], single[name], atol=TOL, rtol=TOL)
    first = lambda v: (lambda r: r[0] if isinstance(r, tuple) else r)(ours(v))  # noqa: E731
    first_oracle = lambda v: (lambda r: r[0] if isinstance(r, tuple) else r)(oracle(v))  # noqa: E731
    torch.testing.assert_close(jacrev(first)(x), jacrev(first_oracle)(x), atol=TOL, rtol=TOL)


# ----------------------------------------------------------------------------- minGRU / minLSTM


MINIMAL = [rk.MinGRU, rk.MinLSTM]


def _minimal(cls, scan):
    torch.manual_seed(0)
    return cls(INPUT, HIDDEN, scan=scan).to(DTYPE)


@pytest.mark.parametrize("scan", ["auto", "fused"])
@pytest.mark.parametrize("cls", MINIMAL, ids=["min_gru", "min_lstm"])
def test_minimal_fused_scan_under_transforms_equals_eager(cls, scan):
    layer, log = _minimal(cls, scan), _minimal(cls, "log")
    x = _x()
    got = grad(lambda p: _scalar(layer, p, x))(_params(layer))
    want = grad(lambda p: _scalar(log, p, x))(_params(log))
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=TOL, rtol=TOL, msg=name)
    xs = torch.stack([_x(seed=s) for s in range(3)])
    for a, b in zip(vmap(lambda v: _flat(layer(v)))(xs), zip(*(_flat(layer(v)) for v in xs))):
        torch.testing.assert_close(a, torch.stack(b), atol=TOL, rtol=TOL)
    per_sample = vmap(grad(lambda p, v: _scalar(layer, p, v.unsqueeze(1))), in_dims=(None, 1))(_params(layer), x)
    for b in range(BATCH):
        single = grad(lambda p: _scalar(layer, p, x[:, b : b + 1]))(_params(layer))
        for name in single:
            torch.testing.assert_close(per_sample[name][b], single[name], atol=TOL, rtol=TOL)
    torch.testing.assert_close(jacfwd(lambda v: layer(v)[0])(x), jacfwd(lambda v: log(v)[0])(x), atol=TOL, rtol=TOL)
    tangent = torch.randn_like(x)
    with forward_ad.dual_level():
        got = forward_ad.unpack_dual(layer(forward_ad.make_dual(x, tangent))[0]).tangent
        want = forward_ad.unpack_dual(log(forward_ad.make_dual(x, tangent))[0]).tangent
    torch.testing.assert_close(got, want, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("cls", MINIMAL, ids=["min_gru", "min_lstm"])
def test_minimal_fused_scan_passes_batched_gradcheck_and_gradgradcheck(cls, with_lengths):
    layer = _minimal(cls, "fused")
    names = [name for name, _ in layer.named_parameters()]
    lengths = torch.tensor([3, 1]) if with_lengths else None
    x = _x(steps=3, batch=2).requires_grad_()
    h0 = torch.randn(1, 2, HIDDEN, dtype=DTYPE, requires_grad=True)

    def fn(x, h0, *weights):
        return _flat(functional_call(layer, dict(zip(names, weights)), (x, h0), {"lengths": lengths}))

    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    inputs = (x, h0, *weights)
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=True, check_batched_grad=True)


@pytest.mark.parametrize("cls", MINIMAL, ids=["min_gru", "min_lstm"])
def test_minimal_fused_scan_exports_and_traces(cls):
    layer = _minimal(cls, "auto")
    x, other = _x(), _x(seed=1)
    exported = torch.export.export(_Output(layer), (x,)).module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_Output(layer), (x,), check_trace=True, check_inputs=[(other,)])
    for data in (x, other):
        torch.testing.assert_close(exported(data), _Output(layer)(data), atol=TOL, rtol=TOL)
        torch.testing.assert_close(traced(data), _Output(layer)(data), atol=TOL, rtol=TOL)
