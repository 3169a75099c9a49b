"""ONNX export: onnxruntime against independent oracles (torch.nn's layers, hand-written GRU equations,
the models' own PyTorch forward and decoding), every cell and backend, the task models and the CLI."""

import json

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk
from rnnkit import registry
from rnnkit.cli.main import main
from rnnkit.models import ClassifierEnsemble, Seq2Seq, SequenceClassifier, SequenceTagger, save_model

ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'rnnkit[export]')")
pytest.importorskip("onnx", reason="needs onnx (pip install 'rnnkit[export]')")
from rnnkit.export import CHECK_SHAPES, to_onnx  # noqa: E402

TOL = 1e-5


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _padded(batch, steps, features, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, features, generator=generator)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    return x, lengths


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_layers_equal_torch_nn_on_packed_sequences(kind, tmp_path):
    """torch.nn with pack_padded_sequence is the oracle: 2 layers, bidirectional, batch-first, any length."""
    ours = getattr(rk, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True).eval()
    oracle = getattr(torch.nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True).eval()
    oracle.load_state_dict(ours.state_dict())
    done = to_onnx(ours, tmp_path / "layer.onnx")
    assert done.max_difference["model"] < TOL
    session = _session(done.files["model"])
    names = [i.name for i in session.get_inputs()]
    assert names == (["input", "lengths", "h0", "c0"] if kind == "LSTM" else ["input", "lengths", "h0"])
    for seed, (batch, steps) in enumerate([(1, 1), (4, 9), (6, 2)]):  # none of them the traced (2, 3)
        x, lengths = _padded(batch, steps, 3, seed)
        state = [0.3 * torch.randn(4, batch, 5) for _ in names[2:]]
        with torch.no_grad():
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, final = oracle(packed, tuple(state) if kind == "LSTM" else state[0])
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
        final = final if isinstance(final, tuple) else (final,)
        got = session.run(None, {"input": x.numpy(), "lengths": lengths.numpy(),
                                 **{n: s.numpy() for n, s in zip(names[2:], state)}})
        np.testing.assert_allclose(got[0], out.numpy(), atol=TOL, rtol=0)
        for have, want in zip(got[1:], final):
            np.testing.assert_allclose(have, want.numpy(), atol=TOL, rtol=0)


def test_gru_keeps_torchs_reset_gate_convention(tmp_path):
    """torch's GRU applies the reset gate after the recurrent matmul: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    (ONNX's linear_before_reset=1). With a large b_hn the other convention, tanh(... + W_hn (r * h) + b_hn),
    is far off; the export must match torch.nn.GRU, and this case is sensitive enough to tell them apart."""
    torch.manual_seed(3)
    ours = rk.GRU(4, 6, batch_first=True).eval()
    with torch.no_grad():
        ours.bias_hh_l0[12:].fill_(2.0)  # b_hn
        ours.weight_hh_l0.mul_(3.0)
    oracle = torch.nn.GRU(4, 6, batch_first=True).eval()
    oracle.load_state_dict(ours.state_dict())
    session = _session(to_onnx(ours, tmp_path / "gru.onnx").files["model"])
    x, lengths, h0 = torch.randn(5, 7, 4), torch.full((5,), 7), torch.randn(1, 5, 6)
    got = session.run(None, {"input": x.numpy(), "lengths": lengths.numpy(), "h0": h0.numpy()})[0]
    with torch.no_grad():
        want = oracle(x, h0)[0].numpy()
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)

    w_ih, w_hh = ours.weight_ih_l0.detach().numpy(), ours.weight_hh_l0.detach().numpy()
    b_ih, b_hh = ours.bias_ih_l0.detach().numpy(), ours.bias_hh_l0.detach().numpy()
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h, wrong = h0[0].numpy(), []
    for t in range(7):  # linear_before_reset=0, written out
        gi = x[:, t].numpy() @ w_ih.T + b_ih
        r = sigmoid(gi[:, :6] + h @ w_hh[:6].T + b_hh[:6])
        z = sigmoid(gi[:, 6:12] + h @ w_hh[6:12].T + b_hh[6:12])
        n = np.tanh(gi[:, 12:] + (r * h) @ w_hh[12:].T + b_hh[12:])
        h = (1 - z) * n + z * h
        wrong.append(h)
    assert np.abs(np.stack(wrong, 1) - want).max() > 0.05


