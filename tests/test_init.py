"""Each initialisation scheme's defining property."""

import math

import pytest
import torch

import rnnkit as rk
from rnnkit import init


def _eye(n):
    return torch.eye(n)


@pytest.mark.parametrize("layer_cls,chunks", [(rk.RNN, 1), (rk.LSTM, 4), (rk.GRU, 3)])
def test_default_is_torch_uniform_bound(layer_cls, chunks):
    layer = layer_cls(10, 64, num_layers=2, bidirectional=True)
    bound = 1 / math.sqrt(64)
    values = torch.cat([p.detach().flatten() for p in layer.parameters()])
    assert values.abs().max() <= bound
    assert abs(values.var().item() - bound**2 / 3) < 0.05 * bound**2 / 3  # uniform over the whole range


@pytest.mark.parametrize("layer_cls,chunks", [(rk.RNN, 1), (rk.LSTM, 4), (rk.GRU, 3)])
def test_identity_scheme_is_irnn(layer_cls, chunks):
    layer = layer_cls(50, 40, num_layers=2, init="identity")
    for group in layer.parameter_groups():
        w_ih, w_hh, b_ih, b_hh = (group[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        for block in w_hh.chunk(chunks):
            assert torch.equal(block, _eye(40))
        assert torch.all(b_ih == 0) and torch.all(b_hh == 0)
        assert 0.0007 < w_ih.std() < 0.0013  # N(0, 0.001^2), Le et al. 2015


def test_identity_function_scale():
    w = torch.empty(6, 3)
    init.identity_(w, num_chunks=2, scale=0.01)
    assert torch.equal(w, torch.cat([0.01 * _eye(3)] * 2))
    rectangular = init.identity_(torch.empty(8, 3), num_chunks=2)  # an LSTM with proj_size: (hidden, proj)
    assert torch.equal(rectangular, torch.cat([torch.eye(4, 3)] * 2))


def test_identity_scheme_with_a_projection():
    """init='identity' with proj_size raised 'identity_ needs square gate blocks'; the projected state's
    features now go each to its own hidden unit, and the projection is orthogonal (cells.md's table)."""
    layer = rk.LSTM(3, 6, proj_size=2, init="identity")
    for block in layer.weight_hh_l0.chunk(4):
        assert torch.equal(block, torch.eye(6, 2))
    w_hr = layer.weight_hr_l0  # (proj, hidden): orthonormal rows
    torch.testing.assert_close(w_hr @ w_hr.T, torch.eye(2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("scheme", ["orthogonal", "xavier"])
@pytest.mark.parametrize("layer_cls,chunks", [(rk.RNN, 1), (rk.LSTM, 4), (rk.GRU, 3)])
def test_orthogonal_recurrent_blocks(layer_cls, chunks, scheme):
    layer = layer_cls(7, 16, init=scheme)
    group = layer.parameter_groups()[0]
    w_hh, b_ih, b_hh = group["weight_hh"], group["bias_ih"], group["bias_hh"]
    for block in w_hh.chunk(chunks):
        torch.testing.assert_close(block.T @ block, _eye(16), atol=1e-5, rtol=0)
    assert torch.all(b_ih == 0) and torch.all(b_hh == 0)


def test_xavier_input_blocks_use_per_gate_fans():
    layer = rk.LSTM(300, 100, init="xavier")
    bound = math.sqrt(6 / (300 + 100))
    for block in layer.weight_ih_l0.chunk(4):
        assert block.abs().max() <= bound
        assert block.abs().max() > 0.95 * bound
        assert abs(block.var().item() - bound**2 / 3) < 0.1 * bound**2 / 3


@pytest.mark.parametrize("scheme", ["default", "identity", "orthogonal", "xavier"])
def test_lstm_forget_bias_is_set_on_top_of_any_scheme(scheme):
    layer = rk.LSTM(3, 8, num_layers=2, bidirectional=True, init=scheme, forget_bias=1.0)
    for group in layer.parameter_groups():
        total = group["bias_ih"] + group["bias_hh"]
        assert torch.all(total[8:16] == 1.0)
    # The cell really sees the bias: with zero weights the forget gate is sigmoid(1).
    cell = rk.LSTMCell(2, 3)
    torch.nn.init.zeros_(cell.weight_ih), torch.nn.init.zeros_(cell.weight_hh)
    torch.nn.init.zeros_(cell.bias_ih), torch.nn.init.zeros_(cell.bias_hh)
    init.forget_gate_bias_(cell.bias_ih, cell.bias_hh, 1.0)
    _, c = cell(torch.zeros(1, 2), (torch.zeros(1, 3), torch.ones(1, 3)))
    torch.testing.assert_close(c, torch.full((1, 3), torch.sigmoid(torch.tensor(1.0)).item()))


def test_initialize_works_on_cells_too():
    cell = rk.GRUCell(4, 6)
    init.initialize_(cell, "orthogonal")
    for block in cell.weight_hh.chunk(3):
        torch.testing.assert_close(block @ block.T, _eye(6), atol=1e-5, rtol=0)


def test_bad_init_arguments():
    with pytest.raises(ValueError, match="unknown init 'glorot'"):
        rk.GRU(2, 3, init="glorot")
    with pytest.raises(ValueError, match="LSTMs only"):
        init.initialize_(rk.GRU(2, 3), "default", forget_bias=1.0)
    with pytest.raises(ValueError, match="bias=True"):
        rk.LSTM(2, 3, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match="finite"):
        rk.LSTM(2, 3, forget_bias=float("nan"))
