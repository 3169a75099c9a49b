"""The fused engine for the variants (issue 13): recurrent dropout and zoneout masks as engine inputs.

Oracles: the reference loop (``backend="reference"``, rnnkit's readable step over the cell, which
draws the same masks from the same seed), float64 ``gradcheck`` of the node, and the PyTorch twin of
the C++ loops buffer by buffer.
"""

import warnings

import pytest
import torch

import rnnkit as rk
from rnnkit import backends, engine, loop
from rnnkit.engine import _build, python_engine

IMPLEMENTATIONS = ["cpp", "python"]
# gradcheck through the PyTorch twin's Python loops takes seconds per case: slow (the twin is held to the
# gradchecked C++ loops buffer by buffer in the quick tests, and by the fallback test)
GRADCHECK_IMPLEMENTATIONS = ["cpp", pytest.param("python", marks=pytest.mark.slow)]
REGULARISERS = [{"recurrent_dropout": 0.3}, {"zoneout": 0.25}, {"recurrent_dropout": 0.3, "zoneout": 0.25}]
REG_IDS = ["dropout", "zoneout", "both"]


def _use(monkeypatch, kind):
    """Make the engine run the C++ loops or their PyTorch twin."""
    chosen = engine.implementation(kind)
    monkeypatch.setattr(engine, "implementation", lambda k="auto": chosen)


def _results(layer, x, lengths, seed=3):
    """Output, final states and every gradient, with the masks drawn after ``manual_seed(seed)``."""
    torch.manual_seed(seed)
    x = x.clone().requires_grad_()
    out, state = layer(x, lengths=lengths)
    state = state if isinstance(state, tuple) else (state,)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + sum((s * s).sum() for s in state)
    return [out, *state, *torch.autograd.grad(loss, [x, *layer.parameters()])]


def _assert_all_close(got, expected, tolerance):
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance, msg=lambda m, i=index: f"#{i}: {m}")


def _assert_engine_equals_reference(layer, x, tolerance, backend="auto", modes=(True, False)):
    """The layer on the engine (through ``backend``) against the reference loop: outputs, final states and
    every gradient, in training and evaluation (``modes``), without and with lengths."""
    for training in modes:
        layer.train(training)
        for lengths in (None, torch.tensor([x.shape[0], 2, x.shape[0] - 1])):
            layer.backend = "reference"
            expected = _results(layer, x, lengths)
            layer.backend = backend
            assert backends.select(layer).name == "engine"
            _assert_all_close(_results(layer, x, lengths), expected, tolerance)


def _assert_loops_agree(kind, x_proj, h0, c0, w_hh, b_hh, lengths, rmask, zone, w_hr=None, params=None,
                        forward_tolerance=2e-6, backward_tolerance=3e-5):
    """The C++ loops and their PyTorch twin, buffer by buffer: forward's (out, h_n, c_n, saved, cells),
    then backward's (d_x_proj, d_h0, d_c0, d_w_hh, d_b_hh, d_w_hr, d_params) for the same upstream gradients."""
    steps = x_proj.shape[0]
    cpp, py = engine.implementation("cpp"), python_engine
    extras = (rmask, zone, w_hr, params)
    forward = [impl.forward(kind, x_proj, h0, c0, w_hh, b_hh, lengths, True, *extras) for impl in (cpp, py)]
    valid = (torch.arange(steps).unsqueeze(1) < lengths).unsqueeze(2)
    for index, (a, b) in enumerate(zip(*forward)):
        if index == 3 and a.numel():  # saved values past a sequence's end are never read
            a, b = torch.where(valid, a, 0.0), torch.where(valid, b, 0.0)
        torch.testing.assert_close(a, b, atol=forward_tolerance, rtol=forward_tolerance, msg=lambda m: f"fwd {index}: {m}")
    out, _, _, saved, cells = forward[0]
    torch.manual_seed(1)
    d_out, d_h = torch.randn_like(out), torch.randn_like(h0)
    d_c = torch.randn_like(c0) if c0 is not None else None
    backward = [impl.backward(kind, d_out, d_h, d_c, h0, c0, w_hh, b_hh is not None, out, cells, saved, lengths,
                              *extras) for impl in (cpp, py)]
    for index, (a, b) in enumerate(zip(*backward)):
        if b is None:
            assert a is None or not a.defined() or a.numel() == 0
        else:
            torch.testing.assert_close(a, b, atol=backward_tolerance, rtol=backward_tolerance,
                                       msg=lambda m: f"bwd {index}: {m}")


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("regularisers", REGULARISERS, ids=REG_IDS)
@pytest.mark.parametrize("layer_cls", [rk.LSTM, rk.GRU])
def test_regularised_engine_equals_reference(layer_cls, regularisers, training, monkeypatch):
    """Outputs, states and every gradient over 2 layers x both directions x with/without lengths (the C++
    loops; their PyTorch twin is held to them buffer by buffer below, and by the fallback test)."""
    _use(monkeypatch, "cpp")
    torch.manual_seed(0)
    layer = layer_cls(3, 4, num_layers=2, bidirectional=True, backend="reference", **regularisers).double()
    _assert_engine_equals_reference(layer, torch.randn(6, 3, 3, dtype=torch.float64), 1e-12, "engine", (training,))


