"""Every bad input gets a clear error naming the problem and what was expected."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit as rk


@pytest.fixture
def lstm():
    return rk.LSTM(4, 5, num_layers=2)


@pytest.fixture
def gru():
    return rk.GRU(4, 5, batch_first=True)


def test_wrong_rank(lstm):
    with pytest.raises(ValueError, match=r"3-D batched input \(seq, batch, 4\).*got 4-D"):
        lstm(torch.randn(2, 3, 4, 1))
    with pytest.raises(ValueError, match=r"got 1-D"):
        lstm(torch.randn(4))


def test_wrong_feature_size(lstm, gru):
    with pytest.raises(ValueError, match=r"\(seq, batch, 4\) with input_size=4 features, got 6"):
        lstm(torch.randn(7, 2, 6))
    with pytest.raises(ValueError, match=r"\(batch, seq, 4\) with input_size=4 features, got 3 features \(input shape \(2, 7, 3\)\)"):
        gru(torch.randn(2, 7, 3))


def test_non_floating_input(lstm):
    with pytest.raises(TypeError, match="floating-point.*torch.int64.*Embedding"):
        lstm(torch.ones(3, 2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        lstm([[1.0] * 4])


def test_dtype_mismatch_names_the_fix(lstm):
    with pytest.raises(TypeError, match="float64 but the parameters are torch.float32"):
        lstm(torch.randn(3, 2, 4, dtype=torch.float64))


def test_empty_sequence(lstm):
    with pytest.raises(ValueError, match="0 time steps"):
        lstm(torch.randn(0, 2, 4))


def test_hx_count_and_type(lstm, gru):
    h = torch.zeros(2, 2, 5)
    with pytest.raises(TypeError, match=r"tuple \(h_0, c_0\) of 2 tensors, got Tensor"):
        lstm(torch.randn(3, 2, 4), h)
    with pytest.raises(TypeError, match="tuple of length 3"):
        lstm(torch.randn(3, 2, 4), (h, h, h))
    with pytest.raises(TypeError, match="single tensor h, got tuple"):
        gru(torch.randn(2, 3, 4), (torch.zeros(1, 2, 5),))


def test_hx_shape_and_batch_mismatch(lstm, gru):
    with pytest.raises(ValueError, match=r"h_0 of shape \(2, 2, 5\), got \(1, 2, 5\)"):
        lstm(torch.randn(3, 2, 4), (torch.zeros(1, 2, 5), torch.zeros(2, 2, 5)))
    with pytest.raises(ValueError, match=r"c_0 of shape \(2, 2, 5\), got \(2, 3, 5\)"):
        lstm(torch.randn(3, 2, 4), (torch.zeros(2, 2, 5), torch.zeros(2, 3, 5)))
    with pytest.raises(ValueError, match=r"h_0 of shape \(1, 8, 5\), got \(1, 2, 5\)"):
        gru(torch.randn(8, 3, 4), torch.zeros(1, 2, 5))
    with pytest.raises(TypeError, match="h_0 has dtype torch.float64"):
        gru(torch.randn(2, 3, 4), torch.zeros(1, 2, 5, dtype=torch.float64))


@pytest.mark.parametrize(
    "lengths,error,pattern",
    [
        (torch.tensor([[3, 3]]), ValueError, r"1-D .* got shape \(1, 2\)"),
        (torch.tensor([3.0, 2.0]), TypeError, "integer dtype, got torch.float32"),
        ([3, 2.5], TypeError, "must hold integers"),
        (torch.tensor([3, 0]), ValueError, ">= 1, got minimum 0"),
        (torch.tensor([3, -1]), ValueError, ">= 1, got minimum -1"),
        (torch.tensor([4, 2]), ValueError, "<= the sequence length 3, got maximum 4"),
        (torch.tensor([3, 2, 1]), ValueError, "3 entries but the batch holds 2"),
        ("3,2", TypeError, "1-D integer tensor or a list of ints"),
    ],
)
def test_bad_lengths(lstm, lengths, error, pattern):
    with pytest.raises(error, match=pattern):
        lstm(torch.randn(3, 2, 4), lengths=lengths)


def test_lengths_as_list_and_on_packed_input(lstm):
    out, _ = lstm(torch.randn(3, 2, 4), lengths=[3, 1])
    assert torch.all(out[1:, 1] == 0)
    packed = pack_padded_sequence(torch.randn(3, 2, 4), [3, 1])
    with pytest.raises(ValueError, match="either a PackedSequence or lengths="):
        lstm(packed, lengths=[3, 1])


@pytest.mark.parametrize(
    "build,pattern",
    [
        (lambda: rk.RNN(2, 3, nonlinearity="sigmoid"), "unknown nonlinearity 'sigmoid'; expected one of 'tanh', 'relu'"),
        (lambda: rk.LSTM(2, 3, bidirectional=True, merge="avg"), "unknown merge 'avg'.*'concat', 'sum', 'mean', 'mul'"),
        (lambda: rk.GRU(2, 3, init="he"), "unknown init 'he'"),
        (lambda: rk.GRU(2, 3, backend="cuda"), "unknown backend 'cuda'"),
        (lambda: rk.GRU(0, 3), "input_size must be a positive integer, got 0"),
        (lambda: rk.GRU(2, 3.5), "hidden_size must be a positive integer, got 3.5"),
        (lambda: rk.GRU(2, 3, num_layers=0), "num_layers must be a positive integer"),
        (lambda: rk.GRU(2, 3, 2, dropout=1.5), r"dropout must be a probability in \[0, 1\], got 1.5"),
        (lambda: rk.GRUCell(2, -1), "hidden_size must be an integer >= 0, got -1"),  # cells accept 0, as torch.nn
        (lambda: rk.ElmanCell(2, 3, nonlinearity="gelu"), "unknown nonlinearity 'gelu'"),
        (lambda: rk.LSTM(2, 3, proj_size=3), "proj_size=3 must be smaller than hidden_size=3"),
    ],
)
def test_bad_constructor_arguments(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


def test_useless_combinations_warn():
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        rk.LSTM(2, 3, dropout=0.5)
    with pytest.warns(UserWarning, match="merge='sum' has no effect without bidirectional=True"):
        rk.GRU(2, 3, merge="sum")


def test_cell_bad_inputs():
    cell = rk.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"input of shape \(batch, 3\) or \(3,\), got \(2, 5\)"):
        cell(torch.randn(2, 5))
    with pytest.raises(TypeError, match=r"tuple \(h_0, c_0\)"):
        cell(torch.randn(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"hx \(c\) of shape \(2, 4\), got \(2, 5\)"):
        cell(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 5)))
    with pytest.raises(TypeError, match="floating-point"):
        cell(torch.ones(2, 3, dtype=torch.int32))