@pytest.mark.parametrize("cell", sorted(set(registry.cell_names()) - {"rnn", "lstm", "gru"}))
def test_every_cell_bidirectional_stacked_with_lengths(cell, tmp_path):
    """Every registered cell past the three torch.nn has (tested above against torch.nn; all of them in the
    slow grid) through the layer's own reference loop as oracle; to_onnx compares on CHECK_SHAPES, which
    hold several batch sizes and lengths and padded rows."""
    torch.manual_seed(0)
    layer = registry.make_layer(cell, 3, 16, num_layers=2, batch_first=True, bidirectional=True,
                                backend="reference").eval()
    done = to_onnx(layer, tmp_path / f"{cell}.onnx")
    assert done.max_difference["model"] < TOL
    assert {steps for _, steps in CHECK_SHAPES} >= {1, 12} and {batch for batch, _ in CHECK_SHAPES} >= {1, 5}


def test_the_engine_node_exports_through_standard_operators(tmp_path):
    """A layer on the fused engine: no custom op in the file, and its outputs equal the engine's own."""
    import onnx

    layer = rk.LSTM(3, 8, backend="engine").eval()
    done = to_onnx(layer, tmp_path / "engine.onnx")
    graph = onnx.load(str(done.files["model"])).graph
    assert {n.domain for n in graph.node} <= {"", "ai.onnx"} and "Scan" in {n.op_type for n in graph.node}
    x, lengths, h0, c0 = torch.randn(7, 2, 3), torch.tensor([7, 4]), torch.zeros(1, 2, 8), torch.zeros(1, 2, 8)
    with torch.no_grad():
        want, _ = layer(x, (h0, c0), lengths=lengths)
    got = _session(done.files["model"]).run(["output"], {"input": x.numpy(), "lengths": lengths.numpy(),
                                                         "h0": h0.numpy(), "c0": c0.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), atol=TOL, rtol=0)
    assert layer.backend == "engine"  # the export put the layer's backend back


def test_language_model_one_step_function_samples_like_the_full_forward(tmp_path):
    """The text generator's file fed one token at a time (time = 1), carrying h and c, gives the logits
    of one PyTorch forward over the whole sequence at every position."""
    model = SequenceTagger(vocab_size=13, output_size=0, hidden_size=16, cell="lstm", num_layers=2).eval()
    session = _session(to_onnx(model, tmp_path / "lm.onnx").files["model"])
    tokens = torch.randint(0, 13, (3, 10))
    with torch.no_grad():
        want = model(tokens).output.numpy()
    h, c = np.zeros((2, 3, 16), np.float32), np.zeros((2, 3, 16), np.float32)
    for t in range(10):
        logits, h, c = session.run(None, {"inputs": tokens[:, t:t + 1].numpy(), "lengths": np.ones(3, np.int64),
                                          "h": h, "c": c})
        np.testing.assert_allclose(logits[:, 0], want[:, t], atol=TOL, rtol=0)


def test_classifier_with_attention_pooling_and_forecaster(tmp_path):
    classifier = SequenceClassifier(vocab_size=20, output_size=3, hidden_size=8, summary="attention",
                                    bidirectional=True).eval()
    done = to_onnx(classifier, tmp_path / "c.onnx")
    assert set(done.max_difference) == {"model"} and done.max_difference["model"] < TOL
    assert [o.name for o in _session(done.files["model"]).get_outputs()] == ["output", "attention"]
    forecaster = SequenceClassifier(input_size=2, output_size=6, task="regression", hidden_size=8, cell="gru").eval()
    assert to_onnx(forecaster, tmp_path / "f.onnx").max_difference["model"] < TOL


def test_classifier_that_reads_subwords_takes_them_as_a_third_input(tmp_path):
    torch.manual_seed(2)
    classifier = SequenceClassifier(vocab_size=20, output_size=3, hidden_size=8, subword_buckets=30,
                                    bidirectional=True, summary="max_mean").eval()
    done = to_onnx(classifier, tmp_path / "s.onnx")
    assert done.max_difference["model"] < TOL
    session = _session(done.files["model"])
    assert [i.name for i in session.get_inputs()] == ["inputs", "lengths", "subwords"]
    # More n-grams per word than the example had, some words with none: the mean must skip the padding.
    inputs, lengths = torch.tensor([[4, 5, 6], [7, 1, 0]]), torch.tensor([3, 2])
    subwords = torch.tensor([[[1, 2, 3, 4, 5, 6, 7, 8], [9, 0, 0, 0, 0, 0, 0, 0], [0] * 8],
                             [[30, 29, 0, 0, 0, 0, 0, 0], [11, 12, 13, 0, 0, 0, 0, 0], [0] * 8]])
    got = session.run(None, {"inputs": inputs.numpy(), "lengths": lengths.numpy(), "subwords": subwords.numpy()})[0]
    want = classifier(inputs, lengths=lengths, subwords=subwords).output.detach().numpy()
    np.testing.assert_allclose(got, want, atol=TOL)


