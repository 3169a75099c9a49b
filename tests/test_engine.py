"""The fused engine: gradcheck, and equality with the reference loop and between its C++ and PyTorch loops."""

import shutil
import warnings
from pathlib import Path

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
    out, final = recur(type(cell), x, state, cell.parameter_groups()[0], lengths=lengths, reverse=reverse,
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


def _gru_results(backend):
    """Output, final state and every gradient of a small float64 GRU (seeded parameters and input)."""
    torch.manual_seed(3)
    layer = rk.GRU(3, 4, backend=backend).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    out, h_n = layer(x)
    (out.sum() + (h_n * h_n).sum()).backward()
    return [out.detach(), h_n.detach(), x.grad, *(p.grad for p in layer.parameters())]


def _fallback_warnings(monkeypatch, capfd, caplog):
    """Run the default GRU twice with a fresh build state; return the RuntimeWarnings and stderr."""
    monkeypatch.setattr(_build, "_state", {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _gru_results("auto")
        _gru_results("auto")  # a second forward pass must not warn again
    assert engine.implementation() is python_engine
    for a, b in zip(got, _gru_results("reference")):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr
    assert not [r for r in caplog.records if r.name.startswith("torch.utils.cpp_extension")]
    return [w for w in caught if issubclass(w.category, RuntimeWarning)], stderr


def test_missing_engine_source_warns_once_and_falls_back(monkeypatch, tmp_path, capfd, caplog):
    monkeypatch.setattr(_build, "SOURCE", tmp_path / "csrc" / "engine.cpp")
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    caught, stderr = _fallback_warnings(monkeypatch, capfd, caplog)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "engine.cpp is missing from this installation" in message and "Reinstall rnnkit" in message
    assert len(message.splitlines()) == 1
    assert "compiling" not in stderr


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_failed_compile_warns_once_with_the_compiler_error(monkeypatch, tmp_path, capfd, caplog):
    broken = tmp_path / "engine.cpp"
    broken.write_text("#error broken on purpose\n")
    monkeypatch.setattr(_build, "SOURCE", broken)
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv("CXX", raising=False)
    caught, stderr = _fallback_warnings(monkeypatch, capfd, caplog)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert len(message.splitlines()) == 1
    assert "the compile failed: " in message and "#error broken on purpose" in message
    log = next((tmp_path / "cache").glob("rnnkit_engine_*/build-error.log"))
    assert f"details in {log}" in message and "ninja: build stopped" in log.read_text()
    assert stderr.count("rnnkit: compiling the fused CPU recurrent engine") == 1
    assert str(tmp_path / "cache") in stderr


@pytest.mark.parametrize("compiler,reason", [
    ("/nonexistent/c++", "no C++ compiler: '/nonexistent/c++' is not on PATH"),
    ("/bin/false", "`/bin/false --version` exited with status 1"),
    ("fake", "ImportError: "),  # "compiles" without output; PyTorch logs a banner about the compiler first
], ids=["missing", "failing", "fake"])
def test_unusable_compiler_warns_once_without_a_traceback(monkeypatch, tmp_path, capfd, caplog, compiler, reason):
    if compiler == "fake":
        compiler = tmp_path / "fakecc"
        compiler.write_text("#!/bin/sh\nexit 0\n")
        compiler.chmod(0o755)
    elif compiler == "/bin/false" and not Path(compiler).exists():
        pytest.skip("no /bin/false")
    monkeypatch.setenv("CXX", str(compiler))
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    caught, stderr = _fallback_warnings(monkeypatch, capfd, caplog)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert reason in message and "pure-PyTorch engine" in message and len(message.splitlines()) == 1
    assert "WARNING" not in stderr  # PyTorch's compiler banner goes to the build log, not the terminal
    if not isinstance(compiler, Path):  # found unusable before announcing a build
        assert "compiling" not in stderr


def test_unwritable_engine_cache_warns_and_names_the_variable(monkeypatch, tmp_path, capfd, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(_build.CACHE_ENV, str(blocker / "cache"))  # a directory cannot be made under a file
    caught, _ = _fallback_warnings(monkeypatch, capfd, caplog)
    assert len(caught) == 1
    assert "cannot create the cache directory" in str(caught[0].message)
    assert f"Set {_build.CACHE_ENV} to a writable directory" in str(caught[0].message)


def test_build_goes_to_the_cache_announced_once_and_clears_a_stale_lock(monkeypatch, tmp_path, capfd):
    from torch.utils import cpp_extension

    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    calls = []

    def fake_load(name, sources, build_directory, **kwargs):
        # A build killed midway leaves PyTorch's lock file behind; loading must not wait on it forever.
        assert not (Path(build_directory) / "lock").exists()
        calls.append(build_directory)
        Path(build_directory, f"{name}.so").write_bytes(b"")
        return "compiled"

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    key = _build._cpu_key(_build.SOURCE)
    build_dir = tmp_path / "cache" / f"rnnkit_engine_{key}"
    build_dir.mkdir(parents=True)
    (build_dir / "lock").write_text("")
    for _ in range(2):  # a second process finds the library built
        monkeypatch.setattr(_build, "_state", {})
        assert _build.extension() == "compiled"
    assert calls == [str(build_dir)] * 2
    assert capfd.readouterr().err.count("rnnkit: compiling the fused CPU recurrent engine") == 1


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


class _Recording:
    """A backend object (``layer.backend`` may be one) that records what it is handed and runs the reference."""

    name = "recording"

    def __init__(self):
        self.calls = []

    def supports(self, spec):
        return True

    preferred = supports

    def run(self, spec, params, x, state, lengths):
        self.calls.append((spec, params))
        return rk.backends.REFERENCE.run(spec, params, x, state, lengths)


def test_backends_receive_a_frozen_description_and_the_parameters_not_the_layer():
    torch.manual_seed(0)
    layer = rk.LSTM(3, 5, num_layers=2, bidirectional=True, merge="sum", dropout=0.25, zoneout=0.1,
                    backend="reference")
    spec = layer.describe()
    assert (spec.cell, spec.layer_name, spec.input_size, spec.hidden_size, spec.num_layers, spec.bidirectional,
            spec.merge, spec.dropout, spec.training) == (rk.LSTMCell, "LSTM", 3, 5, 2, True, "sum", 0.25, True)
    assert spec.regularization == rk.loop.Regularization(0.0, 0.1, True)
    with pytest.raises(AttributeError):  # frozen: a backend cannot change what it was told
        spec.hidden_size = 6
    assert hash(spec) == hash(layer.describe()) and spec == layer.describe()
    layer.eval()
    assert layer.describe().training is False and layer.describe() != spec

    recording = _Recording()
    x = torch.randn(4, 2, 3)
    expected, _ = layer(x)
    layer.backend = recording
    output, _ = layer(x)
    (seen, params), = recording.calls
    assert seen == layer.describe()
    assert [list(group) for group in params] == [["weight_ih", "weight_hh", "bias_ih", "bias_hh"]] * 4
    assert all(params[2 * k + d][name] is getattr(layer, f"{name}_l{k}{'_reverse' * d}")
               for k in range(2) for d in range(2) for name in params[0])
    torch.testing.assert_close(output, expected, rtol=0, atol=0)


def test_description_names_step_options_device_and_dtype():
    spec = rk.RNN(2, 3, nonlinearity="relu").double().describe()
    assert spec.step_options == {"nonlinearity": "relu"} and spec.torch_kernel == "RNN_RELU"
    assert (spec.device_type, spec.dtype) == ("cpu", torch.float64)
    assert rk.LSTM(4, 3, proj_size=2).describe().proj_size == 2


@pytest.mark.parametrize("layer", [lambda: rk.GRU(3, 4), lambda: rk.LSTM(3, 4, proj_size=2, bidirectional=True)])
def test_strided_lengths_are_read_as_their_values(layer):
    """The C++ loops read lengths[b] from the raw buffer: table[:, 0] (stride 2) was read as [6, 0, 2] and an
    expand()ed length past its one-element buffer."""
    torch.manual_seed(0)
    model, x = layer(), torch.randn(6, 3, 3)
    for lengths in (torch.tensor([[6, 0], [2, 0], [4, 0]])[:, 0], torch.tensor([4]).expand(3)):
        assert not lengths.is_contiguous()
        model.backend = "auto"
        assert rk.backends.select(model).name == "engine"
        fused = model(x, lengths=lengths)
        model.backend = "reference"
        reference = model(x, lengths=lengths)
        torch.testing.assert_close(fused[0], reference[0])
        torch.testing.assert_close(fused[1], reference[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_strided_recurrent_bias_from_a_parametrization_is_read_as_its_values(dtype):
    """compatibility.md: parametrizations work on every backend; the float32 GRU kernel read a stride-2 bias_hh
    as if it were contiguous."""
    from torch.nn.utils import parametrize

    class EveryOther(torch.nn.Module):  # a stride-2 view of the same values
        def forward(self, bias):
            return torch.stack([bias, torch.zeros_like(bias)], 1)[:, 0]

    torch.manual_seed(0)
    gru = rk.GRU(3, 4, dtype=dtype)
    parametrize.register_parametrization(gru, "bias_hh_l0", EveryOther())
    assert not gru.bias_hh_l0.is_contiguous()
    x = torch.randn(5, 2, 3, dtype=dtype)
    fused, _ = gru(x)
    fused.sum().backward()
    grad = gru.parametrizations.bias_hh_l0.original.grad.clone()
    gru.zero_grad()
    gru.backend = "reference"
    reference, _ = gru(x)
    reference.sum().backward()
    torch.testing.assert_close(fused, reference)
    torch.testing.assert_close(grad, gru.parametrizations.bias_hh_l0.original.grad)
