"""The gradient lab's variant cells: the zoneout LSTM is an LSTM whose state keeps 10 % of its previous value
(in evaluation), and the sweep's default cells include LayerNormLSTM, minGRU and the zoneout LSTM."""

import torch

from rnnkit.apps.lab import SWEEP_CELLS, ZONEOUT, LabConfig, build_model, default_grid, lab_cell_names


def test_zoneout_lstm_in_evaluation_mixes_new_and_old_state_as_written_out():
    torch.manual_seed(0)
    model = build_model(LabConfig(task="adding", cell="lstm_zoneout", T=10, hidden_size=5)).eval()
    layer = model.encoder.rnn
    assert layer.zoneout == ZONEOUT == 0.1
    # The oracle: torch's own LSTM cell with the same weights, and zoneout's expectation
    # h_t = (1 - p) h_new + p h_{t-1}, c_t likewise (Krueger et al. 2016), written out step by step.
    cell = torch.nn.LSTMCell(2, 5)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(layer, f"{name}_l0"))
    x = torch.rand(3, 10, 2)
    h = c = torch.zeros(3, 5)
    with torch.no_grad():
        for t in range(10):
            h_new, c_new = cell(x[:, t], (h, c))
            h, c = (1 - ZONEOUT) * h_new + ZONEOUT * h, (1 - ZONEOUT) * c_new + ZONEOUT * c
        expected = model.head(h)
        torch.testing.assert_close(model(x).output, expected, rtol=1e-5, atol=1e-6)


def test_the_sweep_gains_the_variant_cells_at_every_length():
    assert {"ln_lstm", "min_gru", "lstm_zoneout"} <= set(SWEEP_CELLS) <= set(lab_cell_names())
    adding = {(c.cell, c.T) for c, _ in default_grid() if c.task == "adding" and c.recurrent_scale == 1.0}
    assert adding == {(cell, T) for cell in SWEEP_CELLS for T in (50, 100, 200)}
    assert build_model(LabConfig(cell="min_gru", T=10, hidden_size=4)).encoder.rnn.zoneout == 0.0
