"""LSTM proj_size: the same parameter names, shapes and numbers as torch.nn.LSTM(proj_size=...)."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk
from harness import assert_all_close, make_pair, random_state, run, tolerance


@pytest.mark.parametrize("backend", ["reference", "builtin", "auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(1, False, False), (2, True, False), (3, True, True)])
def test_equal_to_torch_nn_outputs_states_and_gradients(backend, dtype, layers, bidirectional, batch_first):
    ours, oracle = make_pair("lstm", 5, 7, dtype, backend, num_layers=layers, bidirectional=bidirectional,
                             batch_first=batch_first, proj_size=3)
    x = torch.randn(4, 6, 5, dtype=dtype)
    hx = random_state(oracle, 4 if batch_first else 6, dtype)
    for a, b in zip(run(ours, x, hx), run(oracle, x, hx)):
        assert_all_close(a, b, atol=tolerance(dtype))


@pytest.mark.parametrize("mode", ["padded", "packed"])
def test_variable_lengths_match_torch_nn_packed(mode):
    ours, oracle = make_pair("lstm", 3, 6, torch.float64, "reference", num_layers=2, bidirectional=True, proj_size=2)
    x = torch.randn(7, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5])
    for a, b in zip(run(ours, x, lengths=lengths, mode=mode), run(oracle, x, lengths=lengths, mode="packed")):
        assert_all_close(a, b, atol=1e-10)


def test_state_dicts_load_both_ways_and_shapes_are_torch_nn():
    ours = rk.LSTM(4, 8, num_layers=2, bidirectional=True, proj_size=3)
    oracle = torch.nn.LSTM(4, 8, num_layers=2, bidirectional=True, proj_size=3)
    ours.load_state_dict(oracle.state_dict())
    oracle.load_state_dict(ours.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in oracle.named_parameters()]
    output, (h_n, c_n) = ours(torch.randn(5, 2, 4))
    assert output.shape == (5, 2, 6) and h_n.shape == (4, 2, 3) and c_n.shape == (4, 2, 8)
    assert ours.proj_size == 3 and rk.LSTM(4, 8).proj_size == 0 and rk.GRU(4, 8).proj_size == 0
    with pytest.raises(RuntimeError, match="weight_hr_l0"):
        rk.LSTM(4, 8, num_layers=2, bidirectional=True).load_state_dict(oracle.state_dict())


def test_auto_runs_a_projected_lstm_on_the_engine_and_torch_kernels_on_request():
    from rnnkit import backends

    # torch's projected LSTM leaves oneDNN for a slower kernel; the engine is faster (docs/benchmarks.md)
    assert backends.select(rk.LSTM(3, 8, proj_size=2, backend="auto")).name == "engine"
    assert backends.select(rk.LSTM(3, 8, proj_size=2, backend="builtin")).name == "builtin"
    assert backends.select(rk.LSTM(3, 8, proj_size=2).double()).name == "engine"
    assert backends.select(rk.LSTM(3, 8, proj_size=2).to(torch.bfloat16)).name == "builtin"  # no bf16 engine


@pytest.mark.parametrize("kwargs, message", [
    ({"proj_size": 8}, "proj_size=8 must be smaller than hidden_size=8"),
    ({"proj_size": -1}, r"proj_size must be an integer >= 0"),
    ({"proj_size": 2.0}, r"proj_size must be an integer >= 0"),
])
def test_bad_proj_size_is_refused_like_torch_nn(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rk.LSTM(3, 8, **kwargs)
    with pytest.raises(ValueError, match="PeepholeLSTMCell has no output projection"):
        rk.PeepholeLSTM(3, 8, proj_size=2)
