"""SequenceClassifier's ``bag_of_tokens``: the head sees [recurrent summary ; mean of the valid tokens'
embeddings], written out here per sequence from the embedding table."""

import pytest
import torch

from rnnkit.models import SequenceClassifier
from rnnkit.models.io import load_model, save_model


@torch.no_grad()
def test_head_input_is_the_summary_and_the_mean_embedding_of_the_valid_tokens(tmp_path):
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=12, embedding_dim=5, hidden_size=4, bidirectional=True, summary="max",
                               bag_of_tokens=True, output_size=3).eval()
    assert model.head.in_features == 8 + 5
    lengths = torch.tensor([6, 2, 4])
    x = torch.randint(1, 12, (3, 6))
    x[1, 2:] = 0
    x[2, 4:] = 0
    batched = model(x, lengths=lengths).output
    table = model.encoder.embedding.weight
    for i, n in enumerate(lengths.tolist()):
        alone, _ = model.encoder.rnn(table[x[i, :n]].unsqueeze(0))  # the sequence alone, no padding
        largest = [max(float(alone[0, t, j]) for t in range(n)) for j in range(8)]
        bag = [sum(float(table[x[i, t], j]) for t in range(n)) / n for j in range(5)]
        expected = model.head(torch.tensor(largest + bag))
        torch.testing.assert_close(batched[i], expected, atol=1e-5, rtol=1e-5)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert loaded.config.bag_of_tokens is True
    torch.testing.assert_close(loaded(x, lengths=lengths).output, batched, atol=0, rtol=0)


def test_the_bag_gradient_is_the_closed_form_softmax_gradient_spread_over_the_tokens():
    torch.manual_seed(1)
    model = SequenceClassifier(vocab_size=6, embedding_dim=3, hidden_size=2, bag_of_tokens=True, output_size=2,
                               dropout=0.0)
    with torch.no_grad():
        model.head.weight[:, :2] = 0  # the recurrent path contributes nothing: only the bag reaches the loss
    tokens, target = torch.tensor([[1, 2, 2]]), 1
    model(tokens, torch.tensor([target])).loss.backward()
    table, w = model.encoder.embedding.weight.detach(), model.head.weight[:, 2:].detach()
    logits = w @ table[[1, 2, 2]].mean(0) + model.head.bias.detach()
    d_bag = w.T @ (torch.softmax(logits, 0) - torch.nn.functional.one_hot(torch.tensor(target), 2))
    grad = model.encoder.embedding.weight.grad
    torch.testing.assert_close(grad[1], d_bag / 3)
    torch.testing.assert_close(grad[2], 2 * d_bag / 3)
    assert grad[[0, 3, 4, 5]].abs().sum() == 0


@torch.no_grad()
def test_attention_pooling_reads_the_recurrent_outputs_and_the_head_also_the_bag():
    torch.manual_seed(2)
    model = SequenceClassifier(vocab_size=9, embedding_dim=3, hidden_size=4, summary="attention", bag_of_tokens=True,
                               output_size=2).eval()
    tokens = torch.tensor([[1, 2, 3, 4]])
    out = model(tokens, lengths=torch.tensor([4]))
    outputs, state, _, mask = model.encoder(tokens, torch.tensor([4]))
    pooled, _ = model.summarize(outputs, state, mask)
    bag = model.encoder.embedding.weight[[1, 2, 3, 4]].mean(0, keepdim=True)
    torch.testing.assert_close(out.output, model.head(torch.cat([pooled, bag], -1)))
    assert out.attention.shape == (1, 4)


def test_float_features_have_no_bag():
    with pytest.raises(ValueError, match="token inputs"):
        SequenceClassifier(input_size=3, bag_of_tokens=True)
