"""Dynamic evaluation (Krause et al., 2018): score a chunk, then learn from it, against the update written out."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from app_support import train_text_with_an_unseen_phrase
from rnnkit.cli.main import main
from rnnkit.data import StreamBatches
from rnnkit.models import SequenceTagger
from rnnkit.train import dynamic_evaluation_loss, evaluate_loss


def _model(cell="lstm"):
    torch.manual_seed(0)
    return SequenceTagger(vocab_size=7, output_size=0, cell=cell, hidden_size=5, embedding_dim=4,
                          num_layers=2).double()


def _tokens(seed=1, n=41):
    return torch.randint(0, 7, (n,), generator=torch.Generator().manual_seed(seed))


def _written_out(model, tokens, chunk, lr, decay):
    """theta_i = theta_{i-1} + decay (theta_0 - theta_{i-1}) - lr grad L_i(theta_{i-1}); chunk i scored first."""
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = {name: p.clone().requires_grad_() for name, p in start.items()}
    total, count, state = 0.0, 0, None
    for begin in range(0, len(tokens) - 1, chunk):
        inputs = tokens[begin:begin + chunk + 1][:-1].unsqueeze(0)
        targets = tokens[begin + 1:begin + chunk + 1].unsqueeze(0)
        out = functional_call(model, params, (inputs,), {"state": state})
        loss = F.cross_entropy(out.output[0], targets[0])
        grads = torch.autograd.grad(loss, list(params.values()))
        total += loss.item() * targets.numel()
        count += targets.numel()
        state = out.state.detach() if torch.is_tensor(out.state) else tuple(x.detach() for x in out.state)
        params = {name: (p + decay * (start[name] - p) - lr * g).detach().requires_grad_()
                  for (name, p), g in zip(params.items(), grads)}
    return total / count


@pytest.mark.parametrize("cell,lr,decay", [("lstm", 0.5, 0.0), ("lstm", 0.5, 0.2), ("lstm", 2.0, 0.05),
                                           ("gru", 0.5, 0.1), ("ln_lstm", 0.5, 0.1)])
def test_scores_each_chunk_before_one_sgd_step_on_it(cell, lr, decay):
    model, tokens = _model(cell), _tokens()
    expected = _written_out(model, tokens, chunk=8, lr=lr, decay=decay)
    got = dynamic_evaluation_loss(model, StreamBatches(tokens, 1, 8), lr=lr, decay=decay)
    assert got == pytest.approx(expected, rel=1e-6)  # the loss is reported in float32
    static = evaluate_loss(model, StreamBatches(tokens, 1, 8))
    assert abs(got - static) > 1e-3  # the steps changed the later chunks' scores


def test_without_a_step_it_is_the_static_loss_and_the_weights_come_back():
    model, tokens = _model(), _tokens()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    static = evaluate_loss(model, StreamBatches(tokens, 1, 8))
    assert dynamic_evaluation_loss(model, StreamBatches(tokens, 1, 8), lr=0.0) == pytest.approx(static, rel=1e-7)
    dynamic_evaluation_loss(model, StreamBatches(tokens, 1, 8), lr=1.0, decay=0.1)
    assert model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_a_repeated_unseen_phrase_gets_cheaper_as_it_is_read():
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=7, output_size=0, hidden_size=16, embedding_dim=8)
    text = torch.tensor([5, 2, 6, 3, 1, 4] * 60)
    static = evaluate_loss(model, StreamBatches(text, 1, 12))
    assert dynamic_evaluation_loss(model, StreamBatches(text, 1, 12), lr=2.0) < 0.25 * static


def test_several_lanes_and_bad_rates_are_refused():
    model, tokens = _model(), _tokens()
    with pytest.raises(ValueError, match="one lane"):
        dynamic_evaluation_loss(model, StreamBatches(tokens, 2, 8), lr=0.1)
    with pytest.raises(ValueError, match="decay"):
        dynamic_evaluation_loss(model, StreamBatches(tokens, 1, 8), lr=0.1, decay=1.0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_text_with_an_unseen_phrase(tmp_path_factory.mktemp("dyn"))


def test_cli_dynamic_evaluation_beats_static_on_text_unlike_the_training_part(run, capsys):
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--batch-size", "1"]) == 0
    static = json.loads(capsys.readouterr().out)
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--dynamic-lr", "0.3", "--dynamic-decay", "0.01"]) == 0
    dynamic = json.loads(capsys.readouterr().out)
    assert dynamic["tokens"] == static["tokens"] and dynamic["dynamic_lr"] == 0.3
    assert dynamic["val_nats_per_char"] < static["val_nats_per_char"] - 0.2
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--batch-size", "1"]) == 0  # the saved model is unchanged
    assert json.loads(capsys.readouterr().out) == static


@pytest.mark.parametrize("flags,message", [
    (["--dynamic-lr", "-1"], "--dynamic-lr must be a number > 0"),
    (["--dynamic-decay", "0.1"], "only applies with --dynamic-lr"),
    (["--dynamic-lr", "0.1", "--dynamic-decay", "1"], "--dynamic-decay must be in [0, 1)"),
    (["--dynamic-lr", "0.1", "--batch-size", "4"], "--batch-size must be 1"),
    (["--chunk-length", "0"], "--chunk-length must be >= 1"),
])
def test_bad_dynamic_options_are_one_line_and_exit_2(run, capsys, flags, message):
    assert main(["textgen", "evaluate", "--json", "--run", str(run), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("dynamic", [[], ["--dynamic-lr", "0.1"]], ids=["static", "dynamic"])
def test_a_text_too_short_to_predict_is_one_line(run, tmp_path, capsys, dynamic):
    short = tmp_path / "short.txt"
    short.write_text("a")
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--data", str(short), *dynamic]) == 2
    err = capsys.readouterr().err
    assert "short.txt has no document of 2 or more tokens" in err and len(err.strip().splitlines()) == 1


def test_a_file_in_another_encoding_is_named_and_then_read_with_encoding(run, tmp_path, capsys):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("the caf\u00e9 sat on the mat. ".encode("latin-1") * 20)
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--data", str(latin)]) == 2
    assert "--encoding latin-1" in capsys.readouterr().err
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--data", str(latin), "--encoding", "latin-1"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == len("the caf\u00e9 sat on the mat. ") * 20
