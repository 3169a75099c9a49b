"""minGRU and minLSTM (rnnkit.variants.minimal): both scans against the cell's own step and against the
paper's equations written out here, gradients, lengths, packing, bidirectional layers, long saturated
sequences, the registry, a task model, the CLI and streaming generation."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk
from rnnkit import loop, sampling
from rnnkit.cli.main import main
from rnnkit.variants import minimal

LAYERS = {"min_gru": rk.MinGRU, "min_lstm": rk.MinLSTM}
SCANS = ("log", "fused")


# --------------------------------------------------------------------------------------------------
# The paper's equations, written out independently of the cells (sigmoid and g from math's exp).

def _sigmoid(v):
    return 1.0 / (1.0 + torch.exp(-v))


def _g(v):  # Feng et al. 2024, appendix: g(x) = x + 0.5 if x >= 0 else sigmoid(x)
    return torch.where(v >= 0, v + 0.5, _sigmoid(v))


def _paper_step(kind, x_t, h, weight, bias):
    """One step of minGRU / minLSTM from the paper, for one direction's weight_ih and bias_ih."""
    hidden = h.shape[-1]
    pre = x_t @ weight.T + (bias if bias is not None else 0)
    if kind == "min_gru":
        z = _sigmoid(pre[..., :hidden])
        h_tilde = _g(pre[..., hidden:])
        return (1 - z) * h + z * h_tilde
    f = _sigmoid(pre[..., :hidden])
    i = _sigmoid(pre[..., hidden:2 * hidden])
    h_tilde = _g(pre[..., 2 * hidden:])
    return f / (f + i) * h + i / (f + i) * h_tilde


def _paper_run(kind, x, h0, weight, bias, lengths):
    """Time-major x (T, B, F): outputs zero past each length and final states, by the equations."""
    steps, batch = x.shape[:2]
    outputs = torch.zeros(steps, batch, h0.shape[-1], dtype=x.dtype)
    finals = []
    for b in range(batch):
        h = h0[b]
        for t in range(int(lengths[b])):
            h = _paper_step(kind, x[t, b], h, weight, bias)
            outputs[t, b] = h
        finals.append(h)
    return outputs, torch.stack(finals)


def _stepped(cell, x, h0, params, lengths):
    """The cell's own ``recurrence`` stepped one time step at a time, masking finished sequences."""
    h = h0
    outputs = []
    for t in range(x.shape[0]):
        (new,) = cell.recurrence(cell.input_projection(x[t], params), (h,), params)
        valid = (t < lengths).unsqueeze(1)
        h = torch.where(valid, new, h)
        outputs.append(torch.where(valid, h, torch.zeros_like(h)))
    return torch.stack(outputs), h


