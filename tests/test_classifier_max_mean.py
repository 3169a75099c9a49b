"""SequenceClassifier's ``max_mean`` summary: [max over valid steps ; mean over valid steps], padding-blind,
saved and loaded like every task model."""

import pytest
import torch

from rnnkit.models import SequenceClassifier
from rnnkit.models.io import load_model, save_model


@torch.no_grad()
def test_max_mean_matches_a_per_sequence_python_oracle():
    torch.manual_seed(0)
    model = SequenceClassifier(input_size=3, hidden_size=4, bidirectional=True, summary="max_mean").eval()
    lengths = torch.tensor([5, 3, 1])
    x = torch.randn(3, 5, 3)
    outputs, state, _, mask = model.encoder(x, lengths)
    summary, weights = model.summarize(outputs, state, mask)
    assert summary.shape == (3, 16) and weights is None and model.head.in_features == 16
    for i, n in enumerate(lengths.tolist()):
        alone, _ = model.encoder.rnn(x[i:i + 1, :n])  # the sequence run alone, no padding
        steps = [[float(v) for v in alone[0, t]] for t in range(n)]
        largest = [max(step[j] for step in steps) for j in range(8)]
        mean = [sum(step[j] for step in steps) / n for j in range(8)]
        torch.testing.assert_close(summary[i], torch.tensor(largest + mean), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_max_mean_ignores_padding_and_round_trips_through_save(tmp_path):
    torch.manual_seed(1)
    model = SequenceClassifier(vocab_size=12, hidden_size=6, num_layers=2, bidirectional=True, summary="max_mean",
                               output_size=3).eval()
    lengths = torch.tensor([6, 2, 4])
    x = torch.randint(1, 12, (3, 6))
    x[1, 2:] = 0
    x[2, 4:] = 0
    batched = model(x, lengths=lengths).output
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(batched[i], model(x[i:i + 1, :n]).output[0], atol=1e-5, rtol=1e-5)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert loaded.config.summary == "max_mean"
    torch.testing.assert_close(loaded(x, lengths=lengths).output, batched, atol=0, rtol=0)


def test_unknown_summary_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="max_mean"):
        SequenceClassifier(vocab_size=5, summary="maxmean")
