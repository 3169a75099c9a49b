"""Greedy and beam search: beam 1 equals greedy, beam search finds the best sequence where greedy does
not (checked against brute-force enumeration), length normalisation, scores and attention consistent
with teacher-forced scoring, EOS and max_length handling."""

import itertools
import math

import pytest
import torch

from rnnkit.models import (
    Seq2Seq, SequenceGenerator, SequenceTagger, beam_search, greedy_decode, length_penalty,
)

BOS, EOS, PAD, A, B = 2, 3, 0, 4, 5


pytestmark = pytest.mark.usefixtures("one_thread")


class MarkovDecoder:
    """A hand-built decoder: p(y_t | y_{t-1}) from a table per batch row; the state is the row's table id."""

    def __init__(self, *tables):
        probs = torch.zeros(len(tables), 6, 6, dtype=torch.float64)
        for k, table in enumerate(tables):
            for previous, row in table.items():
                for token, p in row.items():
                    probs[k, previous, token] = p
        self.probs = probs
        self.log_table = probs.log()  # zero probability -> -inf

    def step(self, tokens, state):
        return self.log_table[state, tokens], state

    def select_state(self, state, index):
        return state.index_select(0, index)

    def log_prob(self, k, sequence):
        previous, total = BOS, 0.0
        for token in sequence:
            total += math.log(self.probs[k, previous, token]) if self.probs[k, previous, token] > 0 else -math.inf
            previous = token
        return total


# Greedy takes A (0.6) and then keeps taking A (0.36 > 0.34 > 0.30) and never ends; the best sequence
# is B EOS (0.4 * 0.9 = 0.36), which a beam of 2 keeps alive.
GREEDY_TRAP = {BOS: {A: 0.6, B: 0.4}, A: {A: 0.36, B: 0.34, EOS: 0.30}, B: {EOS: 0.9, A: 0.05, B: 0.05},
               EOS: {EOS: 1.0}}
# Raw log p prefers the short [EOS] (0.5 > 0.4); strong length normalisation prefers [A, EOS].
SHORT_VS_LONG = {BOS: {EOS: 0.5, A: 0.5}, A: {EOS: 0.8, A: 0.2}, EOS: {EOS: 1.0}}


def brute_force_best(decoder, k, max_length, alpha):
    """Enumerate every complete hypothesis (ends in EOS, or reaches max_length) and rank by GNMT score."""
    best = None
    for length in range(1, max_length + 1):
        for body in itertools.product([A, B, EOS], repeat=length):
            if EOS in body[:-1] or (body[-1] != EOS and length < max_length):
                continue
            log_p = decoder.log_prob(k, body)
            score = log_p / ((5 + length) / 6) ** alpha
            if best is None or score > best[0]:
                best = (score, list(body))
    return best


def test_beam_finds_the_best_sequence_where_greedy_does_not():
    decoder = MarkovDecoder(GREEDY_TRAP)
    state = torch.zeros(1, dtype=torch.int64)
    greedy = greedy_decode(decoder, state, bos_id=BOS, eos_id=EOS, max_length=5, batch_size=1)
    beam = beam_search(decoder, state, beam_size=2, bos_id=BOS, eos_id=EOS, max_length=5, alpha=0.0, batch_size=1)
    score, best = brute_force_best(decoder, 0, 5, alpha=0.0)
    assert best == [B, EOS]
    assert greedy.tokens[0].tolist() == [A] * 5 and greedy.lengths.item() == 5
    assert beam.tokens[0].tolist() == [B, EOS, PAD, PAD, PAD] and beam.lengths.item() == 2
    assert beam.log_probs.item() == pytest.approx(math.log(0.36))
    assert greedy.log_probs.item() == pytest.approx(decoder.log_prob(0, [A] * 5))


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("table", [GREEDY_TRAP, SHORT_VS_LONG], ids=["trap", "short_vs_long"])
def test_exhaustive_beam_equals_brute_force_with_length_normalisation(alpha, table):
    decoder = MarkovDecoder(table)
    result = beam_search(decoder, torch.zeros(1, dtype=torch.int64), beam_size=64, bos_id=BOS, eos_id=EOS,
                         max_length=5, alpha=alpha, batch_size=1)
    score, best = brute_force_best(decoder, 0, 5, alpha)
    assert result.tokens[0, :result.lengths.item()].tolist() == best
    assert result.scores.item() == pytest.approx(score)


def test_banned_tokens_are_never_emitted_and_scores_stay_the_models():
    """With A banned, greedy's trap is gone (B EOS: 0.4 * 0.9) and an exhaustive beam equals brute force
    over the sequences without A, scored with the model's own (not renormalised) probabilities."""
    decoder = MarkovDecoder(GREEDY_TRAP)
    state = torch.zeros(1, dtype=torch.int64)
    greedy = greedy_decode(decoder, state, bos_id=BOS, eos_id=EOS, max_length=5, batch_size=1, banned=(A,))
    assert greedy.tokens[0, :2].tolist() == [B, EOS] and greedy.log_probs.item() == pytest.approx(math.log(0.36))
    beam = beam_search(decoder, state, beam_size=64, bos_id=BOS, eos_id=EOS, max_length=5, alpha=0.0,
                       batch_size=1, banned=(A, B))
    # only EOS is left: BOS -> EOS has probability 0 in the table, so every hypothesis is impossible
    assert A not in beam.tokens[0].tolist() and B not in beam.tokens[0].tolist()
    short = MarkovDecoder(SHORT_VS_LONG)
    result = beam_search(short, state, beam_size=64, bos_id=BOS, eos_id=EOS, max_length=5, alpha=2.0,
                         batch_size=1, banned=(A,))
    assert result.tokens[0, :result.lengths.item()].tolist() == [EOS]  # [A, EOS] wins unbanned (below)
    assert result.log_probs.item() == pytest.approx(math.log(0.5))


