"""Sampling: filters against a plain-Python oracle, empirical frequencies, seeds, temperature -> 0 is
greedy, streaming runs the prefix once and carries the state."""

import math

import pytest
import torch

from rnnkit.models import Seq2Seq, SequenceGenerator, SequenceTagger, greedy_decode
from rnnkit.sampling import filter_logits, generate, sample_next, stream

BOS, EOS = 2, 3


pytestmark = pytest.mark.usefixtures("one_thread")


def oracle_filter(row, temperature, top_k, top_p):
    """The kept token set, computed with sorted Python lists: top-k, then top-p renormalised over it."""
    z = [v / temperature for v in row]
    order = sorted(range(len(z)), key=lambda i: -z[i])
    kept = set(order[:top_k] if top_k else order)
    if top_p is not None:
        order = [i for i in order if i in kept]
        total = sum(math.exp(z[i]) for i in order)
        mass, nucleus = 0.0, set()
        for i in order:
            if mass >= top_p:
                break
            nucleus.add(i)
            mass += math.exp(z[i]) / total
        kept &= nucleus
    return kept


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 3, None), (0.5, None, 0.7), (2.0, 4, 0.9),
                                                     (1.0, None, 0.01), (1.0, 100, 1.0)])
def test_filter_logits_matches_oracle(temperature, top_k, top_p):
    logits = torch.randn(5, 8, dtype=torch.float64) * 2
    filtered = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    for row, out in zip(logits.tolist(), filtered):
        kept = oracle_filter(row, temperature, top_k, top_p)
        assert {i for i in range(8) if out[i] > -math.inf} == kept
        for i in kept:
            assert out[i].item() == pytest.approx(row[i] / temperature)


def test_sample_frequencies_follow_the_filtered_distribution():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, 3.0], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(40000, 6), temperature=0.8, top_k=4, generator=generator)
    expected = filter_logits(logits, temperature=0.8, top_k=4).softmax(-1)
    frequencies = torch.bincount(draws, minlength=6).double() / 40000
    torch.testing.assert_close(frequencies, expected, atol=0.01, rtol=0)
    assert frequencies[3] == 0 and frequencies[4] == 0


def _lm():
    lm = SequenceTagger(vocab_size=12, output_size=0, hidden_size=16, cell="lstm", num_layers=2).eval()
    with torch.no_grad():
        lm.head.weight.mul_(4)  # a peaked distribution, so greedy and sampling differ visibly
    return lm


def test_same_seed_same_tokens_other_seed_other_tokens():
    lm = _lm()
    first = list(stream(lm, [BOS, 5], max_new_tokens=30, seed=7, top_p=0.95))
    assert first == list(stream(lm, [BOS, 5], max_new_tokens=30, seed=7, top_p=0.95))
    assert first != list(stream(lm, [BOS, 5], max_new_tokens=30, seed=8, top_p=0.95))
    assert len(first) == 30 and all(isinstance(t, int) for t in first)


@pytest.mark.parametrize("temperature", [0.0, 1e-6])
def test_temperature_to_zero_is_greedy(temperature):
    lm = _lm()
    greedy = greedy_decode(lm, None, bos_id=BOS, eos_id=EOS, max_length=15, batch_size=4)
    sampled = torch.stack(list(stream(lm, torch.full((4, 1), BOS), max_new_tokens=15, temperature=temperature,
                                      seed=3, eos_id=EOS)), 1)
    assert sampled.tolist() == greedy.tokens.tolist()

    generator = SequenceGenerator(vocab_size=12, condition_size=3, hidden_size=8).eval()
    state = generator.initial_state(torch.randn(2, 3))
    greedy = greedy_decode(generator, state, bos_id=BOS, eos_id=EOS, max_length=10)
    sampled = generate(generator, torch.full((2, 1), BOS), state=state, max_new_tokens=10,
                       temperature=temperature, eos_id=EOS)
    assert sampled[:, 1:].tolist() == greedy.tokens.tolist()

    seq2seq = Seq2Seq(vocab_size=9, target_vocab_size=12, hidden_size=8, attention="dot").eval()
    memory = seq2seq.encode(torch.randint(4, 9, (2, 5)), [5, 2])
    greedy = greedy_decode(seq2seq, memory, bos_id=BOS, eos_id=EOS, max_length=10)
    sampled = generate(seq2seq, torch.full((2, 1), BOS), state=memory, max_new_tokens=10,
                       temperature=temperature, eos_id=EOS)
    assert sampled[:, 1:].tolist() == greedy.tokens.tolist()


