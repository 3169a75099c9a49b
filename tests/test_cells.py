"""Cells against hand-written equations, against torch.nn cells, and under float64 gradcheck."""

import pytest
import torch

import rnnkit as rk

CELLS = {
    "elman_tanh": (lambda: rk.ElmanCell(3, 4, nonlinearity="tanh"), torch.nn.RNNCell, {"nonlinearity": "tanh"}),
    "elman_relu": (lambda: rk.ElmanCell(3, 4, nonlinearity="relu"), torch.nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (lambda: rk.LSTMCell(3, 4), torch.nn.LSTMCell, {}),
    "gru": (lambda: rk.GRUCell(3, 4), torch.nn.GRUCell, {}),
}


def _by_hand(cell, x, hx):
    """The textbook equations, written out gate by gate with explicit weight slices."""
    W, U, b, c_ = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    H = cell.hidden_size
    if isinstance(cell, rk.LSTMCell):
        h, c = hx
        pre = [x @ W[k * H:(k + 1) * H].T + b[k * H:(k + 1) * H] + h @ U[k * H:(k + 1) * H].T + c_[k * H:(k + 1) * H]
               for k in range(4)]
        i, f, g, o = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.tanh(pre[2]), torch.sigmoid(pre[3])
        c_new = f * c + i * g
        return o * torch.tanh(c_new), c_new
    if isinstance(cell, rk.GRUCell):
        h = hx
        xs = [x @ W[k * H:(k + 1) * H].T + b[k * H:(k + 1) * H] for k in range(3)]
        hs = [h @ U[k * H:(k + 1) * H].T + c_[k * H:(k + 1) * H] for k in range(3)]
        r = torch.sigmoid(xs[0] + hs[0])
        z = torch.sigmoid(xs[1] + hs[1])
        n = torch.tanh(xs[2] + r * hs[2])
        return (1 - z) * n + z * h
    act = torch.tanh if cell.nonlinearity == "tanh" else torch.relu
    return act(x @ W.T + b + hx @ U.T + c_)


def _state(cell, batch=2):
    shape = (batch, cell.hidden_size) if batch else (cell.hidden_size,)
    if isinstance(cell, rk.LSTMCell):
        return torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    return torch.randn(shape, dtype=torch.float64)


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_matches_hand_written_equations(name):
    cell = CELLS[name][0]().double()
    x, hx = torch.randn(2, 3, dtype=torch.float64), _state(cell)
    expected = _by_hand(cell, x, hx)
    torch.testing.assert_close(cell(x, hx), expected)


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_matches_torch_nn_cell_with_gradients(name):
    make, torch_cls, extra = CELLS[name]
    ours = make()
    theirs = torch_cls(3, 4, **extra)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(5, 3, requires_grad=True)
    results = []
    for module in (ours, theirs):
        out = module(x)
        out = torch.cat(out, dim=1) if isinstance(out, tuple) else out
        grads = torch.autograd.grad((out * torch.arange(out.numel()).view_as(out).sin()).sum(),
                                    [x, *module.parameters()])
        results.append((out, grads))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_passes_gradcheck(name):
    cell = CELLS[name][0]().double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    hx = _state(cell)
    hx = tuple(h.requires_grad_() for h in hx) if isinstance(hx, tuple) else hx.requires_grad_()

    def step(inp, *state_and_params):
        n_state = 2 if isinstance(cell, rk.LSTMCell) else 1
        state, params = state_and_params[:n_state], state_and_params[n_state:]
        names = [n for n, _ in cell.named_parameters()]
        out = torch.func.functional_call(cell, dict(zip(names, params)), (inp, state if n_state == 2 else state[0]))
        return out if isinstance(out, tuple) else (out,)

    state = hx if isinstance(hx, tuple) else (hx,)
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    assert torch.autograd.gradcheck(step, (x, *state, *params))


@pytest.mark.parametrize("name", list(CELLS))
def test_unbatched_cell_and_default_zero_state(name):
    cell = CELLS[name][0]().double()
    x = torch.randn(3, dtype=torch.float64)
    out = cell(x)
    zero = _state(cell, batch=1)
    zero = tuple(torch.zeros_like(z) for z in zero) if isinstance(zero, tuple) else torch.zeros_like(zero)
    batched = cell(x.unsqueeze(0), zero)
    if isinstance(out, tuple):
        for a, b in zip(out, batched):
            torch.testing.assert_close(a, b.squeeze(0))
    else:
        torch.testing.assert_close(out, batched.squeeze(0))


def test_cell_without_bias_has_no_bias_parameters():
    cell = rk.GRUCell(3, 4, bias=False)
    assert cell.bias_ih is None and cell.bias_hh is None
    assert sorted(n for n, _ in cell.named_parameters()) == ["weight_hh", "weight_ih"]
    assert cell(torch.randn(2, 3)).shape == (2, 4)


def test_rnncell_is_the_elman_cell():
    assert rk.RNNCell is rk.ElmanCell
