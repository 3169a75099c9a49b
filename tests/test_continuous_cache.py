"""The continuous cache (Grave et al., 2017): a fixed language model copying from the text it has just read,
against the paper's equations written out position by position."""

import json
import math

import pytest
import torch

from app_support import train_text_with_an_unseen_phrase
from rnnkit.cli.main import main
from rnnkit.data import StreamBatches
from rnnkit.models import ContinuousCache, SequenceTagger
from rnnkit.train import cache_evaluation_loss, evaluate_loss


def _model(cell="lstm"):
    torch.manual_seed(0)
    return SequenceTagger(vocab_size=5, output_size=0, cell=cell, hidden_size=6, embedding_dim=4,
                          num_layers=2).double().eval()


def _tokens(seed=1, n=61):
    return torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(seed))


def _written_out(model, documents, size, theta, mix):
    """(sum of -log p, count) with p = (1 - mix) p_model + mix sum_i 1[x_{i+1} = w] softmax_i(theta h_t . h_i)
    over the last `size` positions i < t of the same document; a document's first position is the model's."""
    total, count = 0.0, 0
    for inputs, targets in documents:
        with torch.no_grad():
            features = model.encoder(inputs.unsqueeze(0), None, None)[0][0]  # the whole document in one call
            p_model = torch.softmax(model.head(features), dim=-1)
        for t in range(len(targets)):
            p = p_model[t, targets[t]].item()
            memory = range(max(0, t - size), t)
            if memory:
                scores = [theta * float(features[t] @ features[i]) for i in memory]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                cached = sum(w for w, i in zip(weights, memory) if targets[i] == targets[t]) / sum(weights)
                p = (1 - mix) * p + mix * cached
            total -= math.log(p)
            count += 1
    return total, count


@pytest.mark.parametrize("cell,size,theta,mix,chunk", [("lstm", 9, 0.7, 0.3, 6), ("lstm", 100, 0.2, 0.5, 8),
                                                       ("gru", 3, 2.0, 0.1, 5), ("ln_lstm", 9, 0.7, 0.3, 6)])
def test_one_lane_follows_the_equations_across_chunk_boundaries(cell, size, theta, mix, chunk):
    model, tokens = _model(cell), _tokens()
    total, count = _written_out(model, [(tokens[:-1], tokens[1:])], size, theta, mix)
    got = cache_evaluation_loss(model, StreamBatches(tokens, 1, chunk), size=size, theta=theta, mix=mix)
    assert got == pytest.approx(total / count, rel=1e-10)
    assert abs(got - evaluate_loss(model, StreamBatches(tokens, 1, chunk))) > 1e-3


def test_each_lane_remembers_only_its_own_text():
    model, tokens = _model(), _tokens(n=64)
    lanes, per_lane = 3, 63 // 3
    parts = [(tokens[k * per_lane:(k + 1) * per_lane], tokens[k * per_lane + 1:(k + 1) * per_lane + 1])
             for k in range(lanes)]
    total, count = _written_out(model, parts, 7, 0.5, 0.4)
    got = cache_evaluation_loss(model, StreamBatches(tokens, lanes, 5), size=7, theta=0.5, mix=0.4)
    assert got == pytest.approx(total / count, rel=1e-10)


def test_lanes_that_start_documents_at_different_batches_each_empty_only_their_own_memory():
    model = _model()
    a, b, d, c = _tokens(1, 9), _tokens(2, 13), _tokens(3, 13), _tokens(4, 9)
    # 40 next-token pairs in 2 lanes of 20: lane 0 holds a (8 pairs, 2 chunks of 5) then b (12, 3 chunks), lane 1
    # holds d (12) then c (8), so the lanes start their second document at batches 2 and 3, each with a padded chunk.
    total, count = _written_out(model, [(x[:-1], x[1:]) for x in (a, b, d, c)], 6, 0.5, 0.4)
    got = cache_evaluation_loss(model, StreamBatches([a, b, d, c], 2, 5), size=6, theta=0.5, mix=0.4)
    assert got == pytest.approx(total / count, rel=1e-10)


