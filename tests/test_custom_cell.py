"""Writing your own cell (docs/cells.md): the documented minimal gated unit runs through a layer, a task
model, save/load and the command line; the registry refuses what it cannot take."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import rnnkit as rk
from rnnkit.cli.main import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "cells.md"


@pytest.fixture(scope="module")
def mgu():
    """Run the doc's code block: it defines and registers the cell; unregistered again afterwards."""
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    yield namespace
    rk.registry.unregister_cell("mgu")


def _mgu_by_hand(x, h, w_ih, w_hh, b_ih, b_hh):
    """The paper's equations, one step, written out independently of the cell."""
    hidden = h.shape[-1]
    f = torch.sigmoid(x @ w_ih[:hidden].T + b_ih[:hidden] + h @ w_hh[:hidden].T + b_hh[:hidden])
    n = torch.tanh(x @ w_ih[hidden:].T + b_ih[hidden:] + (f * h) @ w_hh[hidden:].T + b_hh[hidden:])
    return (1 - f) * h + f * n


def test_the_documented_cell_is_a_full_layer(mgu):
    layer = rk.registry.make_layer("mgu", 3, 4, bidirectional=True, batch_first=True).double()
    assert sorted(name for name, _ in layer.named_parameters())[:2] == ["bias_hh_l0", "bias_hh_l0_reverse"]
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 3])
    output, h_n = layer(x, lengths=lengths)
    # forward direction, sequence 1 (length 3), by hand
    h = torch.zeros(4, dtype=torch.float64)
    for t in range(3):
        h = _mgu_by_hand(x[1, t], h, layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)
    torch.testing.assert_close(h_n[0, 1], h, rtol=0, atol=1e-12)
    torch.testing.assert_close(output[1, 2, :4], h, rtol=0, atol=1e-12)
    assert torch.all(output[1, 3:] == 0)
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    names = [name for name, _ in layer.named_parameters()]

    def run(inputs, *weights):
        out, _ = torch.func.functional_call(layer, dict(zip(names, weights)), (inputs,), {"lengths": lengths})
        return out

    assert torch.autograd.gradcheck(run, (x.requires_grad_(), *params), fast_mode=True)


def test_the_documented_cell_in_a_task_model_saved_and_loaded(mgu, tmp_path):
    model = rk.models.SequenceClassifier(vocab_size=12, cell="mgu", hidden_size=8, output_size=3)
    inputs = torch.randint(0, 12, (4, 6))
    expected = model(inputs).output
    rk.models.save_model(model, tmp_path)
    torch.testing.assert_close(rk.models.load_model(tmp_path)(inputs).output, expected)


def test_the_documented_cell_trains_from_the_command_line(mgu, tmp_path, capsys):
    lines = ["text,label"] + [f"{'good great' if i % 2 else 'bad awful'} film {i % 5},{'pos' if i % 2 else 'neg'}"
                              for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    assert main(["classify", "train", "--data", str(tmp_path / "d.csv"), "--cell", "mgu", "--hidden-size", "8",
                 "--max-steps", "40", "--eval-every", "20", "--min-freq", "1", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    saved = json.loads((tmp_path / "run" / "app.json").read_text())
    assert saved["settings"]["model"]["cell"] == "mgu"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["accuracy"] > 0.8


def test_the_registry_refuses_unknown_names_and_clashes(mgu):
    with pytest.raises(ValueError, match="unknown cell 'mgv'; registered cells: rnn, rnn_relu, lstm, gru, .*mgu"):
        rk.registry.make_layer("mgv", 2, 3)
    with pytest.raises(ValueError, match="already registered"):
        rk.registry.register_cell("gru", rk.GRU, help="again")
    with pytest.raises(ValueError, match="lower-case identifiers"):
        rk.registry.register_cell("My Cell", rk.GRU, help="bad name")
    with pytest.raises(TypeError, match="not an rnnkit recurrent layer"):
        rk.registry.register_cell("plain", torch.nn.GRU, help="torch's")
    for backend in ("builtin", "engine"):
        with pytest.raises(ValueError, match=f"backend '{backend}' does not support"):
            rk.registry.make_layer("mgu", 2, 3, backend=backend)(torch.randn(4, 1, 2))