def test_an_ensemble_exports_as_one_graph_of_its_mean_probabilities(tmp_path):
    torch.manual_seed(3)
    ensemble = ClassifierEnsemble(members=3, vocab_size=20, output_size=3, hidden_size=8, bidirectional=True,
                                  summary="max_mean").eval()
    done = to_onnx(ensemble, tmp_path / "e.onnx")
    assert done.max_difference["model"] < TOL
    inputs, lengths = torch.tensor([[4, 5, 6], [7, 1, 0]]), torch.tensor([3, 2])
    got = _session(done.files["model"]).run(None, {"inputs": inputs.numpy(), "lengths": lengths.numpy()})[0]
    mean = sum(torch.softmax(m(inputs, lengths=lengths).output, -1) for m in ensemble.members) / 3
    np.testing.assert_allclose(np.exp(got), mean.detach().numpy(), atol=TOL)
    forecasters = ClassifierEnsemble(members=2, input_size=2, output_size=4, task="regression", hidden_size=8,
                                     cell="lstm", summary="attention").eval()
    assert to_onnx(forecasters, tmp_path / "f.onnx").max_difference["model"] < TOL


def test_translator_encoder_and_decoder_step_decode_greedily_like_pytorch(tmp_path):
    torch.manual_seed(1)
    model = Seq2Seq(vocab_size=10, target_vocab_size=12, hidden_size=16, attention="bahdanau", cell="lstm",
                    bidirectional=True, max_length=8).eval()
    done = to_onnx(model, tmp_path / "t.onnx")
    assert set(done.files) == {"encoder", "decoder_step"} and max(done.max_difference.values()) < TOL
    assert done.files["encoder"].name == "t.encoder.onnx"
    encoder, step = _session(done.files["encoder"]), _session(done.files["decoder_step"])
    source, lengths = torch.randint(4, 10, (3, 6)), torch.tensor([6, 4, 2])
    with torch.no_grad():
        want = model(source, lengths=lengths).output.numpy()
    h, c, keys, mask = encoder.run(None, {"inputs": source.numpy(), "lengths": lengths.numpy()})
    token, rows = np.full(3, model.config.bos_id, np.int64), []
    for _ in range(want.shape[1]):
        logits, h, c, _ = step.run(None, {"tokens": token, "h": h, "c": c, "keys": keys, "mask": mask})
        token = logits.argmax(-1)
        rows.append(token)
    got = np.stack(rows, 1)
    finished = np.cumsum(got == model.config.eos_id, 1) - (got == model.config.eos_id) > 0  # after EOS: pad
    got[finished] = model.config.pad_id
    np.testing.assert_array_equal(got, want)


def test_the_newer_apps_models(tmp_path):
    """CTC recognition (speech, handwriting), image captioning (encoder + decoder step, images of several
    sizes) and piano-roll music: registered in a few lines each, checked against PyTorch the same way."""
    from rnnkit.models.captioner import Captioner
    from rnnkit.models.ctc import CTCRecognizer
    from rnnkit.models.pianoroll import PianoRollModel

    models = {"ctc": CTCRecognizer(input_size=5, num_classes=7, hidden_size=8, bidirectional=True, subsample=2),
              "caption": Captioner(vocab_size=12, image_channels=1, hidden_size=8, conv_layers=2, cell="lstm"),
              "music": PianoRollModel(keys=6, hidden_size=8)}
    files = {}
    for name, model in models.items():
        done = to_onnx(model.eval(), tmp_path / f"{name}.onnx")
        assert max(done.max_difference.values()) < TOL, name
        files[name] = set(done.files)
    assert files == {"ctc": {"model"}, "caption": {"encoder", "decoder_step"}, "music": {"model"}}


def test_the_docs_sampling_snippet_runs_without_rnnkit(tmp_path, capsys):
    """docs/shipping.md's 'Running it without rnnkit' code, on a text generator exported by the CLI: it
    imports only numpy, json and onnxruntime, and prints the prime followed by 200 sampled characters."""
    import re
    from pathlib import Path

    from serve_support import textgen_run

    run = textgen_run(tmp_path)
    assert main(["export", "--run", str(run)]) == 0
    capsys.readouterr()
    doc = (Path(__file__).resolve().parents[1] / "docs" / "shipping.md").read_text()
    code = re.search(r"\*\*Running it without rnnkit\*\*.*?```python\n(.*?)```", doc, re.S).group(1)
    assert not re.search(r"^(import|from) rnnkit", code, re.M)
    code = code.replace("runs/shakespeare", str(run)).replace("hidden = 1, 512", "hidden = 1, 16")
    exec(compile(code, "docs/shipping.md", "exec"), {})
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 200


