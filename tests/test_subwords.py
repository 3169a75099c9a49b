"""Words and their characters together: fastText's hashed character n-grams (rnnkit.data.subwords), the
classifier's ``subword_buckets`` (e_w + mean of the n-gram vectors, written out here) and ``classify``'s
``--subword-buckets``, which lets a model read words it never saw in training."""

import json
import random
import zlib

import pytest
import torch

from rnnkit.data.subwords import MOST_PER_WORD, SubwordEncoder, char_ngrams, pad_subwords, subword_ids
from rnnkit.models import SequenceClassifier, load_model, save_model


def test_char_ngrams_follow_fasttext_with_boundary_marks():
    # The paper's example (Bojanowski et al. 2017, section 3.2): "where" with n = 3.
    assert char_ngrams("where", 3, 3) == ["<wh", "whe", "her", "ere", "re>"]
    assert char_ngrams("where") == ["<wh", "whe", "her", "ere", "re>", "<whe", "wher", "here", "ere>",
                                    "<wher", "where", "here>", "<where", "where>"]
    assert char_ngrams("a") == ["<a>"]  # a one-letter word still has one
    assert char_ngrams("aaaa", 3, 3) == ["<aa", "aaa", "aa>"]  # distinct only
    assert len(char_ngrams("x" * 500)) <= MOST_PER_WORD and len(char_ngrams("abcdefghijklmnopqrstuvwxyz" * 20)) == 64
    with pytest.raises(ValueError, match="non-empty"):
        char_ngrams("")


def test_bucket_ids_are_crc32_and_frozen():
    # Frozen: a saved model's n-gram vectors are only meaningful if every machine hashes alike.
    grams = ["<wh", "whe", "her", "ere", "re>"]
    assert subword_ids("where", 1000)[:5] == [1 + zlib.crc32(g.encode()) % 1000 for g in grams]
    assert subword_ids("where", 2_000_000)[:3] == [1915070, 438208, 408185]
    assert subword_ids("café", 50)[-1] == 1 + zlib.crc32("<café>".encode("utf-8")) % 50
    assert all(1 <= i <= 7 for i in subword_ids("ineffective", 7))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="buckets must be a positive integer"):
            subword_ids("x", bad)
    encoder = SubwordEncoder(100)
    assert encoder(["great", "great", "greatest"]) == [subword_ids("great", 100)] * 2 + [subword_ids("greatest", 100)]


def test_pad_subwords_pads_words_and_texts_with_zero():
    padded = pad_subwords([[[5, 6, 7], [8]], [[9]]])
    assert padded.dtype == torch.int64 and padded.tolist() == [[[5, 6, 7], [8, 0, 0]], [[9, 0, 0], [0, 0, 0]]]
    assert pad_subwords([[[1]], [[]]], steps=3).shape == (2, 3, 1)
    with pytest.raises(ValueError, match="at least one text"):
        pad_subwords([])


def _batch():
    inputs, lengths = torch.tensor([[4, 5, 1], [6, 1, 0]]), torch.tensor([3, 2])
    subwords = torch.tensor([[[1, 2, 3], [4, 0, 0], [5, 6, 0]], [[7, 7, 2], [0, 0, 0], [0, 0, 0]]])
    return inputs, lengths, subwords


def test_each_step_reads_the_word_vector_plus_the_mean_of_its_ngram_vectors():
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=8, embedding_dim=5, hidden_size=4, subword_buckets=9, bidirectional=True,
                               summary="max_mean", output_size=3, bag_of_tokens=True).double().eval()
    inputs, lengths, subwords = _batch()
    words, grams = model.encoder.embedding.weight, model.subwords.bag.weight
    x = torch.zeros(2, 3, 5, dtype=torch.float64)
    for b in range(2):
        for t in range(3):
            ids = [int(i) for i in subwords[b, t] if i > 0]
            x[b, t] = words[inputs[b, t]] + (sum(grams[i] for i in ids) / len(ids) if ids else 0)
    outputs, state = model.encoder.rnn(x, lengths=lengths)
    mask = torch.arange(3)[None] < lengths[:, None]
    summary, _ = model.summarize(outputs, state, mask)
    bag = (x * mask[..., None]).sum(1) / lengths[:, None]
    want = model.head(torch.cat([summary, bag], -1))
    got = model(inputs, lengths=lengths, subwords=subwords).output
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # The n-gram vectors are trained: they get gradient exactly where a bucket was used.
    model.train()
    model(inputs, torch.tensor([0, 2]), lengths=lengths, subwords=subwords).loss.backward()
    used = model.subwords.bag.weight.grad.abs().sum(1) > 0
    assert used.tolist() == [i in {1, 2, 3, 4, 5, 6, 7} for i in range(10)]


def test_gradcheck_through_the_subword_mean():
    torch.manual_seed(1)
    model = SequenceClassifier(vocab_size=8, embedding_dim=3, hidden_size=2, subword_buckets=9,
                               output_size=2).double().eval()
    inputs, lengths, subwords = _batch()
    weight = model.subwords.bag.weight.detach().clone().requires_grad_()

    def through(grams):
        return torch.func.functional_call(model, {"subwords.bag.weight": grams},
                                          (inputs,), {"lengths": lengths, "subwords": subwords}).output

    assert torch.autograd.gradcheck(through, (weight,))