@pytest.mark.parametrize("layer_cls", [rk.LSTM, rk.GRU])
def test_regularised_engine_equals_reference_in_float32(layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(5, 16, recurrent_dropout=0.2, zoneout=0.1, bidirectional=True, backend="reference")
    x = torch.randn(9, 4, 5)
    lengths = torch.tensor([9, 4, 1, 7])
    expected = _results(layer, x, lengths)
    layer.backend = "engine"
    _assert_all_close(_results(layer, x, lengths), expected, 2e-5)


def test_same_seed_draws_the_same_masks_on_the_engine_and_the_reference(monkeypatch):
    drawn = {}
    original = loop.draw_masks

    def recording(regularization, steps, state):
        masks = original(regularization, steps, state)
        drawn.setdefault(current, []).append(masks)
        return masks

    monkeypatch.setattr(loop, "draw_masks", recording)
    layer = rk.LSTM(3, 8, num_layers=2, bidirectional=True, recurrent_dropout=0.4, zoneout=0.3, dropout=0.5)
    x = torch.randn(7, 5, 3)
    for current in ("reference", "engine"):
        layer.backend = current
        torch.manual_seed(11)
        layer(x)
    assert len(drawn["reference"]) == len(drawn["engine"]) == 4  # one draw per layer and direction
    for ours, theirs in zip(drawn["engine"], drawn["reference"]):
        assert torch.equal(ours.recurrent, theirs.recurrent)
        assert all(torch.equal(a, b) for a, b in zip(ours.zoneout, theirs.zoneout, strict=True))
    first = drawn["engine"][0]
    assert first.zoneout[0].shape == (7, 5, 8) and first.zoneout[1].shape == (7, 5, 8)  # h then c, every step
    torch.testing.assert_close(first.recurrent.unique(), torch.tensor([0.0, 1 / 0.6]))  # scaled by 1 / (1 - p)


def _node_inputs(kind, dtype, steps=5, batch=3, hidden=4, training=True, seed=0):
    torch.manual_seed(seed)
    spec = engine.BY_NAME[kind]
    x_proj = torch.randn(steps, batch, spec.gates * hidden, dtype=dtype)
    h0 = torch.randn(batch, hidden, dtype=dtype)
    c0 = torch.randn(batch, hidden, dtype=dtype) if spec.states == 2 else None
    w_hh = torch.randn(spec.gates * hidden, hidden, dtype=dtype) / hidden ** 0.5
    b_hh = torch.randn(spec.gates * hidden, dtype=dtype) if spec.uses_hh_bias else None
    rmask = (torch.rand(batch, hidden) < 0.7).to(dtype) / 0.7
    width = spec.states * hidden
    zone = (torch.rand(steps, batch, width) < 0.3).to(dtype) if training else torch.full((1,), 0.3, dtype=dtype)
    return spec, x_proj, h0, c0, w_hh, b_hh, rmask, zone


@pytest.mark.parametrize("impl", GRADCHECK_IMPLEMENTATIONS)
@pytest.mark.parametrize("training", [True, False], ids=["mask", "expectation"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_regularised_node_passes_gradcheck(kind, training, impl):
    spec, x_proj, h0, c0, w_hh, b_hh, rmask, zone = _node_inputs(kind, torch.float64, steps=4, batch=3, hidden=3,
                                                                 training=training)
    implementation = engine.implementation(impl)
    lengths = torch.tensor([4, 2, 3])
    present = [t for t in (x_proj, h0, c0, w_hh, b_hh) if t is not None]

    def fn(*tensors):
        it = iter(tensors)
        args = [next(it) if t is not None else None for t in (x_proj, h0, c0, w_hh, b_hh)]
        out, h_n, c_n = engine.FusedRecurrence.apply(spec, implementation, *args, lengths, None, rmask, zone)
        return (out, h_n, c_n) if c0 is not None else (out, h_n)

    assert torch.autograd.gradcheck(fn, [t.clone().requires_grad_() for t in present])


@pytest.mark.parametrize("kind", ["lstm", "gru", "elman_tanh"])
def test_cpp_and_python_loops_agree_on_buffers_with_masks(kind):
    spec, x_proj, h0, c0, w_hh, b_hh, rmask, zone = _node_inputs(kind, torch.float32, steps=9, batch=5, hidden=33)
    if not spec.zoneout:
        zone = None
    _assert_loops_agree(kind, x_proj, h0, c0, w_hh, b_hh, torch.tensor([9, 3, 1, 8, 9]), rmask, zone)


def test_auto_picks_the_engine_for_regularised_gated_layers_in_training():
    assert backends.select(rk.LSTM(2, 3, zoneout=0.1)).name == "engine"  # the reference is the only alternative
    assert backends.select(rk.GRU(2, 3, recurrent_dropout=0.1)).name == "engine"
    assert backends.select(rk.LSTM(2, 3, recurrent_dropout=0.1).eval()).name == "builtin"  # plain LSTM: oneDNN
    # the Elman cell's backward reads its new state, which zoneout replaces: the reference runs it
    assert backends.select(rk.RNN(2, 3, zoneout=0.1)).name == "reference"
    assert backends.select(rk.RNN(2, 3, recurrent_dropout=0.1)).name == "engine"
    with pytest.raises(ValueError, match="backend 'engine' does not support this RNN"):
        rk.RNN(2, 3, zoneout=0.1, backend="engine")(torch.randn(3, 1, 2))
    with pytest.raises(ValueError, match="backend 'builtin' does not support this GRU"):
        rk.GRU(2, 3, zoneout=0.1, backend="builtin")(torch.randn(3, 1, 2))


def test_a_backend_that_can_never_run_the_layer_is_refused_when_it_is_built():
    # not at the first forward, after the model was assembled; and the message says why
    with pytest.raises(ValueError, match="backend 'engine' does not support this RNN .*: the engine has no zoneout"):
        rk.RNN(2, 3, zoneout=0.1, backend="engine")
    with pytest.raises(ValueError, match="backend 'builtin' does not support this GRU .*: torch's kernels have no "
                                         "zoneout masks"):
        rk.GRU(2, 3, zoneout=0.1, backend="builtin")
    with pytest.raises(ValueError, match="the engine computes in float32 or float64, not float16"):
        rk.GRU(2, 3, backend="engine", dtype=torch.float16)(torch.randn(3, 1, 2, dtype=torch.float16))
    # what a backend can run somewhere is built: in evaluation (no recurrent dropout there), or once on the CPU
    layer = rk.LSTM(2, 3, recurrent_dropout=0.1, backend="builtin").eval()
    assert backends.select(layer).name == "builtin"
    with pytest.raises(ValueError, match="no recurrent dropout masks .*after .eval.. they run the layer"):
        layer.train()(torch.randn(3, 1, 2))
    assert rk.GRU(2, 3, backend="engine", device="meta").weight_hh_l0.is_meta  # how saved models are loaded


def test_failed_build_falls_back_with_identical_regularised_results(monkeypatch):
    torch.manual_seed(0)
    layer = rk.LSTM(3, 6, bidirectional=True, recurrent_dropout=0.3, zoneout=0.2, backend="engine").double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 3])
    _use(monkeypatch, "cpp")
    compiled = _results(layer, x, lengths)
    monkeypatch.undo()
    from torch.utils import cpp_extension

    def no_compiler(**kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(_build, "_state", {})
    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    with pytest.warns(RuntimeWarning, match="pure-PyTorch engine"):
        assert engine.implementation() is python_engine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fallback = _results(layer, x, lengths)
    _assert_all_close(fallback, compiled, 1e-12)


# --- LSTM with proj_size ------------------------------------------------------------------------------


def _torch_results(module, x, seed=3):
    torch.manual_seed(seed)
    x = x.clone().requires_grad_()
    out, (h_n, c_n) = module(x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + (h_n * h_n).sum() + (c_n * c_n).sum()
    return [out, h_n, c_n, *torch.autograd.grad(loss, [x, *module.parameters()])]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)], ids=["1x1", "2x2"])
