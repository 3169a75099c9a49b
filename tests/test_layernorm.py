"""Layer-normalised LSTM and GRU (rnnkit.variants.layernorm): the layers against the paper's equations
written out here independently of the cells, gradients, packing, init, torch.nn checkpoints, Haste's
formulation, task models, save/load, the command line and the lab."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk
from rnnkit import backends
from rnnkit.cli.main import main
from rnnkit.init import SCHEMES

F64 = torch.float64
EPS = 1e-5
LAYERS = {"lstm": rk.LayerNormLSTM, "gru": rk.LayerNormGRU}


# ---------------------------------------------------------------- the paper's equations, by hand


def ln(v, gain, shift):
    """Layer norm over the last dimension: biased variance, eps 1e-5, gain and shift (None: no shift)."""
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    out = (v - mean) / torch.sqrt(var + EPS) * gain
    return out if shift is None else out + shift


def lstm_step(x, state, p, read=None):
    """a = LN(W_ih x) + LN(W_hh h) + b_ih + b_hh (gates i, f, g, o); c' = f c + i g; h' = o tanh(LN(c')).

    ``read``: the state W_hh reads in place of h (recurrent dropout's masked h)."""
    h, c = state
    a = ln(x @ p["weight_ih"].T, p["ln_ih_weight"], p.get("ln_ih_bias")) \
        + ln((h if read is None else read) @ p["weight_hh"].T, p["ln_hh_weight"], p.get("ln_hh_bias"))
    if "bias_ih" in p:
        a = a + p["bias_ih"] + p["bias_hh"]
    hidden = h.shape[-1]
    i, f = torch.sigmoid(a[..., :hidden]), torch.sigmoid(a[..., hidden:2 * hidden])
    g, o = torch.tanh(a[..., 2 * hidden:3 * hidden]), torch.sigmoid(a[..., 3 * hidden:])
    c = f * c + i * g
    return o * torch.tanh(ln(c, p["ln_c_weight"], p.get("ln_c_bias"))), c


def gru_step(x, state, p, read=None):
    """x^ = LN(W_ih x) + b_ih, h^ = LN(W_hh h) + b_hh (r, z, n); n = tanh(x^_n + r h^_n); h' = (1-z) n + z h."""
    (h,) = state
    xs = ln(x @ p["weight_ih"].T, p["ln_ih_weight"], p.get("ln_ih_bias")) + p.get("bias_ih", 0)
    hs = ln((h if read is None else read) @ p["weight_hh"].T, p["ln_hh_weight"], p.get("ln_hh_bias")) + p.get("bias_hh", 0)
    hidden = h.shape[-1]
    r = torch.sigmoid(xs[..., :hidden] + hs[..., :hidden])
    z = torch.sigmoid(xs[..., hidden:2 * hidden] + hs[..., hidden:2 * hidden])
    n = torch.tanh(xs[..., 2 * hidden:] + r * hs[..., 2 * hidden:])
    return ((1 - z) * n + z * h,)


STEPS = {"lstm": lstm_step, "gru": gru_step}


def params_of(layer, k, suffix):
    """The layer's parameters of layer ``k`` and one direction, by the cell's names."""
    tail = f"_l{k}{suffix}"
    return {name[: -len(tail)]: p for name, p in layer.named_parameters() if name.endswith(tail)}


def by_hand(layer, step, x, lengths, hx):
    """The whole stacked (bi)directional network, one sequence and one step at a time (time-major x)."""
    steps, batch, _ = x.shape
    hidden, dirs = layer.hidden_size, layer.num_directions
    final = [torch.empty_like(s) for s in hx]
    inputs = x
    for k in range(layer.num_layers):
        outputs = torch.zeros(steps, batch, dirs * hidden, dtype=x.dtype)
        for d, suffix in enumerate(("", "_reverse")[:dirs]):
            p = params_of(layer, k, suffix)
            for b in range(batch):
                valid = int(lengths[b])
                state = tuple(s[k * dirs + d, b] for s in hx)
                for t in (reversed(range(valid)) if d else range(valid)):
                    state = step(inputs[t, b], state, p)
                    outputs[t, b, d * hidden:(d + 1) * hidden] = state[0]
                for s, value in zip(final, state):
                    s[k * dirs + d, b] = value
        inputs = outputs
    return inputs, tuple(final)


@torch.no_grad()
def randomize(module):
    """Move every parameter off its initial value (gains around 1), so each one matters."""
    for name, p in module.named_parameters():
        if "ln_" in name and "weight" in name:
            p.copy_(1 + 0.3 * torch.randn_like(p))
        else:
            p.copy_(0.6 * torch.randn_like(p))
    return module


def make(kind, *args, **kwargs):
    return randomize(LAYERS[kind](*args, **kwargs, dtype=F64))


def state_for(kind, layer, batch):
    shape = (layer.num_layers * layer.num_directions, batch, layer.hidden_size)
    return tuple(0.5 * torch.randn(shape, dtype=F64) for _ in range(2 if kind == "lstm" else 1))


def as_hx(kind, state):
    return state if kind == "lstm" else state[0]


def as_tuple(kind, final):
    return final if kind == "lstm" else (final,)


# ---------------------------------------------------------------- the layers


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_equals_the_equations_by_hand(kind, bias):
    layer = make(kind, 3, 4, num_layers=2, bidirectional=True, bias=bias)
    # both layers run on the fused engine (its C++ layer norms are held to the equations here)
    assert backends.select(layer).name == "engine"
    x = torch.randn(6, 3, 3, dtype=F64)
    lengths = torch.tensor([6, 2, 4])
    hx = state_for(kind, layer, 3)
    output, final = layer(x, as_hx(kind, hx), lengths=lengths)
    expected_out, expected_final = by_hand(layer, STEPS[kind], x, lengths, hx)
    torch.testing.assert_close(output, expected_out, rtol=0, atol=1e-10)
    for got, want in zip(as_tuple(kind, final), expected_final):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    assert torch.all(output[2:, 1] == 0) and torch.all(output[4:, 2] == 0)
    # the reverse direction of sequence 1 (length 2) starts at its last valid step, 1
    p = params_of(layer, 0, "_reverse")
    state = STEPS[kind](x[1, 1], tuple(s[1, 1] for s in hx), p)
    state = STEPS[kind](x[0, 1], state, p)
    single = LAYERS[kind](3, 4, bidirectional=True, bias=bias, dtype=F64)
    single.load_state_dict({k: v for k, v in layer.state_dict().items() if "_l0" in k})
    out0, _ = single(x, as_hx(kind, tuple(s[:2] for s in hx)), lengths=lengths)
    torch.testing.assert_close(out0[0, 1, 4:], state[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradcheck_bidirectional_stacked_with_lengths(kind):
    layer = make(kind, 3, 2, num_layers=2, bidirectional=True)
    x = torch.randn(4, 2, 3, dtype=F64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    hx = tuple(s.requires_grad_() for s in state_for(kind, layer, 2))
    names = [name for name, _ in layer.named_parameters()]
    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    n_state = len(hx)

    def run(inputs, *rest):
        state, params = rest[:n_state], rest[n_state:]
        out, final = torch.func.functional_call(layer, dict(zip(names, params)), (inputs, as_hx(kind, state)),
                                                {"lengths": lengths})
        return (out, *as_tuple(kind, final))

    assert torch.autograd.gradcheck(run, (x, *hx, *weights), fast_mode=True)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_packed_sequence_gives_the_same_as_lengths(kind):
    layer = make(kind, 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 3, 3, dtype=F64)
    lengths = torch.tensor([3, 5, 1])
    output, final = layer(x, lengths=lengths)
    packed_out, packed_final = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
    unpacked, unpacked_lengths = pad_packed_sequence(packed_out)
    assert unpacked_lengths.tolist() == lengths.tolist()
    torch.testing.assert_close(unpacked, output, rtol=0, atol=1e-12)
    for got, want in zip(as_tuple(kind, packed_final), as_tuple(kind, final)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_batch_first(kind):
    layer = make(kind, 3, 4, bidirectional=True)
    twin = LAYERS[kind](3, 4, bidirectional=True, batch_first=True, dtype=F64)
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64)
    lengths = torch.tensor([2, 5])
    output, final = layer(x, lengths=lengths)
    output_bf, final_bf = twin(x.transpose(0, 1), lengths=lengths)
    torch.testing.assert_close(output_bf, output.transpose(0, 1), rtol=0, atol=1e-12)
    for got, want in zip(as_tuple(kind, final_bf), as_tuple(kind, final)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- the cells


def test_cell_modules_equal_one_step_of_the_equations():
    cell = randomize(rk.LayerNormLSTMCell(3, 4, dtype=F64))
    p = dict(cell.named_parameters())
    x, h, c = torch.randn(2, 3, dtype=F64), torch.randn(2, 4, dtype=F64), torch.randn(2, 4, dtype=F64)
    h1, c1 = cell(x, (h, c))
    want_h, want_c = lstm_step(x, (h, c), p)
    torch.testing.assert_close(h1, want_h, rtol=0, atol=1e-12)
    torch.testing.assert_close(c1, want_c, rtol=0, atol=1e-12)
    h1u, c1u = cell(x[1], (h[1], c[1]))  # unbatched
    torch.testing.assert_close(h1u, want_h[1], rtol=0, atol=1e-12)
    gru = randomize(rk.LayerNormGRUCell(3, 4, dtype=F64))
    torch.testing.assert_close(gru(x, h), gru_step(x, (h,), dict(gru.named_parameters()))[0], rtol=0, atol=1e-12)
    zero = torch.zeros(2, 4, dtype=F64)
    torch.testing.assert_close(gru(x), gru_step(x, (zero,), dict(gru.named_parameters()))[0], rtol=0, atol=1e-12)
    # not subclasses of the classic cells: no torch kernel, so every layer runs the reference loop
    for cls in (rk.LayerNormLSTMCell, rk.LayerNormGRUCell):
        assert not issubclass(cls, (rk.LSTMCell, rk.GRUCell)) and cls.torch_kernel({}) is None
    assert rk.LayerNormLSTMCell.forget_gate == 1 and rk.LayerNormGRUCell.forget_gate is None


def test_recurrent_dropout_masks_only_the_state_the_recurrent_weights_read():
    x, h, c = torch.randn(2, 3, dtype=F64), torch.randn(2, 4, dtype=F64), torch.randn(2, 4, dtype=F64)
    mask = torch.bernoulli(torch.full((2, 4), 0.5, dtype=F64)) / 0.5
    for cls, kind, state in ((rk.LayerNormLSTMCell, "lstm", (h, c)), (rk.LayerNormGRUCell, "gru", (h,))):
        assert cls.accepts_recurrent_mask
        cell = randomize(cls(3, 4, dtype=F64))
        p = dict(cell.named_parameters())
        got = cls.recurrence(cls.input_projection(x, p), state, p, recurrent_mask=mask)
        want = STEPS[kind](x, state, p, read=h * mask)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=1e-12)
        layer = make(kind, 3, 4, bidirectional=True, recurrent_dropout=0.5, zoneout=0.1)
        plain = LAYERS[kind](3, 4, bidirectional=True, zoneout=0.1, dtype=F64)
        plain.load_state_dict(layer.state_dict())
        xs = torch.randn(5, 2, 3, dtype=F64)
        assert not torch.allclose(layer(xs)[0], plain(xs)[0])  # training: masks drawn
        torch.testing.assert_close(layer.eval()(xs)[0], plain.eval()(xs)[0], rtol=0, atol=0)


def test_state_dict_names():
    lstm = rk.LayerNormLSTM(3, 4, bidirectional=True)
    per = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "ln_ih_weight", "ln_ih_bias", "ln_hh_weight",
           "ln_hh_bias", "ln_c_weight", "ln_c_bias"]
    assert list(lstm.state_dict()) == [f"{n}_l0" for n in per] + [f"{n}_l0_reverse" for n in per]
    shapes = {n: tuple(t.shape) for n, t in lstm.state_dict().items()}
    assert shapes["ln_ih_weight_l0"] == shapes["ln_hh_bias_l0"] == (16,) and shapes["ln_c_weight_l0"] == (4,)
    gru = rk.LayerNormGRU(3, 4, num_layers=2, bias=False)
    assert list(gru.state_dict()) == [f"{n}_l{k}" for k in (0, 1)
                                      for n in ("weight_ih", "weight_hh", "ln_ih_weight", "ln_hh_weight")]
    assert gru.state_dict()["ln_hh_weight_l1"].shape == (12,)
    assert list(rk.LayerNormLSTMCell(3, 4).state_dict()) == per


def test_torch_lstm_checkpoint_does_not_load_strictly():
    reference = torch.nn.LSTM(3, 4, num_layers=2)
    layer = rk.LayerNormLSTM(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*ln_ih_weight_l0"):
        layer.load_state_dict(reference.state_dict(), strict=True)
    result = layer.load_state_dict(reference.state_dict(), strict=False)  # the four classic names do fit
    assert not result.unexpected_keys and "ln_c_bias_l1" in result.missing_keys
    torch.testing.assert_close(layer.weight_hh_l1, reference.weight_hh_l1)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_gains_are_one_and_shifts_zero_under_every_init(scheme):
    for module in (rk.LayerNormLSTM(3, 4, num_layers=2, bidirectional=True, init=scheme),
                   rk.LayerNormGRU(3, 4, num_layers=2, init=scheme), rk.LayerNormLSTMCell(3, 4)):
        randomize(module)
        rk.init.initialize_(module, scheme)
        for name, p in module.named_parameters():
            if name.startswith("ln_") and "_weight" in name:
                assert torch.all(p == 1), name
            elif name.startswith("ln_"):
                assert torch.all(p == 0), name
            elif scheme != "default" and name.startswith("bias"):
                assert torch.all(p == 0), name
            else:
                assert p.std() > 0, name
        if isinstance(module, rk.RecurrentLayer):
            randomize(module)
            module.reset_parameters()
            assert all(torch.all(p == 1) for n, p in module.named_parameters() if n.startswith("ln_ih_weight"))


def test_forget_bias_sets_the_post_norm_forget_gate_offset():
    layer = rk.LayerNormLSTM(3, 4, bidirectional=True, init="orthogonal", forget_bias=1.0)
    for suffix in ("", "_reverse"):
        assert torch.all(getattr(layer, f"bias_ih_l0{suffix}")[4:8] == 1)
        assert torch.all(getattr(layer, f"bias_hh_l0{suffix}") == 0)
        assert torch.all(getattr(layer, f"bias_ih_l0{suffix}")[:4] == 0)
    with pytest.raises(ValueError, match="finite number"):
        rk.LayerNormLSTM(3, 4, forget_bias=float("nan"))
    with pytest.raises(ValueError, match="proj_size"):
        rk.LayerNormLSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="needs bias=True"):
        rk.LayerNormLSTM(3, 4, bias=False, forget_bias=1.0)


def test_torch_kernels_refuse_the_layers_and_the_engine_runs_them():
    for cls in LAYERS.values():
        assert backends.select(cls(2, 3)).name == "engine"
        for backend in ("builtin",):
            with pytest.raises(ValueError, match=f"backend '{backend}' does not support"):
                cls(2, 3, backend=backend)(torch.randn(4, 1, 2))
        out, _ = cls(2, 3, backend="reference")(torch.randn(4, 1, 2))
        assert out.shape == (4, 1, 3)


# ---------------------------------------------------------------- Haste's formulation


def test_equal_to_hastes_layer_norm_lstm_and_gru_after_mapping_parameters():
    """Haste (lmnt-com/haste, haste_pytorch LayerNormLSTM/LayerNormGRU): kernels (in, G*H) with gates i,g,f,o
    (LSTM) or z,r,n (GRU), gamma (2, G*H) and no beta on the input/recurrent norms, one bias after them
    (LSTM; the GRU has bias and recurrent_bias), gamma_h/beta_h on the cell state; eps 1e-5."""
    x = torch.randn(5, 2, 3, dtype=F64)
    lstm = make("lstm", 3, 4)
    p = params_of(lstm, 0, "")
    hidden = 4
    order = torch.cat([torch.arange(b * hidden, (b + 1) * hidden) for b in (0, 2, 1, 3)])  # i,f,g,o -> i,g,f,o
    kernel, recurrent_kernel = p["weight_ih"][order].T, p["weight_hh"][order].T
    gamma = torch.stack([p["ln_ih_weight"][order], p["ln_hh_weight"][order]])
    bias = (p["ln_ih_bias"] + p["ln_hh_bias"] + p["bias_ih"] + p["bias_hh"])[order]
    h, c = torch.zeros(2, hidden, dtype=F64), torch.zeros(2, hidden, dtype=F64)
    wx = ln(x @ kernel, gamma[0], None)
    outputs = []
    for t in range(5):
        v = ln(h @ recurrent_kernel, gamma[1], None) + wx[t] + bias
        i, g, f, o = v.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ln(c, p["ln_c_weight"], p["ln_c_bias"]))
        outputs.append(h)
    torch.testing.assert_close(lstm(x)[0], torch.stack(outputs), rtol=0, atol=1e-10)

    gru = make("gru", 3, 4)
    p = params_of(gru, 0, "")
    order = torch.cat([torch.arange(b * hidden, (b + 1) * hidden) for b in (1, 0, 2)])  # r,z,n -> z,r,n
    kernel, recurrent_kernel = p["weight_ih"][order].T, p["weight_hh"][order].T
    gamma = torch.stack([p["ln_ih_weight"][order], p["ln_hh_weight"][order]])
    bias, recurrent_bias = (p["ln_ih_bias"] + p["bias_ih"])[order], (p["ln_hh_bias"] + p["bias_hh"])[order]
    h = torch.zeros(2, hidden, dtype=F64)
    wx = ln(x @ kernel, gamma[0], None) + bias
    outputs = []
    for t in range(5):
        rh = ln(h @ recurrent_kernel, gamma[1], None) + recurrent_bias
        (xz, xr, xn), (hz, hr, hn) = wx[t].chunk(3, dim=1), rh.chunk(3, dim=1)
        z, r = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
        g = torch.tanh(xn + r * hn)
        h = z * h + (1 - z) * g
        outputs.append(h)
    torch.testing.assert_close(gru(x)[0], torch.stack(outputs), rtol=0, atol=1e-10)


# ---------------------------------------------------------------- task models, the CLI and the lab


def test_task_model_trains_and_saves_and_loads(tmp_path):
    model = rk.models.SequenceClassifier(vocab_size=12, cell="ln_lstm", hidden_size=8, output_size=3)
    assert isinstance(model.encoder.rnn, rk.LayerNormLSTM)
    inputs, targets = torch.randint(0, 12, (8, 6)), torch.randint(0, 3, (8,))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = model(inputs, targets).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    model.eval()
    expected = model(inputs).output
    rk.models.save_model(model, tmp_path)
    loaded = rk.models.load_model(tmp_path)
    assert isinstance(loaded.encoder.rnn, rk.LayerNormLSTM)
    torch.testing.assert_close(loaded(inputs).output, expected)


def test_two_state_models_see_the_cell_state():
    """Models that bridge a condition or encoder into (h, c) need the LSTM's two states."""
    generator = rk.models.SequenceGenerator(vocab_size=10, num_conditions=3, cell="ln_lstm", hidden_size=6)
    assert generator.num_states == 2
    assert rk.models.SequenceGenerator(vocab_size=10, num_conditions=3, cell="ln_gru", hidden_size=6).num_states == 1


def test_cli_trains_with_ln_gru(tmp_path):
    lines = ["text,label"] + [f"{'good great' if i % 2 else 'bad awful'} film {i % 5},{'pos' if i % 2 else 'neg'}"
                              for i in range(24)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    assert main(["classify", "train", "--data", str(tmp_path / "d.csv"), "--cell", "ln_gru", "--hidden-size", "4",
                 "--max-steps", "5", "--eval-every", "5", "--min-freq", "1", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    saved = json.loads((tmp_path / "run" / "app.json").read_text())
    assert saved["settings"]["model"]["cell"] == "ln_gru"


def test_lab_runs_ln_lstm(tmp_path, capsys):
    assert main(["lab", "adding", "--cell", "ln_lstm", "--T", "8", "--hidden-size", "4", "--max-steps", "3",
                 "--test-size", "20", "--out", str(tmp_path / "lab"), "--quiet"]) == 0
    assert json.loads((tmp_path / "lab" / "result.json").read_text())["cell"] == "ln_lstm"
    assert "ln_lstm" in rk.registry.describe_cells() and "ln_gru" in rk.registry.cell_names()
