"""The fused engine: gradcheck, and equality with the reference loop and between its C++ and PyTorch loops."""

import warnings

import pytest
import torch

import rnnkit as rk
from rnnkit import engine
from rnnkit.engine import _build, python_engine
from rnnkit.loop import recur as reference_recur

CELLS = [
    (rk.GRUCell, {}),
    (rk.ElmanCell, {"nonlinearity": "tanh"}),
    (rk.ElmanCell, {"nonlinearity": "relu"}),
    (rk.LSTMCell, {}),
]
IDS = ["gru", "elman_tanh", "elman_relu", "lstm"]
IMPLEMENTATIONS = ["cpp", "python"]


def _impl(kind):
    return engine.implementation(kind)


def _inputs(cell_type, options, dtype, batch=3, steps=5, hidden=4, seed=0):
    torch.manual_seed(seed)
    cell = cell_type(hidden, hidden, **options).to(dtype)
    spec = engine.engine_cell(cell_type, options)
    x_proj = torch.randn(steps, batch, spec.gates * hidden, dtype=dtype)
    if options.get("nonlinearity") == "relu":
        x_proj = x_proj.abs() + 0.1  # keep relu pre-activations away from the kink for finite differences
    h0 = torch.randn(batch, hidden, dtype=dtype)
    c0 = torch.randn(batch, hidden, dtype=dtype) if spec.states == 2 else None
    b_hh = cell.bias_hh.detach() if spec.uses_hh_bias else None
    return spec, x_proj, h0, c0, cell.weight_hh.detach(), b_hh


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("cell_type,options", CELLS, ids=IDS)
def test_engine_passes_gradcheck(cell_type, options, with_lengths, impl):
    spec, x_proj, h0, c0, w_hh, b_hh = _inputs(cell_type, options, torch.float64)
    lengths = torch.tensor([5, 2, 3]) if with_lengths else None
    implementation = _impl(impl)
    names = [n for n, t in zip(("x_proj", "h0", "c0", "w_hh", "b_hh"), (x_proj, h0, c0, w_hh, b_hh)) if t is not None]

    def fn(*tensors):
        given = dict(zip(names, tensors))
        out, h_n, c_n = engine.FusedRecurrence.apply(
            spec, implementation, given["x_proj"], given["h0"], given.get("c0"), given["w_hh"], given.get("b_hh"),
            lengths,
        )
        return (out, h_n, c_n) if c0 is not None else (out, h_n)

    tensors = [t.clone().requires_grad_() for t in (x_proj, h0, c0, w_hh, b_hh) if t is not None]
    assert torch.autograd.gradcheck(fn, tensors)


def _run_recur(recur, cell, x, state, lengths, reverse):
    x = x.clone().requires_grad_()
    state = tuple(s.clone().requires_grad_() for s in state)
    out, final = recur(type(cell), x, state, cell.weight_groups()[0], lengths=lengths, reverse=reverse,
                       options=cell.step_options())
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + sum((s * s).sum() for s in final)
    grads = torch.autograd.grad(loss, [x, *state, *cell.parameters()])
    return [out.detach(), *(s.detach() for s in final), *grads]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell_type,options", CELLS, ids=IDS)
def test_engine_equals_reference_loop(cell_type, options, reverse, dtype, impl, monkeypatch):
    monkeypatch.setattr(engine, "implementation", lambda kind="auto", _i=_impl(impl): _i)
    torch.manual_seed(1)
    cell = cell_type(6, 8, **options).to(dtype)
    x = torch.randn(7, 4, 6, dtype=dtype)
    state = tuple(torch.randn(4, 8, dtype=dtype) for _ in range(cell.num_states))
    tolerance = 2e-5 if dtype == torch.float32 else 1e-11
    for lengths in (None, torch.tensor([7, 1, 4, 6])):
        expected = _run_recur(reference_recur, cell, x, state, lengths, reverse)
        got = _run_recur(engine.recur, cell, x, state, lengths, reverse)
        for index, (a, b) in enumerate(zip(got, expected)):
            torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance, msg=lambda m, i=index: f"#{i}: {m}")