def test_the_model_names_what_is_missing_or_wrong(tmp_path):
    spelled = SequenceClassifier(vocab_size=8, hidden_size=4, subword_buckets=9, output_size=2)
    plain = SequenceClassifier(vocab_size=8, hidden_size=4, output_size=2)
    inputs, lengths, subwords = _batch()
    with pytest.raises(ValueError, match="subword_buckets=9 and needs subwords"):
        spelled(inputs, lengths=lengths)
    with pytest.raises(ValueError, match="got subwords but has subword_buckets=0"):
        plain(inputs, lengths=lengths, subwords=subwords)
    with pytest.raises(ValueError, match=r"subwords of shape \(2, 3, grams\)"):
        spelled(inputs, lengths=lengths, subwords=subwords[:, :2])
    with pytest.raises(ValueError, match=r"subword ids in \[0, 12\] but subword_buckets=9"):
        spelled(inputs, lengths=lengths, subwords=subwords.masked_fill(subwords == 7, 12))
    with pytest.raises(ValueError, match="subword_buckets needs word inputs"):
        SequenceClassifier(input_size=3, subword_buckets=4)
    with pytest.raises(ValueError, match="subword_buckets must be an integer >= 0"):
        SequenceClassifier(vocab_size=8, subword_buckets=-1)
    save_model(spelled, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    torch.testing.assert_close(loaded.eval()(inputs, lengths=lengths, subwords=subwords).output,
                               spelled.eval()(inputs, lengths=lengths, subwords=subwords).output)


def test_word_dropout_turns_words_into_unk_while_training_only():
    model = SequenceClassifier(vocab_size=50, hidden_size=4, word_dropout=0.3, output_size=2)
    seen = []
    model.encoder.embedding.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    inputs = torch.randint(4, 50, (64, 100))
    inputs[:, :3] = torch.tensor([0, 2, 3])  # <pad>, <bos>, <eos> are never replaced
    torch.manual_seed(5)
    model.train()(inputs, lengths=torch.full((64,), 100))
    dropped = seen[-1] != inputs
    assert bool((seen[-1][dropped] == 1).all()) and not bool(dropped[:, :3].any())
    assert abs(dropped[:, 3:].float().mean().item() - 0.3) < 0.02
    torch.manual_seed(5)
    model(inputs, lengths=torch.full((64,), 100))
    assert torch.equal(seen[-1], seen[-2])  # same seed, same words dropped
    model.eval()(inputs, lengths=torch.full((64,), 100))
    assert torch.equal(seen[-1], inputs)
    with pytest.raises(ValueError, match="word_dropout must be a probability"):
        SequenceClassifier(vocab_size=5, word_dropout=1.0)
    with pytest.raises(ValueError, match="word_dropout needs token inputs"):
        SequenceClassifier(input_size=2, word_dropout=0.1)


# ----------------------------------------------------------------------------------------------- the app
STEMS_POSITIVE, STEMS_NEGATIVE = ["delight", "wonder", "brillian", "enjoy"], ["disgust", "horrib", "dread", "annoy"]
FILLER = "the a movie film this it was is and plot acting story really very quite".split()


def _rows(path, rows, seed, suffixes):
    rng = random.Random(seed)
    lines = ["text,label"]
    for _ in range(rows):
        label = rng.choice(["pos", "neg"])
        stem = rng.choice(STEMS_POSITIVE if label == "pos" else STEMS_NEGATIVE)
        words = rng.choices(FILLER, k=5) + [stem + rng.choice(suffixes)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_classify_reads_words_it_never_saw_through_their_spelling(tmp_path):
    """Training names each sentiment word in two forms; the test rows only in forms never seen (so ``<unk>``
    to a words-only model). With their character n-grams, and word dropout to make it rely on them, the model
    still knows what they mean."""
    from rnnkit.apps import classify
    from rnnkit.cli.main import main

    train = _rows(tmp_path / "train.csv", 160, 0, ["ed", "ing"])
    test = _rows(tmp_path / "test.csv", 200, 1, ["ful", "s", "ly"])
    accuracy = {}
    for name, extra in (("words", []), ("spelled", ["--subword-buckets", "500"])):
        run = tmp_path / name
        assert main(["classify", "train", "--data", str(train), "--out", str(run), "--max-steps", "150",
                     "--word-dropout", "0.5",
                     "--lr", "5e-3", "--hidden-size", "16", "--embedding-dim", "16", "--batch-size", "16",
                     "--eval-every", "50", "--dropout", "0.1", "--test-fraction", "0.1", "--quiet", *extra]) == 0
        accuracy[name] = classify.evaluate(run, data=str(test))["accuracy"]
    assert accuracy["spelled"] >= 0.8 and accuracy["words"] <= 0.65, accuracy  # measured 0.86 and 0.51
    saved = json.loads((tmp_path / "spelled" / "app.json").read_text())
    assert saved["settings"]["model"]["subword_buckets"] == 500
    # predict and the served page go through the same spelling.
    answer = classify.predict(tmp_path / "spelled", ["a delightful film", "the horribly acting"])
    assert [a["label"] for a in answer] == ["pos", "neg"]
    from rnnkit.serve import load_handler

    served = load_handler(tmp_path / "spelled").predict({"text": "a delightful film"})
    assert served["probabilities"] == pytest.approx(answer[0]["probabilities"], abs=1e-6)


def test_char_level_with_subwords_is_refused_in_one_line(cli_error, tmp_path):
    data = _rows(tmp_path / "d.csv", 20, 0, ["ed"])
    err = cli_error(["classify", "train", "--data", str(data), "--out", str(tmp_path / "x"), "--level", "char",
                     "--subword-buckets", "100", "--max-steps", "2"])
    assert "--subword-buckets" in err and "--level word" in err
    assert not (tmp_path / "x").exists()