def test_length_normalisation_changes_the_winner():
    decoder = MarkovDecoder(SHORT_VS_LONG)
    assert brute_force_best(decoder, 0, 5, 0.0)[1] == [EOS]
    assert brute_force_best(decoder, 0, 5, 2.0)[1] == [A, EOS]
    assert length_penalty(torch.tensor([1, 7, 13]), 0.5).tolist() == pytest.approx([1.0, 2 ** 0.5, 3 ** 0.5])


def test_batches_eos_padding_and_max_length():
    """Row 0 follows the trap table, row 1 ends at once: padded after EOS, one result per row."""
    decoder = MarkovDecoder(GREEDY_TRAP, {BOS: {EOS: 0.7, A: 0.3}, A: {EOS: 1.0}, EOS: {EOS: 1.0}})
    state = torch.tensor([0, 1])
    greedy = greedy_decode(decoder, state, bos_id=BOS, eos_id=EOS, max_length=3, pad_id=PAD, batch_size=2)
    assert greedy.tokens.tolist() == [[A, A, A], [EOS, PAD, PAD]]
    assert greedy.lengths.tolist() == [3, 1]
    beam = beam_search(decoder, state, beam_size=3, bos_id=BOS, eos_id=EOS, max_length=3, alpha=0.0, pad_id=PAD,
                       batch_size=2)
    assert beam.tokens.tolist() == [[B, EOS, PAD], [EOS, PAD, PAD]]
    assert beam.log_probs.tolist() == pytest.approx([math.log(0.36), math.log(0.7)])
    stop_early = greedy_decode(MarkovDecoder(SHORT_VS_LONG), torch.zeros(1, dtype=torch.int64), bos_id=BOS,
                               eos_id=EOS, max_length=10, batch_size=1)
    assert stop_early.tokens.shape == (1, 1)  # stops once every row has emitted EOS


def _models():
    lm = SequenceTagger(vocab_size=12, output_size=0, hidden_size=16, cell="lstm", num_layers=2).eval()
    generator = SequenceGenerator(vocab_size=12, condition_size=5, hidden_size=16).eval()
    seq2seq = Seq2Seq(vocab_size=10, target_vocab_size=12, hidden_size=16, bidirectional=True,
                      attention="bahdanau", cell="gru").eval()
    source, lengths = torch.randint(4, 10, (3, 7)), torch.tensor([7, 3, 5])
    for model in (lm, generator, seq2seq):  # make EOS likely enough that some sequences end early
        with torch.no_grad():
            model.head.bias[EOS] += 2.0
    return [
        ("lm", lm, None, {"batch_size": 3}),
        ("generator", generator, generator.initial_state(torch.randn(3, 5)), {}),
        ("seq2seq", seq2seq, seq2seq.encode(source, lengths), {}),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["lm", "generator", "seq2seq"])
def test_beam_of_one_equals_greedy(index):
    name, model, state, extra = _models()[index]
    greedy = greedy_decode(model, state, bos_id=BOS, eos_id=EOS, max_length=12, **extra)
    beam = beam_search(model, state, beam_size=1, bos_id=BOS, eos_id=EOS, max_length=12, **extra)
    assert torch.equal(beam.tokens, greedy.tokens)
    assert torch.equal(beam.lengths, greedy.lengths)
    torch.testing.assert_close(beam.log_probs, greedy.log_probs)
    if name == "seq2seq":
        torch.testing.assert_close(beam.attention, greedy.attention)
    assert (greedy.lengths < 12).any()  # EOS handling is exercised


def test_beam_scores_and_attention_match_teacher_forced_scoring():
    """The returned log p(Y), lp-normalised score and attention agree with re-scoring Y by teacher forcing."""
    name, model, state, _ = _models()[2]
    source, lengths = torch.randint(4, 10, (3, 7)), torch.tensor([7, 3, 5])
    state = model.encode(source, lengths)
    result = beam_search(model, state, beam_size=4, bos_id=BOS, eos_id=EOS, max_length=12, alpha=0.7)
    forced = model(source, result.tokens, lengths=lengths)
    log_probs = torch.log_softmax(forced.output.double(), -1)
    for i, n in enumerate(result.lengths.tolist()):
        expected = sum(log_probs[i, t, result.tokens[i, t]] for t in range(n))
        assert result.log_probs[i].item() == pytest.approx(expected.item(), abs=1e-5)
        assert result.scores[i].item() == pytest.approx(expected.item() / ((5 + n) / 6) ** 0.7, abs=1e-5)
        torch.testing.assert_close(result.attention[i, :n], forced.attention[i, :n], atol=1e-5, rtol=1e-5)


def test_decoding_argument_errors():
    decoder = MarkovDecoder(GREEDY_TRAP)
    state = torch.zeros(1, dtype=torch.int64)
    with pytest.raises(ValueError, match="beam_size must be a positive integer, got 0"):
        beam_search(decoder, state, beam_size=0, bos_id=BOS, eos_id=EOS, max_length=3, batch_size=1)
    with pytest.raises(ValueError, match="alpha must be a number >= 0, got -1"):
        beam_search(decoder, state, beam_size=2, bos_id=BOS, eos_id=EOS, max_length=3, alpha=-1, batch_size=1)
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        greedy_decode(decoder, state, bos_id=BOS, eos_id=EOS, max_length=0, batch_size=1)
    with pytest.raises(ValueError, match="pass batch_size="):
        greedy_decode(decoder, None, bos_id=BOS, eos_id=EOS, max_length=3)
