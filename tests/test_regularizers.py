"""Recurrent regularisers as layer options: variational recurrent dropout (Gal & Ghahramani 2016),
zoneout (Krueger et al. 2016) and weight drop (DropConnect on W_hh, Wan et al. 2013; AWD-LSTM). Each check builds a layer whose step is known in closed form, so the
mask's behaviour over time, across sequences and in expectation can be read off the outputs."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk
from rnnkit import backends


def _echo_rnn(hidden: int, **kwargs) -> rk.RNN:
    """relu Elman RNN with W_hh = I and no input or bias: h_t = relu(mask * h_{t-1}) = mask * h_{t-1}."""
    layer = rk.RNN(1, hidden, nonlinearity="relu", **kwargs)
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            parameter.copy_(torch.eye(hidden) if name.startswith("weight_hh") else torch.zeros_like(parameter))
    return layer


def test_recurrent_dropout_holds_one_mask_per_sequence_for_every_step():
    p, hidden, steps = 0.3, 64, 6
    layer = _echo_rnn(hidden, recurrent_dropout=p)
    h0 = torch.ones(1, 64, hidden)
    output, _ = layer(torch.zeros(steps, 64, 1), h0)
    scale = 1 / (1 - p)
    first = output[0]
    kept = first > 0
    assert torch.equal(first[kept], torch.full_like(first[kept], scale))
    for t in range(steps):  # a unit dropped once is dropped at every step; a kept one is kept (scaled) at every step
        torch.testing.assert_close(output[t], kept * scale ** (t + 1))
    assert abs((~kept).float().mean().item() - p) < 0.03  # 4,096 units: the drop rate is p
    assert not torch.equal(kept[0], kept[1])  # fresh across sequences
    again, _ = layer(torch.zeros(steps, 64, 1), h0)
    assert not torch.equal(again[0] > 0, kept)  # and across calls


def test_recurrent_dropout_is_off_in_evaluation_and_equals_torch_nn():
    torch.manual_seed(0)
    layer = rk.LSTM(3, 5, num_layers=2, recurrent_dropout=0.5).eval()
    reference = torch.nn.LSTM(3, 5, num_layers=2)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(7, 2, 3)
    assert backends.select(layer).name != "reference"  # the plain recurrence: any backend runs it
    torch.testing.assert_close(layer(x)[0], reference(x)[0])
    torch.testing.assert_close(layer(x)[0], layer(x)[0], rtol=0, atol=0)


def _sticky_rnn(hidden: int, **kwargs) -> rk.RNN:
    """relu Elman RNN whose new state is always 1 (only a bias): h_t = 1 unless zoneout keeps h_{t-1}."""
    layer = rk.RNN(1, hidden, nonlinearity="relu", **kwargs)
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            parameter.fill_(1.0 if name.startswith("bias_ih") else 0.0)
    return layer


def test_zoneout_keeps_each_unit_with_probability_p_at_every_step():
    p, hidden = 0.4, 128
    layer = _sticky_rnn(hidden, zoneout=p)
    output, _ = layer(torch.zeros(3, 64, 1), torch.full((1, 64, hidden), 5.0))
    assert set(output.unique().tolist()) <= {1.0, 5.0}
    still = output == 5.0  # a unit is still at h_0 = 5 after t steps only if zoned out at each: p^t
    for t in range(3):
        assert abs(still[t].float().mean().item() - p ** (t + 1)) < 0.02
    assert torch.all(still[1] <= still[0])  # once updated to 1 it stays 1


def test_zoneout_outside_training_is_its_expectation():
    p = 0.4
    layer = _sticky_rnn(4, zoneout=p).eval()
    output, h_n = layer(torch.zeros(5, 2, 1), torch.full((1, 2, 4), 5.0))
    expected = torch.tensor([1 + 4 * p ** (t + 1) for t in range(5)])  # h_t = p h_{t-1} + (1 - p) 1
    torch.testing.assert_close(output[:, 0, 0], expected)
    torch.testing.assert_close(h_n[0, 0, 0], expected[-1])


@pytest.mark.parametrize("layer_cls", [rk.LSTM, rk.GRU])
def test_regularised_layers_pass_gradcheck_and_honour_lengths(layer_cls):
    layer = layer_cls(2, 3, bidirectional=True, recurrent_dropout=0.3, zoneout=0.2).double()
    names = [name for name, _ in layer.named_parameters()]
    lengths = torch.tensor([4, 2])

    def run(x, *weights):
        torch.manual_seed(1)  # the same masks at every evaluation
        out, _ = torch.func.functional_call(layer, dict(zip(names, weights)), (x,), {"lengths": lengths})
        return out

    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(run, (x, *weights), fast_mode=True)
    assert torch.all(run(x, *weights)[2:, 1] == 0)  # past its length


def test_task_models_and_apps_take_the_regularisers():
    model = rk.models.SequenceClassifier(vocab_size=10, cell="lstm", recurrent_dropout=0.25, zoneout=0.1)
    assert model.encoder.rnn.recurrent_dropout == 0.25 and model.encoder.rnn.zoneout == 0.1
    model(torch.randint(0, 10, (3, 5)), torch.tensor([0, 1, 1])).loss.backward()


@pytest.mark.parametrize("kwargs, message", [
    ({"recurrent_dropout": 1.0}, r"recurrent_dropout must be a probability in \[0, 1\)"),
    ({"zoneout": -0.1}, r"zoneout must be a probability in \[0, 1\)"),
    ({"zoneout": True}, "zoneout must be a probability"),
])
def test_bad_regulariser_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rk.GRU(2, 3, **kwargs)


def test_a_forced_fused_backend_refuses_a_regularised_layer_in_training():
    layer = rk.GRU(2, 3, recurrent_dropout=0.2, backend="builtin")  # torch's kernels have no recurrent masks
    with pytest.raises(ValueError, match="backend 'builtin' does not support"):
        layer(torch.randn(3, 1, 2))
    layer.eval()
    layer(torch.randn(3, 1, 2))  # evaluation is the plain GRU: torch's kernel runs it
    with pytest.raises(ValueError, match="backend 'engine' does not support"):  # the engine's Elman has no zoneout
        rk.RNN(2, 3, zoneout=0.2, backend="engine")(torch.randn(3, 1, 2))


def test_gradient_flow_is_measured_through_the_regularisers():
    from rnnkit.diagnostics import gradient_flow

    layer = rk.LSTM(2, 4, recurrent_dropout=0.2, zoneout=0.1)
    flow = gradient_flow(layer, torch.randn(6, 3, 2), loss_fn=lambda out: out[0][-1].sum(), train_mode=True)
    assert len(flow.steps["l0"]) == 6 and flow.steps["l0"][-1] > 0


def _masked_reference(layer: rk.LSTM, seed: int) -> torch.nn.LSTM:
    """torch.nn.LSTM with ``layer``'s weights, each W_hh times the DropConnect mask the layer draws after
    ``torch.manual_seed(seed)``: Bernoulli(1 - p) entries scaled by 1 / (1 - p), one draw per layer and
    direction in torch.nn's order."""
    reference = torch.nn.LSTM(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                              bidirectional=layer.bidirectional)
    reference.load_state_dict(layer.state_dict())
    torch.manual_seed(seed)
    keep = 1 - layer.weight_drop
    with torch.no_grad():
        for name in layer._flat_weights_names:
            if name.startswith("weight_hh"):
                weight = getattr(reference, name)
                weight.mul_(torch.empty_like(weight).bernoulli_(keep) / keep)
    return reference