def test_a_float32_model_is_scored_as_written_out():
    model, tokens = _model().float(), _tokens()
    total, count = _written_out(model, [(tokens[:-1], tokens[1:])], 9, 0.7, 0.3)
    got = cache_evaluation_loss(model, StreamBatches(tokens, 1, 6), size=9, theta=0.7, mix=0.3)
    assert got == pytest.approx(total / count, rel=1e-5)


def test_a_new_document_starts_with_an_empty_memory():
    model, first, second = _model(), _tokens(1, 23), _tokens(2, 30)
    total, count = _written_out(model, [(first[:-1], first[1:]), (second[:-1], second[1:])], 50, 0.5, 0.4)
    got = cache_evaluation_loss(model, StreamBatches([first, second], 1, 8), size=50, theta=0.5, mix=0.4)
    assert got == pytest.approx(total / count, rel=1e-10)  # the shorter last chunk's padding is not remembered


def test_without_its_share_it_is_the_model_and_the_mode_comes_back():
    model, tokens = _model(), _tokens()
    model.train()
    static = evaluate_loss(model, StreamBatches(tokens, 2, 8))
    assert cache_evaluation_loss(model, StreamBatches(tokens, 2, 8), size=20, theta=1.0, mix=0.0) == \
        pytest.approx(static, rel=1e-7)  # evaluate_loss reports the loss in float32
    assert model.training


def test_a_memory_of_one_position_copies_the_previous_next_token():
    cache = ContinuousCache(size=1, theta=3.0)
    targets = torch.tensor([[1, 1, 2, 2, 2, 0, 1]])
    probability, seen = cache(torch.randn(1, 4, 3), targets[:, :4])
    later, _ = cache(torch.randn(1, 3, 3), targets[:, 4:])
    assert seen.tolist() == [[False, True, True, True]]
    assert torch.cat([probability, later], 1).tolist() == [[0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]]


def test_padding_is_neither_scored_nor_remembered():
    cache = ContinuousCache(size=10, theta=1.0)
    features = torch.ones(1, 4, 2)
    probability, seen = cache(features, torch.tensor([[3, -100, -100, 3]]))
    assert seen.tolist() == [[False, False, False, True]] and probability[0, 3] == 1.0


@pytest.mark.parametrize("size,theta,mix,message", [
    (0, 1.0, 0.5, "integer size >= 1"), (2.5, 1.0, 0.5, "integer size >= 1"), (4, float("nan"), 0.5, "finite theta"),
    (4, float("inf"), 0.5, "finite theta"), (4, -1.0, 0.5, "finite theta"), (4, 1.0, 1.5, r"mix must be in \[0, 1\]"),
])
def test_bad_settings_are_refused(size, theta, mix, message):
    with pytest.raises(ValueError, match=message):
        ContinuousCache(size=size, theta=theta, mix=mix)


def test_scoring_with_the_cache_alone_and_models_without_a_head_are_refused():
    model, tokens = _model(), _tokens()
    with pytest.raises(ValueError, match="below 1 for scoring"):
        cache_evaluation_loss(model, StreamBatches(tokens, 1, 8), size=4, theta=1.0, mix=1.0)
    with pytest.raises(TypeError, match="no `head` layer"):
        cache_evaluation_loss(model.encoder, StreamBatches(tokens, 1, 8), size=4, theta=1.0, mix=0.2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_text_with_an_unseen_phrase(tmp_path_factory.mktemp("cache"))


def test_cli_cache_copies_the_unseen_phrase_it_has_read(run, capsys):
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--batch-size", "1"]) == 0
    static = json.loads(capsys.readouterr().out)
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--cache-size", "200", "--cache-theta", "0.5",
                 "--cache-mix", "0.5"]) == 0
    cached = json.loads(capsys.readouterr().out)
    assert cached["tokens"] == static["tokens"] and cached["cache_size"] == 200 and cached["cache_mix"] == 0.5
    assert cached["val_nats_per_char"] < static["val_nats_per_char"] - 0.2


