"""Gradient flow over time steps: exact against a hand unroll, and the physics of vanishing gradients."""

import math

import pytest
import torch

import rnnkit as rk
from rnnkit.diagnostics import gradient_flow, plot_gradient_flow


def last_step_loss(out):
    return out[0][-1].pow(2).sum()


def test_matches_a_hand_unrolled_rnn():
    torch.manual_seed(0)
    rnn = rk.RNN(3, 5, dtype=torch.float64)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    flow = gradient_flow(rnn, x, loss_fn=last_step_loss)
    h = torch.zeros(2, 5, dtype=torch.float64)
    states = []
    for t in range(7):
        h = torch.tanh(x[t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0)
        states.append(h)
    grads = torch.autograd.grad(h.pow(2).sum(), states)
    expected = [float(g.norm(dim=1).mean()) for g in grads]
    assert flow.steps["l0"] == pytest.approx(expected, rel=1e-10)
    assert flow.spectral_norms["weight_hh_l0"] == pytest.approx(float(torch.linalg.svdvals(rnn.weight_hh_l0.detach())[0]))
    loss = last_step_loss(rnn(x))
    loss.backward()
    assert flow.parameters["weight_hh_l0"] == pytest.approx(float(rnn.weight_hh_l0.grad.norm()))
    assert flow.loss == pytest.approx(loss.item())


def test_layers_directions_and_padding():
    torch.manual_seed(0)
    gru = rk.GRU(3, 4, num_layers=2, bidirectional=True, backend="engine")
    x = torch.randn(6, 3, 3)
    lengths = torch.tensor([6, 4, 2])
    # Loss on the first time step only: the forward direction's later states cannot affect it.
    flow = gradient_flow(gru, x, loss_fn=lambda out: out[0][0].sum(), lengths=lengths)
    assert set(flow.steps) == {"l0", "l0_reverse", "l1", "l1_reverse"}
    assert all(v == 0 for v in flow.steps["l1"][1:]) and flow.steps["l1"][0] > 0
    assert all(v > 0 for v in flow.steps["l1_reverse"])
    assert gru.backend == "engine" and gru.weight_hh_l0.grad is None  # restored and untouched


def test_tanh_rnn_gradients_vanish_exponentially_lstm_keeps_them():
    torch.manual_seed(0)
    steps = 60
    x = torch.randn(steps, 8, 4, dtype=torch.float64)
    rnn = rk.RNN(4, 32, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(0.6 / torch.linalg.svdvals(rnn.weight_hh_l0)[0])  # largest singular value 0.6
    lstm = rk.LSTM(4, 32, forget_bias=1.0, dtype=torch.float64)
    rnn_flow = gradient_flow(rnn, x, loss_fn=last_step_loss)
    lstm_flow = gradient_flow(lstm, x, loss_fn=last_step_loss)
    norms = torch.tensor(rnn_flow.steps["l0"], dtype=torch.float64).log()
    # Exponential decay: log ||dL/dh_t|| is a straight line in t, with slope at most log(0.6) per step.
    t = torch.arange(steps, dtype=torch.float64)
    slope, intercept = torch.linalg.lstsq(torch.stack([t, torch.ones_like(t)], 1), norms.unsqueeze(1)).solution
    fitted = slope * t + intercept
    r_squared = 1 - ((norms - fitted) ** 2).sum() / ((norms - norms.mean()) ** 2).sum()
    assert r_squared > 0.97 and 0 < float(slope) and math.exp(-float(slope)) < 0.6
    assert rnn_flow.decay() < 1e-12
    assert lstm_flow.decay() > 1e6 * rnn_flow.decay()


def test_task_model_and_plot(tmp_path):
    from train_support import TinyLM, token_stream

    model = TinyLM()
    tokens = token_stream(41).view(1, 41)
    flow = gradient_flow(model, tokens[:, :-1], tokens[:, 1:])
    assert len(flow.steps["rnn.l0"]) == 40 and len(flow.cell_steps["rnn.l0"]) == 40
    assert "head.weight" in flow.parameters
    path = plot_gradient_flow({"lstm": flow, "again": flow}, tmp_path / "flow.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TypeError, match="rnnkit recurrent layers"):
        gradient_flow(torch.nn.Linear(2, 2), torch.randn(1, 2), loss_fn=lambda out: out.sum())


@pytest.mark.parametrize("lengths", [None, [5, 5], [5, 3]])
def test_lstm_cell_norms_equal_a_hand_unrolled_lstm(lengths):
    """||dL/dc_t|| against autograd on an LSTM written out step by step (torch's gate order i, f, g, o).
    With lengths given the cell norms missed the c_t -> h_t path (off by a factor of 2.5, 0 at the end)."""
    torch.manual_seed(0)
    lstm = rk.LSTM(3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    valid = [5, 5] if lengths is None else lengths

    def loss_fn(output):  # the sum of every valid output
        out = output[0]
        return sum(out[:n, b].sum() for b, n in enumerate(valid))

    flow = gradient_flow(lstm, x, loss_fn=loss_fn,
                         **({} if lengths is None else {"lengths": torch.tensor(lengths)}))
    w_ih, w_hh, b = lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0
    expected = []
    for row, n in enumerate(valid):
        h = c = torch.zeros(4, dtype=torch.float64)
        cells, loss = [], 0
        for t in range(n):
            i, f, g, o = (x[t, row] @ w_ih.T + h @ w_hh.T + b).chunk(4)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            c.retain_grad()
            h = torch.sigmoid(o) * torch.tanh(c)
            cells.append(c)
            loss = loss + h.sum()
        loss.backward()
        expected.append([float(c.grad.norm()) for c in cells])
    for t in range(5):
        norms = [e[t] for e in expected if t < len(e)]
        assert flow.cell_steps["l0"][t] == pytest.approx(sum(norms) / len(norms), rel=1e-9)
