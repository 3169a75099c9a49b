"""The peephole LSTM against its equations (Gers & Schmidhuber 2000), written out here independently."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk
from rnnkit.cli.main import main


def _step(x, h, c, p, suffix=""):
    """One step of the peephole LSTM from the paper, for parameters ``p`` of one layer and direction."""
    hidden = h.shape[-1]

    def gate(k):
        rows = slice(k * hidden, (k + 1) * hidden)
        return (x @ p[f"weight_ih{suffix}"][rows].T + p[f"bias_ih{suffix}"][rows]
                + h @ p[f"weight_hh{suffix}"][rows].T + p[f"bias_hh{suffix}"][rows])

    i = torch.sigmoid(gate(0) + p[f"weight_ci{suffix}"] * c)
    f = torch.sigmoid(gate(1) + p[f"weight_cf{suffix}"] * c)
    c_new = f * c + i * torch.tanh(gate(2))
    o = torch.sigmoid(gate(3) + p[f"weight_co{suffix}"] * c_new)
    return o * torch.tanh(c_new), c_new


def test_layer_equals_the_equations_with_lengths_in_both_directions():
    layer = rk.PeepholeLSTM(3, 4, bidirectional=True).double()
    p = dict(layer.named_parameters())
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 4])
    output, (h_n, c_n) = layer(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        for direction, suffix in enumerate(("_l0", "_l0_reverse")):
            h = c = torch.zeros(4, dtype=torch.float64)
            steps = range(n) if direction == 0 else reversed(range(n))
            for t in steps:
                h, c = _step(x[t, b], h, c, p, suffix)
                torch.testing.assert_close(output[t, b, 4 * direction:4 * direction + 4], h, rtol=0, atol=1e-10)
            torch.testing.assert_close(h_n[direction, b], h, rtol=0, atol=1e-10)
            torch.testing.assert_close(c_n[direction, b], c, rtol=0, atol=1e-10)
        assert torch.all(output[n:, b] == 0)


def test_cell_is_one_step_and_gradcheck_passes():
    cell = rk.PeepholeLSTMCell(3, 5).double()
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (3, 5, 5))
    expected = _step(x, h, c, dict(cell.named_parameters()))
    for got, want in zip(cell(x, (h, c)), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    layer = rk.PeepholeLSTM(2, 3, num_layers=2).double()
    names = [n for n, _ in layer.named_parameters()]

    def run(inputs, *weights):
        return torch.func.functional_call(layer, dict(zip(names, weights)), (inputs,))[0]

    weights = [w.detach().clone().requires_grad_() for w in layer.parameters()]
    assert torch.autograd.gradcheck(run, (torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True), *weights),
                                    fast_mode=True)


def test_zero_peepholes_make_it_torch_nn_lstm_and_state_dicts_say_what_differs():
    layer = rk.PeepholeLSTM(3, 4, num_layers=2)
    reference = torch.nn.LSTM(3, 4, num_layers=2)
    missing = layer.load_state_dict(reference.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(f"weight_c{g}_l{k}" for g in "ifo" for k in range(2))
    with torch.no_grad():
        for name in missing:
            getattr(layer, name).zero_()
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(layer(x)[0], reference(x)[0])
    with pytest.raises(RuntimeError, match="Missing key"):
        layer.load_state_dict(reference.state_dict())


@pytest.mark.parametrize("scheme", ["identity", "orthogonal", "xavier"])
def test_peepholes_start_at_zero_under_the_named_schemes(scheme):
    layer = rk.PeepholeLSTM(3, 6, init=scheme, forget_bias=1.0)
    assert all(torch.all(getattr(layer, f"weight_c{g}_l0") == 0) for g in "ifo")
    assert torch.all(layer.bias_ih_l0[6:12] + layer.bias_hh_l0[6:12] == 1.0)


def test_the_cli_and_task_models_name_it(tmp_path):
    model = rk.models.SequenceTagger(vocab_size=7, output_size=0, cell="peephole_lstm", recurrent_dropout=0.2)
    model(torch.randint(0, 7, (2, 5)), torch.randint(0, 7, (2, 5))).loss.backward()
    code = main(["lab", "adding", "--cell", "peephole_lstm", "--T", "8", "--hidden-size", "4", "--max-steps", "3",
                 "--test-size", "20", "--out", str(tmp_path / "lab"), "--quiet"])
    assert code == 0 and (tmp_path / "lab" / "result.json").exists()