def _fake_run(root, model, app="classify"):
    """A run directory as training leaves it (app.json + model/), written directly: no training needed."""
    from rnnkit.apps.lifecycle import RUN_FORMAT
    from rnnkit.data.vocab import Vocabulary

    root.mkdir()
    (root / "app.json").write_text(json.dumps({"app": app, "format": RUN_FORMAT, "settings": {},
                                               "train": {"seed": 0}, "facts": {"labels": ["a", "b"]}}))
    save_model(model, root / "model", Vocabulary.build(["ab ba"], level="char"))
    return root


def test_cli_exports_a_run_with_its_vocabulary(tmp_path, capsys):
    run = _fake_run(tmp_path / "run", SequenceClassifier(vocab_size=6, output_size=2, hidden_size=8).eval())
    assert main(["export", "--run", str(run), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["app"] == "classify" and manifest["parts"]["model"]["inputs"] == ["inputs", "lengths"]
    assert manifest["max_difference"]["model"] < TOL and manifest["facts"]["labels"] == ["a", "b"]
    assert (run / "export" / "model.onnx").is_file() and (run / "export" / "model.json").is_file()
    assert json.loads((run / "export" / "model.vocab.json").read_text())["tokens"]


@pytest.mark.parametrize("args, message", [
    (["--run", "{tmp}/nothing"], "does not exist"),
    (["--run", "{run}/app.json"], "is a file, not a run directory"),
    (["--run", "{tmp}"], "not an rnnkit run directory"),
    (["--run", "{run}", "--out", "{tmp}/model.txt"], "ending in .onnx"),
    (["--run", "{run}", "--tolerance", "0"], "--tolerance must be > 0"),
    (["--run", "{empty}"], "no trained model yet"),
    (["--run", "{run}", "--out", "{run}/app.onnx"], "inside the run"),  # its manifest would be app.json
    (["--run", "{run}", "--out", "{run}/model/config.onnx"], "inside the run"),
    (["--run", "{damaged}"], "not a JSON object"),
])
def test_cli_bad_input_gets_one_line(tmp_path, capsys, args, message):
    run = _fake_run(tmp_path / "run", SequenceClassifier(vocab_size=6, output_size=2, hidden_size=4).eval())
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "app.json").write_text((run / "app.json").read_text())
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "app.json").write_text("[]")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    filled = [a.format(tmp=tmp_path, run=run, empty=empty, damaged=damaged) for a in args]
    assert main(["export", *filled]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit export: error:") and message in err and "\n" not in err
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before  # nothing written


def test_an_export_that_fails_its_check_leaves_no_file(tmp_path, monkeypatch):
    import rnnkit.export as export

    monkeypatch.setattr(export, "max_difference", lambda *args, **kwargs: 1.0)
    with pytest.raises(ValueError, match="differs from PyTorch"):
        to_onnx(rk.GRU(3, 4), tmp_path / "gru.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_reads_the_vocabulary_through_its_checks(tmp_path, capsys):
    """A config.json naming another file as the vocabulary is refused, not copied into the export."""
    run = _fake_run(tmp_path / "run", SequenceClassifier(vocab_size=6, output_size=2, hidden_size=4).eval())
    secret = tmp_path / "secret.txt"
    secret.write_text("not for export")
    config = json.loads((run / "model" / "config.json").read_text())
    config["vocab"] = {"": str(secret)}
    (run / "model" / "config.json").write_text(json.dumps(config))
    assert main(["export", "--run", str(run), "--no-check"]) == 2
    assert "plain file name" in capsys.readouterr().err and not (run / "export").exists()


def test_to_onnx_refuses_a_model_it_does_not_know(tmp_path):
    with pytest.raises(TypeError, match="does not know how to export a Linear"):
        to_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")


def test_float64_export_is_exact_for_a_layer_norm_cell(tmp_path):
    """In float64 the exported graph equals PyTorch to rounding: what float32 shows for the layer-norm
    cells (below) is float32 rounding amplified by normalising, not a different computation."""
    layer = registry.make_layer("ln_lstm", 3, 16, num_layers=2, bidirectional=True, backend="reference")
    assert to_onnx(layer.double().eval(), tmp_path / "ln64.onnx").max_difference["model"] < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("cell", registry.cell_names())
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_full_grid(cell, bidirectional, num_layers, tmp_path):
    """cells x directions x depths, time-major and batch-first, on the default (fastest) backend. Three
    stacked layer norms (1/sigma over 16 features) can amplify float32 rounding to just above 1e-5:
    those cells get 3e-5 (their float64 export is exact, test above)."""
    torch.manual_seed(num_layers)
    layer = registry.make_layer(cell, 4, 16, num_layers=num_layers, batch_first=num_layers == 1,
                                bidirectional=bidirectional).eval()
    tolerance = 3e-5 if cell.startswith("ln_") else TOL
    assert to_onnx(layer, tmp_path / "x.onnx").max_difference["model"] < tolerance


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "rnnkit export --run" in out and "docs/shipping.md" in out
