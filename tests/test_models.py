"""Task models: padding invisibility, summaries and losses against hand-written oracles, state carry,
save/load round trips and errors, and each pattern learning a small generated task."""

import dataclasses
import json

import pytest
import torch

from rnnkit.data.vocab import Vocabulary
from rnnkit.models import (
    IGNORE_INDEX, AdditiveAttention, DotAttention, GeneralAttention, OneToOne, OneToOneConfig, Seq2Seq,
    Seq2SeqConfig, SequenceClassifier, SequenceClassifierConfig, SequenceGenerator, SequenceGeneratorConfig,
    SequenceTagger, SequenceTaggerConfig, greedy_decode, load_model, load_vocab, save_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


CONFIGS = [OneToOneConfig, SequenceClassifierConfig, SequenceTaggerConfig, SequenceGeneratorConfig, Seq2SeqConfig]


def fit(model, make_batch, steps, lr=1e-2):
    """The smallest training loop: Adam on model(inputs, targets, **kw).loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        inputs, targets, kw = make_batch(generator)
        loss = model(inputs, targets, **kw).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def padded_tokens(lengths, steps, low=4, high=10):
    """Random token ids with random *garbage* (not zeros) past each length: padding must not leak."""
    return torch.randint(low, high, (len(lengths), steps))


@pytest.mark.parametrize("config_class", CONFIGS)
def test_every_config_field_has_default_and_help(config_class):
    for f in dataclasses.fields(config_class):
        assert f.default is not dataclasses.MISSING, f.name
        assert f.metadata.get("help"), f"{config_class.__name__}.{f.name} has no help"
    config_class()  # the defaults are valid


# --- padding is invisible -------------------------------------------------------------------------


@pytest.mark.parametrize("summary", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("cell,bidirectional", [("lstm", True), ("gru", True), ("rnn", False)])
def test_classifier_padding_invisible(summary, cell, bidirectional):
    model = SequenceClassifier(vocab_size=10, hidden_size=6, num_layers=2, cell=cell, bidirectional=bidirectional,
                               summary=summary, output_size=3).eval()
    lengths = torch.tensor([7, 2, 5, 1])
    x = padded_tokens(lengths, 7)
    batched = model(x, lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model(x[i:i + 1, :n])
        torch.testing.assert_close(batched.output[i], alone.output[0], atol=1e-5, rtol=1e-5)
        if summary == "attention":
            torch.testing.assert_close(batched.attention[i, :n], alone.attention[0], atol=1e-6, rtol=1e-5)
            assert torch.all(batched.attention[i, n:] == 0)


@pytest.mark.parametrize("summary", ["last", "mean", "max"])
@torch.no_grad()
def test_classifier_summaries_match_manual_oracles(summary):
    """Summaries recomputed per sequence from the layer's own outputs, with plain Python loops."""
    model = SequenceClassifier(input_size=3, hidden_size=4, bidirectional=True, summary=summary).eval()
    lengths = torch.tensor([5, 3])
    x = torch.randn(2, 5, 3)
    outputs, state, _, mask = model.encoder(x, lengths)
    summary_vector, _ = model.summarize(outputs, state, mask)
    for i, n in enumerate(lengths.tolist()):
        out_i, _ = model.encoder.rnn(x[i:i + 1, :n])  # run alone, no padding
        steps = [out_i[0, t] for t in range(n)]
        if summary == "last":  # forward half at the last step, backward half at step 0
            expected = torch.cat([steps[-1][:4], steps[0][4:]])
        elif summary == "mean":
            expected = sum(steps) / n
        else:
            expected = torch.tensor([max(float(s[j]) for s in steps) for j in range(8)])
        torch.testing.assert_close(summary_vector[i], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_tagger_padding_invisible_and_loss_oracle(bidirectional):
    model = SequenceTagger(vocab_size=10, output_size=5, hidden_size=6, cell="lstm", num_layers=2,
                           bidirectional=bidirectional).eval()
    lengths = torch.tensor([6, 3, 1])
    x = padded_tokens(lengths, 6)
    targets = torch.randint(0, 5, (3, 6))
    targets[0, 2] = IGNORE_INDEX
    out = model(x, targets, lengths=lengths)
    terms = []
    for i, n in enumerate(lengths.tolist()):
        alone = model(x[i:i + 1, :n])
        torch.testing.assert_close(out.output[i, :n], alone.output[0], atol=1e-5, rtol=1e-5)
        for k, part in enumerate(out.state):  # final state at each sequence's last valid step
            torch.testing.assert_close(part[:, i], alone.state[k][:, 0], atol=1e-5, rtol=1e-5)
        terms += [-torch.log_softmax(alone.output[0, t], -1)[targets[i, t]] for t in range(n)
                  if targets[i, t] != IGNORE_INDEX]
    torch.testing.assert_close(out.loss, torch.stack(terms).mean(), atol=1e-5, rtol=1e-5)


def test_tagger_regression_loss_is_masked_mse():
    model = SequenceTagger(input_size=2, output_size=2, task="regression", hidden_size=5).eval()
    lengths = torch.tensor([4, 2])
    x, y = torch.randn(2, 4, 2), torch.randn(2, 4, 2)
    out = model(x, y, lengths=lengths)
    diffs = torch.cat([(out.output[0] - y[0]).flatten(), (out.output[1, :2] - y[1, :2]).flatten()])
    torch.testing.assert_close(out.loss, (diffs ** 2).mean())


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn_relu"])
def test_tagger_carried_state_equals_one_long_run(cell):
    """Truncated BPTT's contract: two chunks with the carried state give the same as one run."""
    model = SequenceTagger(vocab_size=9, hidden_size=7, num_layers=2, cell=cell).eval()
    x = torch.randint(0, 9, (3, 10))
    whole = model(x)
    first = model(x[:, :6])
    second = model(x[:, 6:], state=first.state)
    torch.testing.assert_close(torch.cat([first.output, second.output], 1), whole.output, atol=1e-5, rtol=1e-5)
    for a, b in zip(second.state if cell == "lstm" else (second.state,),
                    whole.state if cell == "lstm" else (whole.state,)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_tagger_prime_and_step_match_forward():
    model = SequenceTagger(vocab_size=9, hidden_size=7, cell="lstm").eval()
    x = torch.randint(0, 9, (2, 8))
    full = model(x).output
    logits, state = model.prime(x[:, :5])
    torch.testing.assert_close(logits, full[:, 4], atol=1e-5, rtol=1e-5)
    for t in range(5, 8):
        logits, state = model.step(x[:, t], state)
        torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="bidirectional SequenceTagger.*cannot run step by step"):
        SequenceTagger(vocab_size=9, bidirectional=True).step(x[:, 0], None)


@pytest.mark.parametrize("attention,bidirectional,cell", [
    ("none", False, "lstm"), ("none", True, "gru"), ("bahdanau", True, "lstm"), ("dot", False, "gru"),
    ("general", True, "gru"),
])
def test_seq2seq_padding_invisible(attention, bidirectional, cell):
    model = Seq2Seq(vocab_size=10, target_vocab_size=9, hidden_size=6, num_layers=2, cell=cell,
                    bidirectional=bidirectional, attention=attention, max_length=6).eval()
    lengths = torch.tensor([6, 2, 4])
    source = padded_tokens(lengths, 6)
    targets = torch.tensor([[4, 5, 6, 3], [7, 3, 0, 0], [8, 8, 3, IGNORE_INDEX]])
    out = model(source, targets, lengths=lengths)
    greedy = model(source, lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        m = int(((targets[i] != 0) & (targets[i] != IGNORE_INDEX)).sum())
        alone = model(source[i:i + 1, :n], targets[i:i + 1, :m])
        torch.testing.assert_close(out.output[i, :m], alone.output[0], atol=1e-5, rtol=1e-5)
        alone_greedy = model(source[i:i + 1, :n])
        assert greedy.output[i, :alone_greedy.output.shape[1]].tolist() == alone_greedy.output[0].tolist()
        if attention != "none":
            torch.testing.assert_close(out.attention[i, :m, :n], alone.attention[0], atol=1e-6, rtol=1e-5)
            assert torch.all(out.attention[i, :, n:] == 0)
            torch.testing.assert_close(out.attention[i].sum(-1), torch.ones(4))


def test_generator_padding_invisible_and_class_and_image_conditions():
    model = SequenceGenerator(vocab_size=10, condition_size=4, hidden_size=6, cell="lstm", num_layers=2).eval()
    condition = torch.randn(2, 4)
    targets = torch.tensor([[4, 5, 6, 3], [7, 3, 0, 0]])
    out = model(condition, targets)
    alone = model(condition[1:], targets[1:, :2])
    torch.testing.assert_close(out.output[1, :2], alone.output[0], atol=1e-5, rtol=1e-5)
    expected = torch.stack([-torch.log_softmax(out.output[0, t], -1)[targets[0, t]] for t in range(4)]
                           + [-torch.log_softmax(out.output[1, t], -1)[targets[1, t]] for t in range(2)]).mean()
    torch.testing.assert_close(out.loss, expected)
    # the condition sets the state: h_0 = tanh(W c + b)
    h0, c0 = model.initial_state(condition)
    full = torch.tanh(model.bridge(condition)).reshape(2, 2, 2, 6)
    torch.testing.assert_close(h0, full[:, 0].transpose(0, 1))
    torch.testing.assert_close(c0, full[:, 1].transpose(0, 1))
    by_class = SequenceGenerator(vocab_size=10, num_conditions=5, condition_size=4, hidden_size=6)
    assert by_class(torch.tensor([0, 4]), targets).output.shape == (2, 4, 10)
    by_image = SequenceGenerator(vocab_size=10, image_channels=3, condition_size=4, hidden_size=6)
    assert by_image(torch.randn(2, 3, 12, 12), targets).output.shape == (2, 4, 10)


def test_one_to_one_padding_invisible():
    model = OneToOne(input_size=12, hidden_sizes=(8, 8), output_size=3).eval()
    x = torch.randn(2, 4, 3)
    lengths = torch.tensor([4, 2])
    clean = x.clone()
    clean[1, 2:] = 0
    torch.testing.assert_close(model(x, lengths=lengths).output, model(clean).output)


def test_attention_scores_match_formulas():
    q, k = torch.randn(2, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    dot = DotAttention(4, 4)
    general = GeneralAttention(4, 4)
    additive = AdditiveAttention(4, 4, attention_size=5)
    W = general.key_proj.weight  # (query, key)
    for module, score in [
        (dot, lambda b, s: q[b] @ k[b, s]),
        (general, lambda b, s: q[b] @ W @ k[b, s]),
        (additive, lambda b, s: additive.v.weight[0] @ torch.tanh(
            additive.query_proj.weight @ q[b] + additive.key_proj.weight @ k[b, s] + additive.key_proj.bias)),
    ]:
        context, weights = module(q, k, mask)
        for b in range(2):
            valid = [s for s in range(3) if mask[b, s]]
            scores = torch.stack([score(b, s) for s in valid])
            expected = torch.softmax(scores, 0)
            torch.testing.assert_close(weights[b, valid], expected, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(context[b], sum(expected[j] * k[b, s] for j, s in enumerate(valid)),
                                       atol=1e-6, rtol=1e-5)
        assert weights[1, 2] == 0


def test_seq2seq_without_teacher_forcing_feeds_its_own_predictions():
    """teacher_forcing=0 (training mode): the decoder inputs are its own arg-max, i.e. greedy decoding."""
    model = Seq2Seq(vocab_size=10, target_vocab_size=9, hidden_size=8, attention="general", teacher_forcing=0.0)
    source = torch.randint(4, 10, (3, 5))
    targets = torch.randint(4, 9, (3, 6))
    logits = model.train()(source, targets).output
    decoded = greedy_decode(model.eval(), model.encode(source), bos_id=2, eos_id=99, max_length=6)
    assert logits.argmax(-1).tolist() == decoded.tokens.tolist()
    forced = model.train()(source, targets, lengths=None)
    assert forced.loss.requires_grad


# --- errors ---------------------------------------------------------------------------------------


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        SequenceClassifier(cell="transformer")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        SequenceTagger(vocab_size=5, hidden_size=0)
    with pytest.raises(ValueError, match="unknown summary 'first'.*'last'"):
        SequenceClassifier(summary="first")
    with pytest.raises(ValueError, match="attention='dot'.*bidirectional.*'general'"):
        Seq2Seq(attention="dot", bidirectional=True)
    with pytest.raises(ValueError, match=r"eos_id must be a token id in \[0, vocab_size=4\), got 7"):
        SequenceGenerator(vocab_size=4, eos_id=7)
    with pytest.raises(ValueError, match="output_size=0 means 'same as vocab_size'"):
        SequenceTagger(input_size=3, output_size=0)
    with pytest.raises(TypeError, match=r"unknown SequenceTaggerConfig field\(s\) \['hiden_size'\]"):
        SequenceTagger(vocab_size=5, hiden_size=3)


def test_bad_inputs_say_what_was_expected():
    tagger = SequenceTagger(vocab_size=5)
    with pytest.raises(ValueError, match=r"token ids in \[1, 7\] but vocab_size=5; ids must be in \[0, vocab_size\)"):
        tagger(torch.tensor([[1, 7]]))
    with pytest.raises(TypeError, match="expects integer token ids, got torch.float32"):
        tagger(torch.randn(1, 2))
    classifier = SequenceClassifier(input_size=3)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, T, 3\), got \(2, 3\)"):
        classifier(torch.randn(2, 3))
    with pytest.raises(ValueError, match="expects 3 input features"):
        classifier(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"expected targets of shape \(2,\)"):
        classifier(torch.randn(2, 4, 3), torch.zeros(2, 4, dtype=torch.long))


# --- save and load --------------------------------------------------------------------------------

ROUND_TRIP = [
    (OneToOne(input_size=6, hidden_sizes=(5, 4), activation="tanh"), lambda: (torch.randn(2, 6),)),
    (SequenceClassifier(vocab_size=9, cell="lstm", bidirectional=True, summary="attention", hidden_size=5),
     lambda: (torch.randint(0, 9, (2, 4)),)),
    (SequenceTagger(input_size=3, output_size=2, task="regression", num_layers=2, hidden_size=5),
     lambda: (torch.randn(2, 4, 3),)),
    (SequenceGenerator(vocab_size=8, num_conditions=3, hidden_size=5), lambda: (torch.tensor([0, 2]),)),
    (Seq2Seq(vocab_size=9, target_vocab_size=8, attention="bahdanau", hidden_size=5, bidirectional=True),
     lambda: (torch.randint(4, 9, (2, 5)), torch.tensor([[4, 5, 3], [6, 3, 0]]))),
]


@pytest.mark.parametrize("model,make_inputs", ROUND_TRIP, ids=lambda v: type(v).__name__)
def test_save_load_round_trip(model, make_inputs, tmp_path):
    vocab = Vocabulary.build(["abc", "abd"])
    save_model(model, tmp_path, vocab={"source": vocab, "target": vocab})
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    inputs = make_inputs()
    assert torch.equal(model.eval()(*inputs).output, loaded(*inputs).output)
    assert load_vocab(tmp_path) == {"source": vocab, "target": vocab}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["kind"] == type(model).__name__ and config["rnnkit_version"]


@pytest.mark.slow
def test_saved_weights_are_byte_identical_across_processes(tmp_path):
    # Same seed, same bits, down to the file: safetensors orders its metadata map differently in every
    # process, so the check needs separate interpreters (a few tries, as one ordering can repeat by chance).
    import subprocess
    import sys

    script = ("import sys, torch; from rnnkit.models import SequenceTagger, save_model; torch.manual_seed(0); "
              "save_model(SequenceTagger(vocab_size=9, output_size=0, hidden_size=4), sys.argv[1])")
    files = set()
    for attempt in range(5):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / str(attempt))], check=True)
        files.add((tmp_path / str(attempt) / "model.safetensors").read_bytes())
    assert len(files) == 1


def test_load_rejects_bad_directories(tmp_path):
    model = SequenceTagger(vocab_size=6, hidden_size=4)
    with pytest.raises(FileNotFoundError, match="config.json' does not exist"):
        load_model(tmp_path)
    save_model(model, tmp_path, vocab=Vocabulary.build(["ab"]))
    assert load_vocab(tmp_path) == Vocabulary.build(["ab"])
    config_path, weights = tmp_path / "config.json", tmp_path / "model.safetensors"
    good_config, good_weights = config_path.read_text(), weights.read_bytes()

    config_path.write_text("{not json")
    with pytest.raises(ValueError, match="config.json' is not valid JSON"):
        load_model(tmp_path)
    for change, message in [
        ({"kind": "os.system"}, "unknown model kind 'os.system'"),
        ({"format": "pickle"}, "not an rnnkit model config"),
        ({"config": {**json.loads(good_config)["config"], "evil": 1}}, r"unknown SequenceTaggerConfig field\(s\) \['evil'\]"),
        ({"config": {**json.loads(good_config)["config"], "hidden_size": 5}}, "wrong shape"),
        ({"config": {**json.loads(good_config)["config"], "cell": "nope"}}, "invalid config: unknown cell 'nope'"),
        ({"kind": ["SequenceTagger"]}, r"unknown model kind \['SequenceTagger'\]"),
        # 2.4 TB if it were built before the shapes are compared: the check reads the file's header first
        ({"config": {**json.loads(good_config)["config"], "hidden_size": 400_000}}, "wrong shape"),
    ]:
        config_path.write_text(json.dumps({**json.loads(good_config), **change}))
        with pytest.raises(ValueError, match=message):
            load_model(tmp_path)
    config_path.write_text(good_config)

    weights.write_bytes(good_weights[: len(good_weights) // 2])
    with pytest.raises(ValueError, match="model.safetensors' is not a readable safetensors file"):
        load_model(tmp_path)
    import pickle
    weights.write_bytes(pickle.dumps(model.state_dict()))  # a pickle is refused, never unpickled
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(tmp_path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors' does not exist"):
        load_model(tmp_path)
    (tmp_path / "vocab.json").write_text("[]")
    with pytest.raises(ValueError, match="vocab.json'.*not an rnnkit vocabulary"):
        load_vocab(tmp_path)


# --- each pattern learns a small generated task ------------------------------------------------------


def _parity_batch(generator, n=64, steps=8):
    lengths = torch.randint(1, steps + 1, (n,), generator=generator)
    bits = torch.randint(0, 2, (n, steps), generator=generator)
    valid = torch.arange(steps)[None] < lengths[:, None]
    garbage = torch.randint(0, 2, (n, steps), generator=generator)  # padding holds random bits
    inputs = torch.where(valid, bits, garbage).float().unsqueeze(-1)
    return inputs, (bits * valid).sum(1) % 2, {"lengths": lengths}


def test_one_to_one_learns_4bit_parity():
    bits = torch.tensor([[(i >> k) & 1 for k in range(4)] for i in range(16)]).float()
    labels = bits.sum(1).long() % 2
    model = fit(OneToOne(input_size=4, hidden_sizes=(32,), output_size=2), lambda g: (bits, labels, {}), 200)
    assert (model(bits).output.argmax(-1) == labels).float().mean() == 1.0


def test_many_to_one_learns_parity_of_padded_sequences():
    model = fit(SequenceClassifier(input_size=1, hidden_size=32, cell="gru"), _parity_batch, 300)
    inputs, labels, kw = _parity_batch(torch.Generator().manual_seed(99), n=1000)
    logits = model(inputs, **kw).output
    accuracy = (logits.argmax(-1) == labels).float().mean()
    assert accuracy >= 0.98, accuracy
    # The trained model reads nothing past a sequence's length: flipping every padding bit changes no logit.
    padding = torch.arange(inputs.shape[1])[None, :, None] >= kw["lengths"][:, None, None]
    torch.testing.assert_close(model(torch.where(padding, 1 - inputs, inputs), **kw).output, logits)


def test_aligned_many_to_many_learns_shifted_echo():
    def batch(generator, n=32, steps=12):  # y_t = x_{t-2}
        lengths = torch.randint(3, steps + 1, (n,), generator=generator)
        x = torch.randint(4, 10, (n, steps), generator=generator)
        y = torch.full_like(x, IGNORE_INDEX)
        y[:, 2:] = x[:, :-2]
        return x, y, {"lengths": lengths}

    model = fit(SequenceTagger(vocab_size=10, output_size=10, hidden_size=32, embedding_dim=16), batch, 150)
    x, y, kw = batch(torch.Generator().manual_seed(99), n=500)
    valid = (y != IGNORE_INDEX) & (torch.arange(x.shape[1])[None] < kw["lengths"][:, None])
    accuracy = (model(x, **kw).output.argmax(-1) == y)[valid].float().mean()
    assert accuracy >= 0.98, accuracy


def _reversal_batch(generator, n=64, steps=6):
    lengths = torch.randint(2, steps + 1, (n,), generator=generator)
    x = torch.randint(4, 12, (n, steps), generator=generator)
    y = torch.zeros(n, steps + 1, dtype=torch.long)
    for i, length in enumerate(lengths.tolist()):
        y[i, :length] = x[i, :length].flip(0)
        y[i, length] = 3  # EOS
    return x, y, {"lengths": lengths}


@pytest.mark.slow
def test_seq2seq_with_attention_learns_reversal():
    model = fit(Seq2Seq(vocab_size=12, target_vocab_size=12, hidden_size=32, embedding_dim=16,
                        attention="bahdanau"), _reversal_batch, 250)
    x, y, kw = _reversal_batch(torch.Generator().manual_seed(99), n=500)
    decoded = model(x, **kw).output  # greedy, stops at EOS
    exact = [decoded[i, :n + 1].tolist() == y[i, :n + 1].tolist() for i, n in enumerate(kw["lengths"].tolist())]
    assert sum(exact) / len(exact) >= 0.95, sum(exact) / len(exact)


@pytest.mark.slow
def test_one_to_many_learns_vector_to_digit_sequence():
    def batch(generator, n=64, slots=3):  # one-hot digits in up to 3 slots -> those digits, then EOS
        lengths = torch.randint(1, slots + 1, (n,), generator=generator)
        digits = torch.randint(0, 10, (n, slots), generator=generator)
        condition = torch.zeros(n, slots, 10)
        y = torch.zeros(n, slots + 1, dtype=torch.long)
        for i, length in enumerate(lengths.tolist()):
            condition[i, torch.arange(length), digits[i, :length]] = 1
            y[i, :length] = digits[i, :length] + 4
            y[i, length] = 3
        return condition.flatten(1), y, {}

    model = fit(SequenceGenerator(vocab_size=14, condition_size=30, hidden_size=32, embedding_dim=16,
                                  max_length=6), batch, 250)
    condition, y, _ = batch(torch.Generator().manual_seed(99), n=500)
    decoded = model(condition).output
    counts = (y != 0).sum(1).tolist()
    exact = [decoded[i, :n].tolist() == y[i, :n].tolist() for i, n in enumerate(counts)]
    assert sum(exact) / len(exact) >= 0.98, sum(exact) / len(exact)