@pytest.mark.parametrize("cell_type,options", CELLS, ids=IDS)
def test_cpp_and_python_loops_agree_on_buffers(cell_type, options):
    spec, x_proj, h0, c0, w_hh, b_hh = _inputs(cell_type, options, torch.float32, batch=5, steps=9, hidden=33)
    lengths = torch.tensor([9, 3, 1, 8, 9])
    cpp, py = _impl("cpp"), python_engine
    forward = [impl.forward(spec.name, x_proj, h0, c0, w_hh, b_hh, lengths, True) for impl in (cpp, py)]
    valid = (torch.arange(9).unsqueeze(1) < lengths).unsqueeze(2)
    for index, (a, b) in enumerate(zip(*forward)):
        if index == 3 and a.numel():  # saved values past a sequence's end are never read
            a, b = torch.where(valid, a, 0.0), torch.where(valid, b, 0.0)
        torch.testing.assert_close(a, b, atol=2e-6, rtol=2e-6)
    out, _, _, saved, cells = forward[0]
    d_out, d_h = torch.randn_like(out), torch.randn_like(h0)
    d_c = torch.randn_like(c0) if c0 is not None else None
    backward = [impl.backward(spec.name, d_out, d_h, d_c, h0, c0, w_hh, b_hh is not None, out, cells, saved, lengths)
                for impl in (cpp, py)]
    for a, b in zip(*backward):
        if b is None:
            assert a is None or not a.defined() or a.numel() == 0
        else:
            torch.testing.assert_close(a, b, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("cell_type,options", CELLS, ids=IDS)
def test_inference_path_matches_training_path(cell_type, options):
    spec, x_proj, h0, c0, w_hh, b_hh = _inputs(cell_type, options, torch.float32)
    state = (h0,) if c0 is None else (h0, c0)
    trained_out, trained_state = engine.run(spec, x_proj, state, w_hh.requires_grad_(), b_hh)
    with torch.no_grad():
        inferred_out, inferred_state = engine.run(spec, x_proj, state, w_hh, b_hh)
    for a, b in zip((trained_out, *trained_state), (inferred_out, *inferred_state)):
        assert torch.equal(a.detach(), b)
    assert trained_out.grad_fn is not None and inferred_out.grad_fn is None


def test_engine_saves_less_for_backward_than_torch_gru():
    """Saved-tensor bytes are deterministic: the engine keeps out + r, z, n, W_hn h; torch.nn keeps more."""

    def saved_bytes(module, x):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(x)
        params = {p.untyped_storage().data_ptr() for p in module.parameters()} | {x.untyped_storage().data_ptr()}
        return sum(n for ptr, n in storages.items() if ptr not in params)

    x = torch.randn(50, 8, 16)
    ours = rk.GRU(16, 32)
    assert rk.backends.select(ours).name == "engine"
    theirs = torch.nn.GRU(16, 32)
    assert saved_bytes(ours, x) < saved_bytes(theirs, x)


def test_failed_build_warns_and_falls_back_to_identical_results(monkeypatch):
    from torch.utils import cpp_extension

    def no_compiler(**kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(_build, "_state", {})
    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found.*pure-PyTorch engine"):
        assert _build.extension() is None
    assert engine.implementation() is python_engine
    with pytest.raises(RuntimeError, match="not available"):
        engine.implementation("cpp")
    layer = rk.GRU(3, 4).double()
    oracle = torch.nn.GRU(3, 4).double()
    oracle.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(layer(x)[0], oracle(x)[0])


def test_engine_can_be_disabled_by_environment(monkeypatch):
    monkeypatch.setattr(_build, "_state", {})
    monkeypatch.setenv("RNNKIT_ENGINE", "python")
    assert _build.extension() is None
    assert engine.implementation() is python_engine


def test_engine_accepts_non_contiguous_recurrent_weights():
    layer = rk.GRU(3, 4).double()
    oracle = torch.nn.GRU(3, 4).double()
    oracle.load_state_dict(layer.state_dict())
    with torch.no_grad():
        layer.weight_hh_l0 = torch.nn.Parameter(layer.weight_hh_l0.t().contiguous().t())  # same values, transposed strides
    assert not layer.weight_hh_l0.is_contiguous()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x)[0], oracle(x)[0])
    layer(x)[0].sum().backward()
    assert layer.weight_hh_l0.grad is not None and layer.weight_hh_l0.grad.shape == (12, 4)
