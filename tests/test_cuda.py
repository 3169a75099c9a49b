"""GPU behaviour: cuDNN through the builtin backend, one flat weight buffer, equality with torch.nn."""

import warnings

import pytest
import torch
from harness import PAIRS, assert_all_close, make_pair, random_state, run

import rnnkit as rk
from rnnkit import backends

pytestmark = pytest.mark.requires_cuda


@pytest.mark.parametrize("kind", list(PAIRS))
def test_cuda_layers_use_cudnn_and_match_torch(kind):
    ours, oracle = make_pair(kind, 4, 8, torch.float32, num_layers=2, bidirectional=True)
    ours, oracle = ours.cuda(), oracle.cuda()
    assert backends.select(ours).name == "builtin"  # the CPU engine never claims a GPU layer
    x = torch.randn(6, 3, 4, device="cuda")
    hx = tuple(h.cuda() for h in random_state(oracle, 3, torch.float32))
    lengths = torch.tensor([6, 2, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "RNN module weights are not part of single contiguous chunk"
        got = run(ours, x, hx, lengths=lengths)
    expected = run(oracle, x, hx, lengths=lengths, mode="packed")
    assert_all_close([t.cpu() for t in got[0]], [t.cpu() for t in expected[0]], 1e-4)
    assert_all_close([t.cpu() for t in got[1]], [t.cpu() for t in expected[1]], 1e-4)


def test_flatten_parameters_puts_all_weights_in_one_buffer():
    layer = rk.LSTM(4, 8, num_layers=2, bidirectional=True).cuda()
    weights = layer.flat_weights()
    base = weights[0].untyped_storage().data_ptr()
    assert all(w.untyped_storage().data_ptr() == base for w in weights)


def test_reference_backend_runs_on_cuda():
    layer = rk.GRU(4, 8, backend="reference").cuda()
    output, h_n = layer(torch.randn(5, 2, 4, device="cuda"), lengths=torch.tensor([5, 3]))
    assert output.is_cuda and torch.all(output[3:, 1] == 0)