def test_projected_lstm_on_the_engine_equals_torch_nn(layers, bidirectional, dtype, impl, monkeypatch):
    """torch.nn.LSTM(proj_size=...) is the oracle: outputs, h_n, c_n and every gradient."""
    _use(monkeypatch, impl)
    torch.manual_seed(0)
    ours = rk.LSTM(5, 8, num_layers=layers, bidirectional=bidirectional, proj_size=3, backend="engine").to(dtype)
    theirs = torch.nn.LSTM(5, 8, num_layers=layers, bidirectional=bidirectional, proj_size=3).to(dtype)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(6, 4, 5, dtype=dtype)
    tolerance = 2e-5 if dtype == torch.float32 else 1e-12
    _assert_all_close(_torch_results(ours, x), _torch_results(theirs, x), tolerance)


@pytest.mark.parametrize("regularisers", [{}, *REGULARISERS], ids=["plain", *REG_IDS])
def test_projected_lstm_on_the_engine_equals_reference_with_lengths_and_masks(regularisers):
    torch.manual_seed(0)
    layer = rk.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=4, backend="reference", **regularisers).double()
    _assert_engine_equals_reference(layer, torch.randn(6, 3, 3, dtype=torch.float64), 1e-12, "engine")


@pytest.mark.parametrize("impl", GRADCHECK_IMPLEMENTATIONS)
@pytest.mark.parametrize("with_masks", [False, True], ids=["plain", "masks"])
def test_projected_node_passes_gradcheck(with_masks, impl):
    torch.manual_seed(0)
    steps, batch, hidden, proj = 4, 3, 4, 2
    x_proj = torch.randn(steps, batch, 4 * hidden, dtype=torch.float64)
    h0, c0 = torch.randn(batch, proj, dtype=torch.float64), torch.randn(batch, hidden, dtype=torch.float64)
    w_hh = torch.randn(4 * hidden, proj, dtype=torch.float64) / 2
    w_hr = torch.randn(proj, hidden, dtype=torch.float64) / 2
    rmask = (torch.rand(batch, proj) < 0.7).double() / 0.7 if with_masks else None
    zone = (torch.rand(steps, batch, proj + hidden) < 0.3).double() if with_masks else None
    implementation = engine.implementation(impl)
    lengths = torch.tensor([4, 2, 3])

    def fn(x_proj, h0, c0, w_hh, w_hr):
        return engine.FusedRecurrence.apply(engine.BY_NAME["lstm"], implementation, x_proj, h0, c0, w_hh, None,
                                            lengths, None, rmask, zone, w_hr)

    assert torch.autograd.gradcheck(fn, [t.clone().requires_grad_() for t in (x_proj, h0, c0, w_hh, w_hr)])


