"""The CTC task model, its decoders and error rates, against independent oracles: every alignment of a tiny
input enumerated by brute force, hand-counted edit distances, and torch's own layers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rnnkit.models import load_model, save_model
from rnnkit.models.ctc import (
    BLANK, CTCRecognizer, beam_decode, ctc_loss, edit_distance, error_rate, frames_needed, greedy_decode,
    prefix_beam_search, text_error_rates,
)


def _collapse(path):
    out, previous = [], None
    for c in path:
        if c != previous and c != BLANK:
            out.append(c)
        previous = c
    return tuple(out)


def _brute_force(log_probs: torch.Tensor) -> dict[tuple, float]:
    """p(labels | x) for every labelling, by summing over all C^T frame paths."""
    steps, classes = log_probs.shape
    probs = log_probs.double().exp()
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(classes), repeat=steps):
        p = math.prod(float(probs[t, c]) for t, c in enumerate(path))
        totals[_collapse(path)] = totals.get(_collapse(path), 0.0) + p
    return totals


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return torch.log_softmax(torch.randn(5, 3, dtype=torch.float64) * 2, -1)


def test_ctc_loss_is_minus_log_of_the_sum_over_all_alignments(tiny):
    exact = _brute_force(tiny)
    for labels in [(1,), (1, 2), (2, 2), (1, 2, 1), (2, 1, 1)]:
        loss = ctc_loss(tiny.float()[None], torch.tensor([5]), torch.tensor([list(labels)]))
        assert float(loss) == pytest.approx(-math.log(exact[labels]) / len(labels), rel=1e-4)


def test_batched_loss_is_summed_nll_over_label_count(tiny):
    exact = _brute_force(tiny)
    log_probs = tiny.float()[None].repeat(2, 1, 1)
    targets = torch.tensor([[1, 2, 1], [2, -100, -100]])
    expected = (-math.log(exact[(1, 2, 1)]) - math.log(exact[(2,)])) / 4
    assert float(ctc_loss(log_probs, torch.tensor([5, 5]), targets)) == pytest.approx(expected, rel=1e-4)


def test_prefix_beam_search_with_a_full_beam_is_exact(tiny):
    exact = _brute_force(tiny)
    found = prefix_beam_search(tiny, beam_size=10_000)
    assert {tuple(labels) for labels, _ in found} == set(exact)
    for labels, score in found:
        assert math.exp(score) == pytest.approx(exact[tuple(labels)], rel=1e-9)
    assert tuple(found[0][0]) == max(exact, key=exact.get)
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


def test_prefix_beam_search_finds_the_most_probable_labelling_where_best_path_does_not():
    # Best path is blank,blank (-> ""), p = 0.36; but "1" has p = 1 - 0.36 - ... : 0.6*0.4*2 + 0.4*0.4 = 0.64.
    probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    assert greedy_decode(probs.log()[None]) == [[]]
    exact = _brute_force(probs.log())
    assert exact[(1,)] == pytest.approx(0.64) and exact[()] == pytest.approx(0.36)
    assert prefix_beam_search(probs.log(), beam_size=2)[0][0] == [1]
    assert beam_decode(probs.log()[None], beam_size=2) == [[1]]


def test_greedy_decoding_collapses_repeats_and_drops_blanks_within_lengths():
    # argmax per frame: 1 1 0 1 2 2 | 2 -> "1 1 2" within 6 frames
    frames = [1, 1, 0, 1, 2, 2, 2]
    log_probs = torch.nn.functional.one_hot(torch.tensor(frames), 3).float().log_softmax(-1)[None]
    assert greedy_decode(log_probs) == [[1, 1, 2]]
    assert greedy_decode(log_probs, torch.tensor([2])) == [[1]]


def test_frames_needed_and_an_infeasible_target_is_refused():
    assert frames_needed([]) == 0
    assert frames_needed([1, 1, 1]) == 5
    assert frames_needed([1, 2, 3]) == 3
    log_probs = torch.zeros(1, 4, 3).log_softmax(-1)
    with pytest.raises(ValueError, match="needs at least 5 output frames, got 4"):
        ctc_loss(log_probs, torch.tensor([4]), torch.tensor([[1, 1, 1]]))
    with pytest.raises(ValueError, match="0 is the blank"):
        ctc_loss(log_probs, torch.tensor([4]), torch.tensor([[0, 1]]))


@pytest.mark.parametrize("reference, hypothesis, distance", [
    ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("", "abc", 3), ("abc", "", 3), ("same", "same", 0),
    ("intention", "execution", 5),
])
def test_edit_distance_known_values(reference, hypothesis, distance):
    assert edit_distance(reference, hypothesis) == distance
    assert edit_distance(hypothesis, reference) == distance


def test_word_and_character_error_rates():
    # ref 6 words; hyp: "sat"->"sit" (1 sub), "the" deleted (1 del): WER 2/6
    rates = text_error_rates(["the cat sat on the mat"], ["the cat sit on  mat"])
    assert rates["wer"] == pytest.approx(2 / 6)
    # characters: "sat"->"sit" 1, "the " deleted 4 -> 5 / 22
    assert rates["cer"] == pytest.approx(5 / 22)
    assert error_rate([[1, 2, 3]], [[1, 2, 3]]) == 0.0


def test_subsampling_stacks_frames_and_shortens_lengths():
    model = CTCRecognizer(input_size=2, num_classes=4, hidden_size=3, subsample=3, cell="lstm")
    assert model.output_lengths(torch.tensor([7, 6, 1])).tolist() == [3, 2, 1]
    x = torch.arange(14.0).reshape(1, 7, 2)
    stacked = model._stack(x)
    assert stacked.shape == (1, 3, 6)
    assert stacked[0, 0].tolist() == [0, 1, 2, 3, 4, 5] and stacked[0, 2].tolist() == [12, 13, 0, 0, 0, 0]
    assert model(x).output.shape == (1, 3, 4)


def test_padding_does_not_change_a_sequence_s_outputs():
    torch.manual_seed(1)
    model = CTCRecognizer(input_size=4, num_classes=5, hidden_size=6, num_layers=2, projection_size=5).eval()
    short = torch.randn(1, 6, 4)
    padded = torch.cat([short, torch.randn(1, 3, 4)], 1)
    alone = model(short).output
    together = model(padded, lengths=torch.tensor([6])).output[:, :6]
    assert torch.allclose(alone, together, atol=1e-6)
    assert torch.allclose(alone.exp().sum(-1), torch.ones(1, 6))


def test_save_and_load_rebuild_the_same_model(tmp_path):
    model = CTCRecognizer(input_size=3, num_classes=6, hidden_size=4, subsample=2, cell="gru").eval()
    save_model(model, tmp_path)
    again = load_model(tmp_path)
    x = torch.randn(2, 5, 3)
    assert type(again) is CTCRecognizer and again.config == model.config
    assert torch.equal(model(x).output, again(x).output)


def test_it_learns_to_read_a_toy_code():
    """Label k is shown as feature k for 2-3 frames, with blank (all-zero) gaps: greedy must read it back."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)

    def sample():
        labels = torch.randint(1, 4, (3,), generator=g).tolist()
        frames = []
        for c in labels:
            frames += [torch.nn.functional.one_hot(torch.tensor(c), 4).float()] * 2 + [torch.zeros(4)]
        return torch.stack(frames), labels

    model = CTCRecognizer(input_size=4, num_classes=4, hidden_size=12, cell="gru")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(80):
        batch = [sample() for _ in range(16)]
        out = model(torch.stack([x for x, _ in batch]), torch.tensor([y for _, y in batch]))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    model.eval()
    test = [sample() for _ in range(20)]
    with torch.no_grad():
        decoded = greedy_decode(model(torch.stack([x for x, _ in test])).output)
    assert decoded == [y for _, y in test]
