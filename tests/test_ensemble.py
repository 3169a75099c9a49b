"""ClassifierEnsemble: the mixture written out (mean of the members' probabilities, of a regression's outputs,
of attention weights), its loss, saving and loading; the classify app trains members apart (member 0 is the
one-model run, bit for bit), resumes inside a member, and refuses what cannot work in one line."""

import json

import pytest
import torch

from app_support import Killed, training_losses
from rnnkit.apps.lifecycle import FITTED_FILE as FITTED
from rnnkit.cli.main import main
from rnnkit.models import ClassifierEnsemble, load_model, save_model
from test_app_classify import FAST, keyword_csv


def _batch():
    return torch.tensor([[4, 5, 6, 7], [8, 9, 1, 0]]), torch.tensor([4, 3])


def test_probabilities_are_the_mean_of_the_members():
    torch.manual_seed(0)
    ensemble = ClassifierEnsemble(members=3, vocab_size=12, output_size=4, hidden_size=6, bidirectional=True,
                                  summary="attention").double().eval()
    inputs, lengths = _batch()
    targets = torch.tensor([2, 0])
    got = ensemble(inputs, targets, lengths=lengths)
    logits = [m(inputs, lengths=lengths).output for m in ensemble.members]
    assert not torch.allclose(logits[0], logits[1])  # members start apart
    probabilities = sum(torch.exp(z - z.logsumexp(-1, keepdim=True)) for z in logits) / 3
    torch.testing.assert_close(got.output.exp(), probabilities, rtol=1e-12, atol=1e-12)
    want_loss = -(probabilities[0, 2].log() + probabilities[1, 0].log()) / 2
    torch.testing.assert_close(got.loss, want_loss, rtol=1e-12, atol=1e-12)
    weights = sum(m(inputs, lengths=lengths).attention for m in ensemble.members) / 3
    torch.testing.assert_close(got.attention, weights, rtol=1e-12, atol=1e-12)


def test_a_regression_ensemble_averages_the_outputs():
    torch.manual_seed(1)
    ensemble = ClassifierEnsemble(members=2, input_size=3, output_size=2, task="regression", hidden_size=5).eval()
    x, targets = torch.randn(2, 4, 3), torch.randn(2, 2)
    got = ensemble(x, targets)
    mean = (ensemble.members[0](x).output + ensemble.members[1](x).output) / 2
    torch.testing.assert_close(got.output, mean)
    torch.testing.assert_close(got.loss, ((mean - targets) ** 2).mean())


def test_one_member_is_the_classifier_and_a_saved_ensemble_loads_back(tmp_path):
    torch.manual_seed(2)
    single = ClassifierEnsemble(members=1, vocab_size=12, output_size=3, hidden_size=6).eval()
    inputs, lengths = _batch()
    member = single.members[0](inputs, lengths=lengths).output
    torch.testing.assert_close(single(inputs, lengths=lengths).output, member.log_softmax(-1))
    ensemble = ClassifierEnsemble(members=3, vocab_size=12, output_size=3, hidden_size=6).eval()
    loaded = load_model(save_model(ensemble, tmp_path / "e"))
    assert type(loaded) is ClassifierEnsemble and loaded.config == ensemble.config
    assert torch.equal(loaded(inputs, lengths=lengths).output, ensemble(inputs, lengths=lengths).output)
    with pytest.raises(ValueError, match="members"):
        ClassifierEnsemble(members=0, vocab_size=12)


def _train(data, out, *extra):
    return main(["classify", "train", "--data", str(data), "--out", str(out), "--max-steps", "12",
                 "--checkpoint-every", "5", "--eval-every", "4", *FAST, *extra])


def test_member_zero_is_the_one_model_run_and_predictions_average(tmp_path):
    from rnnkit.apps import classify

    data = keyword_csv(tmp_path / "kw.csv", rows=60)
    assert _train(data, tmp_path / "one") == 0
    assert _train(data, tmp_path / "three", "--ensemble", "3") == 0
    one = load_model(tmp_path / "one" / "model")
    ensemble, vocab, run = classify.load_run(tmp_path / "three")
    assert isinstance(ensemble, ClassifierEnsemble) and len(ensemble.members) == 3
    for name, tensor in one.state_dict().items():
        assert torch.equal(ensemble.members[0].state_dict()[name], tensor), name  # the same seed: the same bits
        assert not torch.equal(ensemble.members[1].state_dict()[name], tensor) or "bias" in name or "norm" in name
    texts = ["great movie", "awful plot and boring acting", "the film"]
    got = classify.predict_texts(ensemble, texts, vocab, run.settings)
    want = sum(classify.predict_texts(m, texts, vocab, run.settings) for m in ensemble.members) / 3
    torch.testing.assert_close(got, want)
    result = json.loads((tmp_path / "three" / "results.json").read_text())
    assert result["steps"] == [12, 12, 12] and set(result["ensemble_val"]) == {"accuracy", "macro_f1"}
    assert training_steps(tmp_path / "three" / "members" / "2") == list(range(1, 13))


