"""The fused engine: gradcheck, and equality with the reference loop and between its C++ and PyTorch loops."""

import warnings

import pytest
import torch

import rnnkit as rk
from rnnkit import engine
from rnnkit.engine import _build, python_engine
from rnnkit.loop import recur as reference_recur

CELLS = [(rk.GRUCell, {}), (rk.ElmanCell, {"nonlinearity": "tanh"}), (rk.ElmanCell, {"nonlinearity": "relu"})]
IDS = ["gru", "elman_tanh", "elman_relu"]
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
    b_hh = cell.bias_hh if spec.uses_hh_bias else None
    return spec, x_proj, h0, cell.weight_hh.detach(), None if b_hh is None else b_hh.detach()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("cell_type,options", CELLS, ids=IDS)
def test_engine_passes_gradcheck(cell_type, options, with_lengths, impl):
    spec, x_proj, h0, w_hh, b_hh = _inputs(cell_type, options, torch.float64)
    lengths = torch.tensor([5, 2, 3]) if with_lengths else None
    implementation = _impl(impl)

    def fn(x_proj, h0, w_hh, *bias):
        return engine.FusedRecurrence.apply(spec, implementation, x_proj, h0, w_hh, bias[0] if bias else None, lengths)

    tensors = [t.clone().requires_grad_() for t in (x_proj, h0, w_hh, *(() if b_hh is None else (b_hh,)))]
    assert torch.autograd.gradcheck(fn, tensors)


def _run_recur(recur, cell, x, h0, lengths, reverse):
    x, h0 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    out, (h_n,) = recur(type(cell), x, (h0,), cell.weight_groups()[0], lengths=lengths, reverse=reverse,
                        options=cell.step_options())
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + (h_n * h_n).sum()
    grads = torch.autograd.grad(loss, [x, h0, *cell.parameters()])
    return [out.detach(), h_n.detach(), *grads]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell_type,options", CELLS, ids=IDS)
def test_engine_equals_reference_loop(cell_type, options, reverse, dtype, impl, monkeypatch):
    monkeypatch.setattr(engine, "implementation", lambda kind="auto", _i=_impl(impl): _i)
    torch.manual_seed(1)
    cell = cell_type(6, 8, **options).to(dtype)
    x = torch.randn(7, 4, 6, dtype=dtype)
    h0 = torch.randn(4, 8, dtype=dtype)
    tolerance = 2e-5 if dtype == torch.float32 else 1e-11
    for lengths in (None, torch.tensor([7, 1, 4, 6])):
        expected = _run_recur(reference_recur, cell, x, h0, lengths, reverse)
        got = _run_recur(engine.recur, cell, x, h0, lengths, reverse)
        for index, (a, b) in enumerate(zip(got, expected)):
            torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance, msg=lambda m, i=index: f"#{i}: {m}")


@pytest.mark.parametrize("cell_type,options", CELLS, ids=IDS)
def test_cpp_and_python_loops_agree_on_buffers(cell_type, options):
    spec, x_proj, h0, w_hh, b_hh = _inputs(cell_type, options, torch.float32, batch=5, steps=9, hidden=33)
    lengths = torch.tensor([9, 3, 1, 8, 9])
    cpp, py = _impl("cpp"), python_engine
    forward = [impl.forward(spec.name, x_proj, h0, w_hh, b_hh, lengths, True) for impl in (cpp, py)]
    valid = (torch.arange(9).unsqueeze(1) < lengths).unsqueeze(2)
    for index, (a, b) in enumerate(zip(*forward)):
        if index == 2 and a.numel():  # saved values past a sequence's end are never read
            a, b = torch.where(valid, a, 0.0), torch.where(valid, b, 0.0)
        torch.testing.assert_close(a, b, atol=2e-6, rtol=2e-6)
    out, _, saved = forward[0]
    d_out, d_h = torch.randn_like(out), torch.randn_like(h0)
    backward = [impl.backward(spec.name, d_out, d_h, h0, w_hh, b_hh is not None, out, saved, lengths)
                for impl in (cpp, py)]
    for a, b in zip(*backward):
        if a is None:
            assert b is None
        else:
            torch.testing.assert_close(a, b, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("cell_type,options", CELLS, ids=IDS)
def test_inference_path_matches_training_path(cell_type, options):
    spec, x_proj, h0, w_hh, b_hh = _inputs(cell_type, options, torch.float32)
    trained = engine.run(spec, x_proj, h0, w_hh.requires_grad_(), b_hh)
    with torch.no_grad():
        inferred = engine.run(spec, x_proj, h0, w_hh, b_hh)
    for a, b in zip(trained, inferred):
        assert torch.equal(a.detach(), b)
    assert trained[0].grad_fn is not None and inferred[0].grad_fn is None


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