def test_cpp_and_python_loops_agree_on_buffers_with_a_projection():
    torch.manual_seed(0)
    steps, batch, hidden, proj = 9, 5, 33, 17
    x_proj = torch.randn(steps, batch, 4 * hidden)
    h0, c0 = torch.randn(batch, proj), torch.randn(batch, hidden)
    w_hh, w_hr = torch.randn(4 * hidden, proj) / 5, torch.randn(proj, hidden) / 5
    rmask = (torch.rand(batch, proj) < 0.7).float() / 0.7
    zone = (torch.rand(steps, batch, proj + hidden) < 0.3).float()
    _assert_loops_agree("lstm", x_proj, h0, c0, w_hh, None, torch.tensor([9, 3, 1, 8, 9]), rmask, zone, w_hr)


# --- peephole LSTM ---------------------------------------------------------------------------------------


def _peephole_layer(**kwargs):
    torch.manual_seed(0)
    layer = rk.PeepholeLSTM(3, 5, backend="reference", **kwargs).double()
    with torch.no_grad():  # the default init draws peepholes like biases; make them clearly non-zero
        for name, parameter in layer.named_parameters():
            if name.startswith("weight_c"):
                parameter.normal_()
    return layer


@pytest.mark.parametrize("regularisers", [{}, *REGULARISERS], ids=["plain", *REG_IDS])
def test_peephole_lstm_on_the_engine_equals_reference(regularisers):
    """Outputs, states and every gradient (peepholes included) over 2 layers x both directions x lengths."""
    layer = _peephole_layer(num_layers=2, bidirectional=True, **regularisers)
    _assert_engine_equals_reference(layer, torch.randn(6, 3, 3, dtype=torch.float64), 1e-12)


