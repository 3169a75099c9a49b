"""The time loop against a manual per-step unroll of the cell, with and without lengths."""

import pytest
import torch

import rnnkit as rk
from rnnkit.loop import recur, reverse_padded

CELLS = [rk.LSTMCell, rk.GRUCell, rk.ElmanCell]


def _unroll(cell, xs, state):
    """Call the cell module step by step: the most direct possible definition of a recurrent pass."""
    outputs = []
    for x_t in xs:
        state = cell(x_t, state)
        outputs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outputs), state


@pytest.mark.parametrize("cell_type", CELLS)
def test_loop_equals_manual_unroll(cell_type):
    cell = cell_type(3, 4).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    expected, final = _unroll(cell, x, None)
    zeros = (torch.zeros(2, 4, dtype=torch.float64),) * cell.num_states
    output, state = recur(cell_type, x, zeros, cell.parameter_groups()[0], options=cell.step_options())
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(state[0], final[0] if isinstance(final, tuple) else final)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell_type", CELLS)
def test_loop_with_lengths_equals_per_sequence_unroll(cell_type, reverse):
    cell = cell_type(3, 4).double()
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([2, 5, 3])
    zeros = (torch.zeros(3, 4, dtype=torch.float64),) * cell.num_states
    output, state = recur(cell_type, x, zeros, cell.parameter_groups()[0], lengths=lengths, reverse=reverse,
                          options=cell.step_options())
    for b, n in enumerate(lengths.tolist()):
        seq = x[:n, b : b + 1]
        expected, final = _unroll(cell, seq.flip(0) if reverse else seq, None)
        if reverse:
            expected = expected.flip(0)  # the reverse pass starts at the last valid element
        torch.testing.assert_close(output[:n, b : b + 1], expected)
        assert torch.all(output[n:, b] == 0)
        for got, want in zip(state, final if isinstance(final, tuple) else (final,)):
            torch.testing.assert_close(got[b : b + 1], want)


def test_reverse_padded_reverses_within_each_length_only():
    x = torch.arange(4).view(4, 1, 1).repeat(1, 2, 1).float()
    out = reverse_padded(x, torch.tensor([4, 2]))
    assert out[:, 0, 0].tolist() == [3, 2, 1, 0]
    assert out[:, 1, 0].tolist() == [1, 0, 2, 3]
    assert torch.equal(reverse_padded(out, torch.tensor([4, 2])), x)