@pytest.mark.parametrize("flags,message", [
    (["--cache-size", "0"], "--cache-size must be >= 1"),
    (["--cache-size", "8", "--cache-theta", "-1"], "--cache-theta must be a number >= 0"),
    (["--cache-size", "8", "--cache-mix", "1.5"], "--cache-mix must be in [0, 1]"),
    (["--cache-size", "8", "--cache-mix", "1"], "--cache-mix must be below 1 when scoring"),
    (["--cache-size", "8", "--cache-theta", "inf"], "--cache-theta must be a number >= 0"),
    (["--cache-mix", "0.5"], "only apply with --cache-size"),
    (["--cache-size", "8", "--dynamic-lr", "0.1"], "choose one"),
])
def test_bad_cache_options_are_one_line_and_exit_2(run, capsys, flags, message):
    assert main(["textgen", "evaluate", "--json", "--run", str(run), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_reading_one_position_at_a_time_gives_what_a_chunk_gives():
    features, targets = torch.randn(2, 12, 3, dtype=torch.float64), torch.randint(0, 4, (2, 12))
    whole, _ = ContinuousCache(size=5, theta=0.8)(features, targets)
    cache, stepped = ContinuousCache(size=5, theta=0.8), []
    for t in range(12):
        distribution, _ = cache.distribution(features[:, t], 4)
        assert torch.allclose(distribution.sum(-1), torch.tensor([0.0 if t == 0 else 1.0] * 2, dtype=torch.float64))
        stepped.append(distribution.gather(1, targets[:, t:t + 1]))
        cache.remember(features[:, t:t + 1], targets[:, t:t + 1])
    assert torch.allclose(torch.cat(stepped, 1), whole, atol=1e-12)


def _written_out_distribution(model, tokens, t, size, theta, mix):
    """p(. | x_0..x_t) over the vocabulary: the mixture above, for every candidate next token at once."""
    with torch.no_grad():
        features = model.encoder(torch.tensor([tokens]), None, None)[0][0]
        p = torch.softmax(model.head(features[t]), dim=-1)
    memory = range(max(0, t - size), t)
    if not memory:
        return p
    weights = torch.softmax(torch.stack([theta * features[t] @ features[i] for i in memory]), dim=0)
    cached = torch.zeros_like(p)
    for w, i in zip(weights, memory):
        cached[tokens[i + 1]] += w
    return (1 - mix) * p + mix * cached


def test_sampling_reads_the_mixture_of_what_it_has_fed_so_far():
    from rnnkit.sampling import WithCache

    model, text = _model(), [1, 4, 2, 3, 0, 4, 1, 2, 2, 3]
    sampler = WithCache(model, size=4, theta=0.8, mix=0.6)
    for repeat in range(2):  # a second prime starts a new text: nothing of the first is remembered
        log_p, state = sampler.prime(torch.tensor([text[:3]]))
        for t in range(2, len(text)):
            expected = _written_out_distribution(model, text, t, 4, 0.8, 0.6)
            assert torch.allclose(log_p[0].exp(), expected, atol=1e-12), (repeat, t)
            if t + 1 < len(text):
                log_p, state = sampler.step(torch.tensor([text[t + 1]]), state)


def test_sampling_with_a_cache_of_one_position_repeats_the_last_token():
    from rnnkit.sampling import WithCache, stream

    model = _model().float()
    copying = WithCache(model, size=1, theta=1.0, mix=1.0)  # p = 1 on what followed the previous position
    assert list(stream(copying, [1, 4, 2], max_new_tokens=6, seed=0)) == [2] * 6
    plain = list(stream(model, [1, 4, 2], max_new_tokens=20, seed=3))
    assert list(stream(WithCache(model, size=50, theta=1.0, mix=0.0), [1, 4, 2], max_new_tokens=20, seed=3)) == plain


def test_cli_sample_with_a_cache(run, capsys):
    assert main(["textgen", "sample", "--run", str(run), "--prime", "zebra quokka", "--length", "40", "--seed", "1",
                 "--cache-size", "500", "--cache-theta", "0.5", "--cache-mix", "0.9", "--temperature", "0.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("zebra quokka") and len(out.strip()) == len("zebra quokka") + 40
    assert main(["textgen", "sample", "--run", str(run), "--prime", "ab", "--cache-mix", "0.5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "only apply with --cache-size" in captured.err  # nothing printed before the error