def test_peephole_lstm_on_the_engine_equals_reference_in_float32():
    torch.manual_seed(0)
    layer = rk.PeepholeLSTM(5, 16, bidirectional=True, zoneout=0.1, backend="reference")
    x, lengths = torch.randn(9, 4, 5), torch.tensor([9, 4, 1, 7])
    expected = _results(layer, x, lengths)
    layer.backend = "engine"
    _assert_all_close(_results(layer, x, lengths), expected, 2e-5)


# Per-unit vectors each LSTM variant's node takes after its weights: peepholes (i, f, o) or the layer norms'
# gains and biases ([γ_hh | β_hh] over 4 gates, [γ_c | β_c]).
NODE_EXTRAS = {"peephole_lstm": 3, "ln_lstm": 10}


def _lstm_variant_node_inputs(cell, dtype, steps, batch, hidden, seed=0):
    torch.manual_seed(seed)
    x_proj = torch.randn(steps, batch, 4 * hidden, dtype=dtype)
    h0, c0 = torch.randn(batch, hidden, dtype=dtype), torch.randn(batch, hidden, dtype=dtype)
    w_hh = torch.randn(4 * hidden, hidden, dtype=dtype) / hidden ** 0.5
    extra = torch.randn(NODE_EXTRAS[cell] * hidden, dtype=dtype)
    rmask = (torch.rand(batch, hidden) < 0.7).to(dtype) / 0.7
    zone = (torch.rand(steps, batch, 2 * hidden) < 0.3).to(dtype)
    return x_proj, h0, c0, w_hh, extra, rmask, zone


@pytest.mark.parametrize("impl", GRADCHECK_IMPLEMENTATIONS)
@pytest.mark.parametrize("with_masks", [False, True], ids=["plain", "masks"])
@pytest.mark.parametrize("cell", sorted(NODE_EXTRAS))
def test_lstm_variant_node_passes_gradcheck(cell, with_masks, impl):
    x_proj, h0, c0, w_hh, extra, rmask, zone = _lstm_variant_node_inputs(cell, torch.float64, 4, 3, 3)
    implementation = engine.implementation(impl)
    lengths = torch.tensor([4, 2, 3])
    masks = (rmask, zone) if with_masks else (None, None)

    def fn(x_proj, h0, c0, w_hh, extra):
        return engine.FusedRecurrence.apply(engine.BY_NAME[cell], implementation, x_proj, h0, c0, w_hh, None,
                                            lengths, None, *masks, None, extra)

    assert torch.autograd.gradcheck(fn, [t.clone().requires_grad_() for t in (x_proj, h0, c0, w_hh, extra)])


def test_cpp_and_python_loops_agree_on_buffers_for_the_peephole_lstm():
    steps, batch = 9, 5
    x_proj, h0, c0, w_hh, peepholes, rmask, zone = _lstm_variant_node_inputs("peephole_lstm", torch.float32, steps,
                                                                              batch, 33)
    _assert_loops_agree("peephole_lstm", x_proj, h0, c0, w_hh, None, torch.tensor([9, 3, 1, 8, 9]), rmask, zone,
                        None, peepholes, backward_tolerance=5e-5)


# --- minGRU / minLSTM: the gated scan in C++ ---------------------------------------------------------------