def test_a_forecast_ensemble_forecasts_its_members_mean(tmp_path):
    from rnnkit.apps import forecast
    from test_app_forecast import series_csv

    data = series_csv(tmp_path / "load.csv", rows=120)
    base = ["forecast", "train", "--data", str(data), "--targets", "load", "--horizon", "2", "--lookback", "12",
            "--hidden-size", "8", "--max-steps", "8", "--eval-every", "4", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "one")]) == 0
    assert main([*base, "--ensemble", "2", "--out", str(tmp_path / "two")]) == 0
    ensemble, _ = forecast.load_run(tmp_path / "two")
    one = load_model(tmp_path / "one" / "model")
    for name, tensor in one.state_dict().items():
        assert torch.equal(ensemble.members[0].state_dict()[name], tensor), name
    window = torch.randn(3, 12, 2)
    mean = (ensemble.members[0](window).output + ensemble.members[1](window).output) / 2
    torch.testing.assert_close(ensemble(window).output, mean)
    values = forecast.predict(tmp_path / "two")["values"]
    assert len(values) == 2 and json.loads((tmp_path / "two" / "results.json").read_text())["steps"] == [8, 8]


def training_steps(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "loss" in r]


@pytest.mark.parametrize("kill", [3, 8])
def test_a_run_killed_inside_a_member_resumes_to_the_same_bits(tmp_path, monkeypatch, kill):
    from rnnkit.train import Trainer

    data = keyword_csv(tmp_path / "kw.csv", rows=60)
    assert _train(data, tmp_path / "whole", "--ensemble", "2") == 0
    original = Trainer._train_step

    def train_step(self, batch):
        if self.run_dir.name == "1" and self.step == kill:
            raise Killed
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_step", train_step)
        with pytest.raises(Killed):
            _train(data, tmp_path / "killed", "--ensemble", "2")
    assert (tmp_path / "killed" / "members" / "0" / "fitted.json").exists()
    assert not (tmp_path / "killed" / "members" / "1" / "fitted.json").exists()
    assert not (tmp_path / "killed" / "model").exists()
    assert _train(data, tmp_path / "killed", "--ensemble", "2", "--resume") == 0
    whole, killed = (tmp_path / name / "model" / "model.safetensors" for name in ("whole", "killed"))
    assert whole.read_bytes() == killed.read_bytes()
    for member in ("0", "1"):  # every step logged once, with the same loss
        assert training_losses(tmp_path / "whole" / "members" / member) == \
            training_losses(tmp_path / "killed" / "members" / member)


def test_ctrl_c_inside_a_member_stops_the_run_and_resume_finishes_it(tmp_path, monkeypatch, capsys):
    import os
    import signal

    from rnnkit.train import Trainer

    data = keyword_csv(tmp_path / "kw.csv", rows=60)
    assert _train(data, tmp_path / "whole", "--ensemble", "2") == 0
    original = Trainer._train_step

    def train_step(self, batch):
        if self.run_dir.name == "0" and self.step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # the trainer finishes this step, checkpoints and stops
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_step", train_step)
        capsys.readouterr()
        assert _train(data, tmp_path / "cut", "--ensemble", "2") == 130
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "interrupted at step 5" in message and f"--out {tmp_path / 'cut'} --resume" in message
    # before the fix member 0 was marked done at step 5 and member 1 trained on; the run wrote a model
    assert not (tmp_path / "cut" / "members" / "0" / FITTED).exists()
    assert not (tmp_path / "cut" / "members" / "1").exists() and not (tmp_path / "cut" / "model").exists()
    assert _train(data, tmp_path / "cut", "--ensemble", "2", "--resume") == 0
    whole, cut = (tmp_path / name / "model" / "model.safetensors" for name in ("whole", "cut"))
    assert whole.read_bytes() == cut.read_bytes()
    for member in ("0", "1"):
        assert training_losses(tmp_path / "whole" / "members" / member) == \
            training_losses(tmp_path / "cut" / "members" / member)


def test_init_from_gives_every_member_the_earlier_weights(tmp_path):
    from rnnkit.apps import classify

    data = keyword_csv(tmp_path / "kw.csv", rows=60)
    assert _train(data, tmp_path / "source", "--max-steps", "4") == 0
    source = load_model(tmp_path / "source" / "model").state_dict()
    settings = classify.APP.normalize(classify.ClassifySettings(
        data=str(data), init_from=str(tmp_path / "source"), ensemble=3,
        model=classify.load_run(tmp_path / "source")[2].settings.model))
    config = classify.APP.default_config()
    prepared = classify.APP.prepare(settings, config, tmp_path)
    ensemble = classify.APP.build_model(settings, prepared)
    rows = source["encoder.embedding.weight"].shape[0]
    for member in ensemble.members:
        mine = member.state_dict()
        assert torch.equal(mine["encoder.rnn.weight_ih_l0"], source["encoder.rnn.weight_ih_l0"])
        assert torch.equal(mine["head.weight"], source["head.weight"])
        assert torch.equal(mine["encoder.embedding.weight"][:rows], source["encoder.embedding.weight"])


def test_bad_ensembles_get_one_line(cli_error, tmp_path):
    data = keyword_csv(tmp_path / "kw.csv", rows=60)
    assert "ensemble must be >= 1" in cli_error(["classify", "train", "--data", str(data), "--ensemble", "0",
                                                  "--out", str(tmp_path / "x")])
    assert _train(data, tmp_path / "two", "--ensemble", "2", "--max-steps", "2") == 0
    err = cli_error(["classify", "train", "--data", str(data), "--init-from", str(tmp_path / "two"), *FAST,
                     "--out", str(tmp_path / "y")])
    assert "is an ensemble of 2 classifiers" in err and "one-model run" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