@pytest.mark.parametrize("backend", ["auto", "builtin", "engine", "reference"])
def test_weight_drop_is_torch_nn_with_a_dropconnect_mask_on_every_recurrent_weight(backend):
    torch.manual_seed(0)
    layer = rk.LSTM(3, 8, num_layers=2, bidirectional=True, weight_drop=0.4, backend=backend)
    x = torch.randn(6, 4, 3)
    torch.manual_seed(7)
    output, (h_n, c_n) = layer(x)
    expected, (h_ref, c_ref) = _masked_reference(layer, seed=7)(x)
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(c_n, c_ref)
    again, _ = layer(x)
    assert not torch.allclose(again, output)  # a fresh mask at every call


def test_weight_drop_zeroes_the_gradient_of_dropped_weights_and_is_off_in_evaluation():
    torch.manual_seed(0)
    layer = rk.GRU(2, 16, weight_drop=0.5)
    x = torch.randn(5, 3, 2)
    torch.manual_seed(3)
    layer(x)[0].pow(2).sum().backward()
    torch.manual_seed(3)
    kept = torch.empty_like(layer.weight_hh_l0).bernoulli_(0.5).bool()
    assert torch.all(layer.weight_hh_l0.grad[~kept] == 0)  # DropConnect: a dropped weight takes no part
    assert torch.count_nonzero(layer.weight_hh_l0.grad[kept]) > 0.9 * kept.sum()
    assert layer.weight_ih_l0.grad.count_nonzero() > 0.9 * layer.weight_ih_l0.numel()  # only W_hh is masked
    layer.eval()
    plain = torch.nn.GRU(2, 16)
    plain.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x)[0], plain(x)[0])


def test_weight_drop_keeps_torchs_fused_kernel_and_passes_gradcheck():
    layer = rk.LSTM(2, 3, weight_drop=0.3).double()
    assert backends.select(layer).name != "reference"  # the recurrence is the plain one
    names = [name for name, _ in layer.named_parameters()]

    def run(x, *weights):
        torch.manual_seed(1)
        return torch.func.functional_call(layer, dict(zip(names, weights)), (x,))[0]

    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(run, (x, *weights), fast_mode=True)


def test_weight_drop_needs_recurrent_weights_and_a_probability():
    with pytest.raises(ValueError, match="weight_drop needs a cell with recurrent weights; MinGRUCell"):
        rk.MinGRU(2, 3, weight_drop=0.2)
    with pytest.raises(ValueError, match=r"weight_drop must be a probability in \[0, 1\)"):
        rk.LSTM(2, 3, weight_drop=1.0)
    with pytest.raises(ValueError, match="weight_drop=0.2, which torch.nn has no equivalent of"):
        rk.to_torch(rk.LSTM(2, 3, weight_drop=0.2))
    assert "weight_drop=0.2" in repr(rk.LSTM(2, 3, weight_drop=0.2))
    model = rk.models.SequenceTagger(vocab_size=10, output_size=0, cell="ln_lstm", weight_drop=0.25)
    assert model.encoder.rnn.weight_drop == 0.25