def _case(kind, dtype, steps, scan="auto", batch=3, hidden=5, features=4, **kwargs):
    layer = LAYERS[kind](features, hidden, scan=scan, dtype=dtype, **kwargs)
    x = torch.randn(steps, batch, features, dtype=dtype)
    h0 = -torch.rand(1, batch, hidden, dtype=dtype) * 2  # negative: the scans must not take its logarithm
    lengths = torch.tensor([steps, max(1, steps // 2), 1][:batch])
    return layer, x, h0, lengths


# --------------------------------------------------------------------------------------------------
# The scans equal the step and the equations.

def _check_scan_against_step(kind, scan, dtype, steps):
    atol = 1e-10 if dtype == torch.float64 else 1e-5
    layer, x, h0, lengths = _case(kind, dtype, steps, scan)
    with torch.no_grad():
        output, h_n = layer(x, h0, lengths=lengths)
        params = layer.parameter_groups()[0]
        step_out, step_h = _stepped(layer.cell_type, x, h0[0], params, lengths)
        torch.testing.assert_close(output, step_out, rtol=0, atol=atol)
        torch.testing.assert_close(h_n[0], step_h, rtol=0, atol=atol)
        if steps <= 300:  # the equations in Python loops: short enough sequences only
            paper_out, paper_h = _paper_run(kind, x, h0[0], params["weight_ih"], params["bias_ih"], lengths)
            torch.testing.assert_close(output, paper_out, rtol=0, atol=atol)
            torch.testing.assert_close(h_n[0], paper_h, rtol=0, atol=atol)
        assert torch.all(output[lengths[1]:, 1] == 0) and torch.all(output[1:, 2] == 0)


@pytest.mark.parametrize("steps", [1, 7, 65, 300])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("kind", LAYERS)
def test_scan_equals_the_step_and_the_paper(kind, scan, dtype, steps):
    _check_scan_against_step(kind, scan, dtype, steps)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("kind", LAYERS)
def test_scan_equals_the_step_over_4096_steps(kind, scan, dtype):
    _check_scan_against_step(kind, scan, dtype, 4096)


def test_the_step_is_the_paper_step_for_one_cell():
    """RecurrentCell.forward (one step, no loop) with a negative state, both cells."""
    for cell_type, kind in ((rk.MinGRUCell, "min_gru"), (rk.MinLSTMCell, "min_lstm")):
        cell = cell_type(4, 3).double()
        x, h = torch.randn(2, 4, dtype=torch.float64), -torch.rand(2, 3, dtype=torch.float64)
        expected = _paper_step(kind, x, h, cell.weight_ih, cell.bias_ih)
        torch.testing.assert_close(cell(x, h), expected, rtol=0, atol=1e-14)
        torch.testing.assert_close(cell(x[0], h[0]), expected[0], rtol=0, atol=1e-14)


def test_min_lstm_normalised_gates_stay_finite_when_both_gates_close():
    """f = i = σ(-200) underflows to 0 in float32: f / (f + i) is 0/0, the cell's σ(d) form is 1/2."""
    cell = rk.MinLSTMCell(1, 1, bias=True)
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.bias_ih.copy_(torch.tensor([-200.0, -200.0, 1.0]))
    h = cell(torch.zeros(1, 1), torch.full((1, 1), -1.0))
    torch.testing.assert_close(h, torch.full((1, 1), 0.5 * -1.0 + 0.5 * 1.5))


# --------------------------------------------------------------------------------------------------
# Gradients.

@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("kind", LAYERS)
def test_gradcheck_of_the_layer(kind, scan):
    layer = LAYERS[kind](3, 4, num_layers=2, bidirectional=True, scan=scan, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = (-torch.rand(4, 2, 4, dtype=torch.float64)).requires_grad_()
    lengths = torch.tensor([6, 4])
    names = [name for name, _ in layer.named_parameters()]
    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def run(inputs, state, *params):
        output, h_n = torch.func.functional_call(layer, dict(zip(names, params)), (inputs, state),
                                                 {"lengths": lengths})
        return output, h_n

    assert torch.autograd.gradcheck(run, (x, h0, *weights), fast_mode=True)


@pytest.mark.parametrize("kind", LAYERS)
def test_both_scans_and_the_sequential_loop_give_the_same_gradients(kind):
    layer, x, h0, lengths = _case(kind, torch.float64, 150, hidden=6)
    x.requires_grad_()
    h0.requires_grad_()
    weights = torch.randn(150, 3, 6, dtype=torch.float64)
    grads = {}
    for scan in ("log", "fused", "sequential"):
        layer.scan = "auto" if scan == "sequential" else scan
        if scan == "sequential":
            params = layer.parameter_groups()[0]
            output, (h_n,) = loop.recur(layer.cell_type, x, (h0[0],), params, lengths=lengths, scan=loop.scan)
            h_n = h_n.unsqueeze(0)
        else:
            output, h_n = layer(x, h0, lengths=lengths)
        loss = (output * weights).sum() + (h_n ** 2).sum()
        grads[scan] = torch.autograd.grad(loss, [x, h0, *layer.parameters()])
    for scan in ("log", "fused"):
        for got, expected in zip(grads[scan], grads["sequential"]):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------------------
# Long sequences.

@pytest.mark.slow
@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("kind", LAYERS)
def test_16384_steps_with_saturated_gates_stay_finite(kind, scan):
    """Pre-activations up to about ±360, most beyond ±17 where σ or 1 - σ rounds to 1 in float32: the gates
    saturate, (1 - z) and f' underflow to 0 at many steps and log A falls by up to hundreds per step;
    the outputs and gradients stay finite and equal the step's."""
    torch.manual_seed(1)
    layer = LAYERS[kind](4, 8, scan=scan)
    with torch.no_grad():
        layer.weight_ih_l0.mul_(150.0)
    x = torch.randn(16384, 2, 4)
    h0 = torch.full((1, 2, 8), -3.0)
    x.requires_grad_()
    output, h_n = layer(x, h0)
    assert torch.isfinite(output).all() and torch.isfinite(h_n).all()
    pre = layer.cell_type.input_projection(x, layer.parameter_groups()[0])
    assert (pre.abs() > 17).float().mean() > 0.5  # mostly saturated: σ(17) and 1 - σ(-17) round to 1
    output.sum().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in layer.parameters())
    with torch.no_grad():
        step_out, _ = _stepped(layer.cell_type, x, h0[0], layer.parameter_groups()[0], torch.tensor([16384, 16384]))
    torch.testing.assert_close(output, step_out, rtol=1e-4, atol=1e-4)


def test_log_scan_chunks_bound_the_rounding():
    """float32 log-space scan over 2048 slowly decaying steps: chunked it matches the float64 recurrence
    to 1e-5; as a single chunk (log A reaching -2000) it does not."""
    torch.manual_seed(0)
    steps, batch, hidden = 2048, 2, 16
    k = torch.randn(steps, batch, hidden, dtype=torch.float64) + 0.5
    v = torch.randn(steps, batch, hidden, dtype=torch.float64)
    h0 = torch.zeros(batch, hidden, dtype=torch.float64)
    expected, _ = minimal.fused_gated_scan(torch.cat([k, v], -1), h0)
    log_a = -torch.nn.functional.softplus(k.float())
    log_b = minimal.log_g(v.float()) - torch.nn.functional.softplus(-k.float())
    chunked, _ = minimal.log_linear_scan(log_a, log_b, h0.float())
    whole, _ = minimal.log_linear_scan(log_a, log_b, h0.float(), chunk=steps)
    assert (chunked.double() - expected).abs().max() < 1e-5
    assert (whole.double() - expected).abs().max() > 1e-5


# --------------------------------------------------------------------------------------------------
# Layers: bidirectional with lengths, packing, batch_first, parameters.

@pytest.mark.parametrize("kind", LAYERS)
def test_bidirectional_with_lengths_equals_each_sequence_alone(kind):
    layer = LAYERS[kind](3, 4, bidirectional=True, num_layers=2, dtype=torch.float64)
    x = torch.randn(7, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5])
    h0 = -torch.rand(4, 3, 4, dtype=torch.float64)
    output, h_n = layer(x, h0, lengths=lengths)
    assert output.shape == (7, 3, 8) and torch.all(output[3:, 1] == 0) and torch.all(output[5:, 2] == 0)
    for b, n in enumerate(lengths.tolist()):
        alone, h_alone = layer(x[:n, b:b + 1], h0[:, b:b + 1].contiguous())
        torch.testing.assert_close(output[:n, b:b + 1], alone, rtol=0, atol=1e-12)
        torch.testing.assert_close(h_n[:, b:b + 1], h_alone, rtol=0, atol=1e-12)
    # the reverse direction of layer 0 by hand: the cell's step over the reversed valid steps
    params = layer.parameter_groups()[1]
    h = h0[1, 1]
    for t in reversed(range(3)):
        (h,) = layer.cell_type.recurrence(layer.cell_type.input_projection(x[t, 1:2], params), (h.unsqueeze(0),),
                                          params)
        h = h[0]
    torch.testing.assert_close(h_n[1, 1], h, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", LAYERS)
def test_packed_sequence_equals_lengths(kind):
    layer = LAYERS[kind](3, 5, batch_first=True, bidirectional=True)
    x = torch.randn(4, 6, 3)
    lengths = torch.tensor([2, 6, 4, 1])
    output, h_n = layer(x, lengths=lengths)
    packed_out, packed_h = layer(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    unpacked, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=6)
    torch.testing.assert_close(unpacked, output)
    torch.testing.assert_close(packed_h, h_n)


def test_parameters_init_and_backends():
    gru, lstm = rk.MinGRU(3, 4, num_layers=2, bidirectional=True), rk.MinLSTM(3, 4, forget_bias=1.5)
    assert sorted(n for n, _ in gru.named_parameters()) == sorted(
        f"{w}_l{k}{s}" for w in ("weight_ih", "bias_ih") for k in (0, 1) for s in ("", "_reverse"))
    assert gru.weight_ih_l0.shape == (8, 3) and gru.weight_ih_l1.shape == (8, 8)
    assert lstm.weight_ih_l0.shape == (12, 3) and not any("hh" in n for n, _ in lstm.named_parameters())
    assert torch.all(lstm.bias_ih_l0[:4] == 1.5) and lstm.forget_bias == 1.5
    assert [n for n, _ in rk.MinGRU(3, 4, bias=False).named_parameters()] == ["weight_ih_l0"]
    for scheme in ("default", "identity", "orthogonal", "xavier"):
        layer = rk.MinLSTM(3, 4, init=scheme, forget_bias=1.0)
        assert torch.isfinite(layer.weight_ih_l0).all() and torch.all(layer.bias_ih_l0[:4] == 1.0)
    with pytest.raises(ValueError, match="forget_bias needs bias=True"):
        rk.MinLSTM(3, 4, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match="no output projection"):
        rk.MinLSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="unknown scan 'parallel'"):
        rk.MinGRU(3, 4, scan="parallel")
    for backend in ("builtin", "engine"):
        with pytest.raises(ValueError, match=f"backend '{backend}' does not support"):
            rk.MinGRU(3, 4, backend=backend)(torch.randn(2, 1, 3))
    output, h_n = rk.MinGRU(3, 4, backend="reference")(torch.randn(5, 3))  # unbatched
    assert output.shape == (5, 4) and h_n.shape == (1, 4)
    with pytest.raises(TypeError, match="dtype"):
        rk.MinGRU(3, 4)(torch.randn(5, 2, 3, dtype=torch.float64))
    assert "scan='log'" in repr(rk.MinGRU(3, 4, scan="log"))


def test_bfloat16_autocast_scans_in_float32():
    layer = rk.MinGRU(3, 4)
    x = torch.randn(9, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, h_n = layer(x)
    assert output.dtype == torch.float32 and torch.isfinite(output).all()
    torch.testing.assert_close(output, layer(x)[0], rtol=0, atol=0.05)


def test_registered_and_exported():
    assert {"min_gru", "min_lstm"} <= set(rk.registry.cell_names())
    assert rk.registry.cell_kind("min_gru").cell is rk.MinGRUCell
    assert isinstance(rk.registry.make_layer("min_lstm", 3, 4, num_layers=2), rk.MinLSTM)
    assert {"MinGRU", "MinLSTM", "MinGRUCell", "MinLSTMCell"} <= set(rk.__all__)


# --------------------------------------------------------------------------------------------------
# Task models, the CLI, streaming.

def test_task_model_trains_and_saves(tmp_path):
    torch.manual_seed(0)
    model = rk.models.SequenceClassifier(vocab_size=12, cell="min_gru", hidden_size=16, output_size=2,
                                         num_layers=2)
    inputs = torch.randint(1, 12, (16, 8))
    targets = (inputs[:, 0] > 6).long()  # the label is in the first token: the state must carry it
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        loss = model(inputs, targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    expected = model(inputs).output
    rk.models.save_model(model, tmp_path)
    loaded = rk.models.load_model(tmp_path)
    assert isinstance(loaded.encoder.rnn, rk.MinGRU)
    torch.testing.assert_close(loaded(inputs).output, expected)


@pytest.mark.slow
def test_classify_cli_with_min_lstm(tmp_path):
    lines = ["text,label"] + [f"{'good great' if i % 2 else 'bad awful'} film {i % 5},{'pos' if i % 2 else 'neg'}"
                              for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    assert main(["classify", "train", "--data", str(tmp_path / "d.csv"), "--cell", "min_lstm", "--hidden-size", "8",
                 "--max-steps", "40", "--eval-every", "20", "--min-freq", "1", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    saved = json.loads((tmp_path / "run" / "app.json").read_text())
    assert saved["settings"]["model"]["cell"] == "min_lstm"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["accuracy"] > 0.8


def test_cli_accepts_min_lstm(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", "train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "min_lstm" in help_text and "min_gru" in help_text
    # a field's own metavar wins over the one made from its name (ENSEMBLE would not say it is a count)
    assert "--ensemble K" in help_text and "--max-steps STEPS" in help_text


def test_streaming_generation_carries_the_parallel_state():
    torch.manual_seed(0)
    lm = rk.models.SequenceTagger(vocab_size=11, output_size=0, cell="min_gru", hidden_size=12,
                                  num_layers=2).eval()
    prefix = [3, 1, 4, 1, 5]
    tokens_stream = sampling.stream(lm, prefix, max_new_tokens=6, temperature=0)
    tokens = list(tokens_stream)
    with torch.no_grad():
        # greedy: each token is the arg-max of the full sequence's logits up to that point
        for i, token in enumerate(tokens):
            assert token == int(lm(torch.tensor([prefix + tokens[:i]])).output[0, -1].argmax())
        # the carried state is the scan's final state over everything fed so far
        full = lm(torch.tensor([prefix + tokens[:-1]]))
        torch.testing.assert_close(tokens_stream.state, full.state, rtol=0, atol=1e-6)
        # and the next-token logits from it equal the full sequence's last logits
        logits, _ = lm.step(torch.tensor([tokens[-1]]), tokens_stream.state)
        longer = lm(torch.tensor([prefix + tokens])).output[:, -1]
    torch.testing.assert_close(logits, longer, rtol=0, atol=1e-5)