def _scan_results(pre, h0, monkeypatch, compiled):
    from rnnkit.variants import minimal

    if not compiled:
        monkeypatch.setattr(minimal, "_compiled_scan", lambda pre: None)
    pre, h0 = pre.clone().requires_grad_(), h0.clone().requires_grad_()
    out, final = minimal.fused_gated_scan(pre, h0)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    results = [out, final, *torch.autograd.grad((out * weights).sum() + (final * final).sum(), [pre, h0])]
    monkeypatch.undo()
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_gated_scan_equals_its_pytorch_twin(dtype, monkeypatch):
    torch.manual_seed(0)
    pre = torch.randn(300, 3, 2 * 37, dtype=dtype) * 3  # both branches of g(v), saturated gates too
    h0 = torch.randn(3, 37, dtype=dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    _assert_all_close(_scan_results(pre, h0, monkeypatch, True), _scan_results(pre, h0, monkeypatch, False),
                      tolerance)


def test_compiled_gated_scan_passes_gradcheck():
    from rnnkit.variants import minimal

    torch.manual_seed(0)
    pre = torch.randn(6, 2, 8, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert minimal._compiled_scan(pre) is not None
    assert torch.autograd.gradcheck(lambda p, h: minimal._FusedGatedScan.apply(p, h), (pre, h0))


def test_min_gru_layer_with_the_compiled_scan_equals_its_step_by_step_loop():
    torch.manual_seed(0)
    layer = rk.MinGRU(3, 6, bidirectional=True).double()
    x, lengths = torch.randn(40, 3, 3, dtype=torch.float64), torch.tensor([40, 7, 23])
    fused = _results(layer, x, lengths)
    with loop.observing(_NullObserver()):  # the readable loop, step by step over the cell's recurrence
        stepped = _results(layer, x, lengths)
    _assert_all_close(fused, stepped, 1e-12)


class _NullObserver:
    def layer(self, module):
        pass

    def begin(self, lengths, reverse):
        pass

    def step(self, state):
        pass


# --- LayerNormGRU ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("regularisers", [{}, *REGULARISERS], ids=["plain", *REG_IDS])
@pytest.mark.parametrize("cls", [rk.LayerNormGRU, rk.LayerNormLSTM], ids=["gru", "lstm"])
def test_layernorm_cells_on_the_engine_equal_reference(cls, regularisers, bias):
    """Outputs, states and every gradient (gains, shifts, biases) over 2 layers x both directions x lengths."""
    torch.manual_seed(0)
    layer = cls(3, 5, num_layers=2, bidirectional=True, bias=bias, backend="reference", **regularisers).double()
    with torch.no_grad():  # gains 1 and shifts 0 by default; make every layer-norm parameter matter
        for name, parameter in layer.named_parameters():
            if name.startswith("ln_"):
                parameter.normal_()
    _assert_engine_equals_reference(layer, torch.randn(6, 3, 3, dtype=torch.float64), 1e-11)


def test_layernorm_gru_on_the_engine_equals_reference_in_float32():
    torch.manual_seed(0)
    layer = rk.LayerNormGRU(5, 16, bidirectional=True, zoneout=0.1, backend="reference")
    x, lengths = torch.randn(9, 4, 5), torch.tensor([9, 4, 1, 7])
    expected = _results(layer, x, lengths)
    layer.backend = "engine"
    _assert_all_close(_results(layer, x, lengths), expected, 3e-5)


def _ln_gru_node_inputs(dtype, steps, batch, hidden, seed=0):
    torch.manual_seed(seed)
    x_proj = torch.randn(steps, batch, 3 * hidden, dtype=dtype)
    h0 = torch.randn(batch, hidden, dtype=dtype)
    w_hh = torch.randn(3 * hidden, hidden, dtype=dtype) / hidden ** 0.5
    params = torch.randn(9 * hidden, dtype=dtype)
    rmask = (torch.rand(batch, hidden) < 0.7).to(dtype) / 0.7
    zone = (torch.rand(steps, batch, hidden) < 0.3).to(dtype)
    return x_proj, h0, w_hh, params, rmask, zone


@pytest.mark.parametrize("impl", GRADCHECK_IMPLEMENTATIONS)
@pytest.mark.parametrize("with_masks", [False, True], ids=["plain", "masks"])
def test_layernorm_gru_node_passes_gradcheck(with_masks, impl):
    x_proj, h0, w_hh, params, rmask, zone = _ln_gru_node_inputs(torch.float64, 4, 3, 3)
    implementation = engine.implementation(impl)
    lengths = torch.tensor([4, 2, 3])
    masks = (rmask, zone) if with_masks else (None, None)

    def fn(x_proj, h0, w_hh, params):
        return engine.FusedRecurrence.apply(engine.BY_NAME["ln_gru"], implementation, x_proj, h0, None, w_hh, None,
                                            lengths, None, *masks, None, params)[:2]

    assert torch.autograd.gradcheck(fn, [t.clone().requires_grad_() for t in (x_proj, h0, w_hh, params)])


def test_cpp_and_python_loops_agree_on_buffers_for_the_layernorm_gru():
    steps, batch = 9, 5
    x_proj, h0, w_hh, params, rmask, zone = _ln_gru_node_inputs(torch.float32, steps, batch, 33)
    _assert_loops_agree("ln_gru", x_proj, h0, None, w_hh, None, torch.tensor([9, 3, 1, 8, 9]), rmask, zone, None,
                        params, forward_tolerance=1e-5, backward_tolerance=1e-4)


# --- LayerNormLSTM ---------------------------------------------------------------------------------------


def test_layernorm_lstm_on_the_engine_equals_reference_in_float32():
    torch.manual_seed(0)
    layer = rk.LayerNormLSTM(5, 16, bidirectional=True, zoneout=0.1, recurrent_dropout=0.2, backend="reference")
    x, lengths = torch.randn(9, 4, 5), torch.tensor([9, 4, 1, 7])
    expected = _results(layer, x, lengths)
    layer.backend = "engine"
    # two layer norms per step, each dividing by a σ of the order of 0.1: float32 rounding differences of the
    # two summation orders reach ~1e-4 in the input gradient (float64 above holds them to 1e-11)
    _assert_all_close(_results(layer, x, lengths), expected, 2e-4)


def test_cpp_and_python_loops_agree_on_buffers_for_the_layernorm_lstm():
    x_proj, h0, c0, w_hh, params, rmask, zone = _lstm_variant_node_inputs("ln_lstm", torch.float32, 9, 5, 33)
    _assert_loops_agree("ln_lstm", x_proj, h0, c0, w_hh, None, torch.tensor([9, 3, 1, 8, 9]), rmask, zone, None,
                        params, forward_tolerance=1e-5, backward_tolerance=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm_proj", "peephole_lstm", "ln_gru", "ln_lstm"])
def test_variant_nodes_are_differentiable_twice(kind):
    """create_graph=True re-runs the same masks, projection and cell parameters in plain ops."""
    torch.manual_seed(0)
    steps, batch, hidden, dtype = 3, 2, 3, torch.float64
    cell = engine.BY_NAME["lstm" if kind == "lstm_proj" else kind]
    width = 2 if kind == "lstm_proj" else hidden  # the state h the loop carries
    x_proj = torch.randn(steps, batch, cell.gates * hidden, dtype=dtype)
    h0 = torch.randn(batch, width, dtype=dtype)
    c0 = torch.randn(batch, hidden, dtype=dtype) if cell.states == 2 else None
    w_hh = torch.randn(cell.gates * hidden, width, dtype=dtype) / 2
    extra = {"lstm_proj": torch.randn(width, hidden, dtype=dtype) / 2,
             "peephole_lstm": torch.randn(3 * hidden, dtype=dtype), "ln_gru": torch.randn(9 * hidden, dtype=dtype),
             "ln_lstm": torch.randn(10 * hidden, dtype=dtype)}[kind]
    rmask = (torch.rand(batch, width) < 0.7).to(dtype) / 0.7
    zone = (torch.rand(steps, batch, width + (hidden if c0 is not None else 0)) < 0.3).to(dtype)
    implementation = engine.implementation("cpp")
    lengths = torch.tensor([3, 2])
    tensors = [t.clone().requires_grad_() for t in (x_proj, h0, w_hh, extra)]

    def fn(x_proj, h0, w_hh, extra):
        w_hr, params = (extra, None) if kind == "lstm_proj" else (None, extra)
        return engine.FusedRecurrence.apply(cell, implementation, x_proj, h0, c0, w_hh, None, lengths, None, rmask,
                                            zone, w_hr, params)[:2]

    assert torch.autograd.gradgradcheck(fn, tensors)


# --- minGRU / minLSTM: the fused scan chunked over time ----------------------------------------------------


@pytest.mark.parametrize("compiled", [True, False], ids=["cpp", "python"])
@pytest.mark.parametrize("chunk", [1, 7, 64, 299, 1000])
def test_chunked_gated_scan_equals_the_unchunked_one(chunk, compiled, monkeypatch):
    """Outputs, final state and both gradients in float64, for chunk sizes that do not divide T = 300 (and
    one larger than T): the state and the backward's carried gradient cross the chunk boundaries exactly."""
    from rnnkit.variants import minimal

    if not compiled:
        monkeypatch.setattr(minimal, "_compiled_scan", lambda pre: None)
    torch.manual_seed(0)
    pre = torch.randn(300, 3, 2 * 9, dtype=torch.float64) * 3
    h0 = torch.randn(3, 9, dtype=torch.float64)

    def results(chunk):
        p, h = pre.clone().requires_grad_(), h0.clone().requires_grad_()
        out, final = minimal.fused_gated_scan(p, h, chunk=chunk)
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        return [out, final, *torch.autograd.grad((out * weights).sum() + (final * final).sum(), [p, h])]

    _assert_all_close(results(chunk), results(None), 1e-13)


def test_chunked_gated_scan_passes_gradcheck_across_chunks():
    from rnnkit.variants import minimal

    torch.manual_seed(0)
    pre = torch.randn(7, 2, 8, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, h: minimal._FusedGatedScan.apply(p, h, 3), (pre, h0))


def test_chunk_must_be_a_positive_int():
    from rnnkit.variants import minimal

    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="chunk must be a positive int"):
            minimal.fused_gated_scan(torch.randn(4, 1, 2), torch.randn(1, 1), chunk=bad)


# --- minGRU / minLSTM: the sequential step kernel for generation --------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_kernel_equals_the_scan_step_by_step(dtype):
    """The engine's step kernel, from each step's state, gives the C++ scan's outputs bit for bit (its row loop)."""
    from rnnkit.variants import minimal

    torch.manual_seed(0)
    pre = torch.randn(40, 3, 2 * 37, dtype=dtype) * 3  # both branches of g(v), saturated gates too
    h = torch.randn(3, 37, dtype=dtype)
    with torch.no_grad():
        scanned, _ = minimal.fused_gated_scan(pre, h, chunk=16)
        assert engine.implementation() is not python_engine
        for t in range(pre.shape[0]):
            h = minimal.gated_step(pre[t], h)
            assert torch.equal(h, scanned[t]), t
    # and the PyTorch step (the reference recurrence: torch's sigmoid) agrees to rounding
    k, v = pre[-1].chunk(2, dim=-1)
    torch.testing.assert_close(torch.lerp(scanned[-2], minimal.g(v), torch.sigmoid(k)), scanned[-1])


@pytest.mark.parametrize("cell", ["min_gru", "min_lstm"])
def test_generation_steps_min_cells_through_the_step_kernel(cell, monkeypatch):
    from rnnkit import sampling
    from rnnkit.models import SequenceTagger
    from rnnkit.variants import minimal

    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=11, output_size=0, hidden_size=12, num_layers=2, cell=cell).eval()
    calls = []
    compiled = engine.implementation()
    monkeypatch.setattr(minimal, "_compiled_scan", lambda pre: _Counting(compiled, calls))
    fast = sampling.FastStep.of(model)
    tokens = torch.randint(0, 11, (3, 5))
    with torch.no_grad():
        _, ours = fast.prime(tokens[:, :2])
        theirs = ours
        for t in range(2, 5):
            got, ours = fast.step(tokens[:, t], ours)
            want, theirs = model.step(tokens[:, t], theirs)
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert calls.count("gated_step") == 3 * 2  # every step, both layers


class _Counting:
    def __init__(self, compiled, calls):
        self.compiled, self.calls = compiled, calls

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.compiled, name)