class Counting:
    """Wraps a model and records how many positions each call runs."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def parameters(self):
        return self.model.parameters()

    def prime(self, tokens, state):
        self.calls.append(("prime", tokens.shape[1]))
        return self.model.prime(tokens, state)

    def step(self, tokens, state):
        self.calls.append(("step", 1))
        return self.model.step(tokens, state)


def test_stream_runs_the_prefix_once_and_carries_the_state():
    lm = _lm()
    prefix = [BOS, 5, 6, 7, 8, 9, 10]
    counting = Counting(lm)
    tokens = stream(counting, prefix, max_new_tokens=6, seed=1)
    emitted = list(tokens)
    assert counting.calls == [("prime", 7)] + [("step", 1)] * 5  # the prefix never runs again
    # the carried state is the state after the prefix and all yielded tokens but the last
    whole = lm(torch.tensor([prefix + emitted[:-1]]))
    for carried, expected in zip(tokens.state, whole.state):
        torch.testing.assert_close(carried, expected, atol=1e-5, rtol=1e-5)
    # continuing from the carried state equals priming from scratch on everything
    more = stream(lm, [emitted[-1]], state=tokens.state, max_new_tokens=4, temperature=0)
    scratch = stream(lm, prefix + emitted, max_new_tokens=4, temperature=0)
    assert list(more) == list(scratch)


def test_eos_stops_rows_and_pads_finished_ones():
    lm = _lm()
    with torch.no_grad():
        lm.head.bias[EOS] += 3.0
    rows = list(stream(lm, torch.full((6, 1), BOS), max_new_tokens=40, seed=0, eos_id=EOS, pad_id=0))
    sampled = torch.stack(rows, 1)
    assert len(rows) < 40  # stopped once every row had ended
    for row in sampled.tolist():
        end = row.index(EOS)
        assert all(t == 0 for t in row[end + 1:]) and EOS not in row[:end]
    assert (sampled[:, -1] == EOS).any()


def test_generate_returns_prefix_and_continuation():
    lm = _lm()
    out = generate(lm, [BOS, 4], max_new_tokens=5, seed=2)
    assert out[:2] == [BOS, 4] and len(out) == 7
    assert out[2:] == list(stream(lm, [BOS, 4], max_new_tokens=5, seed=2))
    batched = generate(lm, torch.tensor([[BOS, 4], [BOS, 5]]), max_new_tokens=3, seed=2)
    assert batched.shape == (2, 5)


def test_sampling_argument_errors():
    lm = _lm()
    with pytest.raises(ValueError, match="temperature must be a number >= 0 .*got -1"):
        sample_next(torch.zeros(1, 3), temperature=-1)
    with pytest.raises(ValueError, match="top_k must be None or an integer >= 1, got 0"):
        filter_logits(torch.zeros(3), top_k=0)
    with pytest.raises(ValueError, match=r"top_p must be None or a number in \(0, 1\], got 1.5"):
        filter_logits(torch.zeros(3), top_p=1.5)
    with pytest.raises(ValueError, match="needs at least one token.*BOS"):
        stream(lm, [])
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 0"):
        stream(lm, [BOS], max_new_tokens=-2)


def test_suppressed_tokens_are_never_drawn_and_the_rest_keep_their_odds():
    lm = _lm()
    with torch.no_grad():
        lm.head.bias[[0, 1]] += 20.0  # tokens 0 and 1 would win almost every draw
    rows = torch.stack(list(stream(lm, torch.full((64, 1), BOS), max_new_tokens=20, seed=0, suppress=[0, 1])), 1)
    assert not torch.isin(rows, torch.tensor([0, 1])).any()
    # greedy with suppression is the arg-max over the remaining tokens, step by step
    greedy = list(stream(lm, [BOS], max_new_tokens=8, temperature=0, suppress=[0, 1]))
    state, token = None, torch.tensor([[BOS]])
    for expected in greedy:
        logits, state = lm.prime(token, state) if state is None else lm.step(token.view(1), state)
        assert int(logits[0, 2:].argmax()) + 2 == expected
        token = torch.tensor([[expected]])
    with pytest.raises(ValueError, match="suppress must be token ids"):
        stream(lm, [BOS], suppress=[-1])
