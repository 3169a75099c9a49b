"""Many-to-one: a sequence in, one prediction out (classification or regression).

The recurrent outputs are summarised into one vector, always over the valid steps only:

- ``last``: the final state of each direction: the forward direction at the last valid step and,
  when bidirectional, the backward direction at step 0 (both are the layer's ``h_n`` under ``lengths``);
- ``mean``: ``(1/n) sum_{t<n} o_t``; ``max``: the element-wise ``max_{t<n} o_t``;
- ``max_mean``: ``[max_{t<n} o_t ; (1/n) sum_{t<n} o_t]`` (the two concatenated, twice the features);
- ``attention``: ``sum_t a_t o_t`` with ``a = softmax(v^T tanh(W o_t + b))`` over valid steps.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.models.attention import AttentionPooling
from rnnkit.types import ModelOutput
from rnnkit.models.common import (
    TASKS, SequenceEncoder, SequenceInputConfig, build_config, classification_loss, option, regression_loss,
)

SUMMARIES = ("last", "mean", "max", "max_mean", "attention")


@dataclasses.dataclass
class SequenceClassifierConfig(SequenceInputConfig):
    """Configuration of :class:`SequenceClassifier`."""

    summary: str = option("last", "how the sequence is summarised: 'last', 'mean', 'max', 'max_mean' "
                                         "(both concatenated) or 'attention'")
    attention_size: int = option(64, "hidden size of the attention-pooling scorer")
    bag_of_tokens: bool = option(False, "also give the head the mean of the input embeddings (a bag of tokens, "
                                        "as fastText; token inputs only) beside the recurrent summary")
    output_size: int = option(2, "classes (classification) or output features (regression)", derived=True)
    task: str = option("classification", "'classification' (cross-entropy) or 'regression' (MSE)", derived=True)

    def validate(self) -> None:
        super().validate()
        _checks.choice("summary", self.summary, SUMMARIES)
        _checks.positive_int("attention_size", self.attention_size)
        _checks.positive_int("output_size", self.output_size)
        _checks.choice("task", self.task, TASKS)
        if not isinstance(self.bag_of_tokens, bool):
            raise ValueError(f"bag_of_tokens must be True or False, got {self.bag_of_tokens!r}")


def valid_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``(batch, T, F)`` values averaged over the steps where the ``(batch, T)`` mask is true."""
    valid = mask.unsqueeze(-1).to(values.dtype)
    return (values * valid).sum(1) / valid.sum(1).clamp_min(1)


class SequenceClassifier(nn.Module):
    """Recurrent encoder, a summary over the valid steps, a linear head.

    Args:
        config: a :class:`SequenceClassifierConfig`; keyword arguments override its fields.

    Shape:
        inputs: ``(batch, T)`` token ids or ``(batch, T, input_size)`` features, padded past ``lengths``.
        targets: ``(batch,)`` class ids (``IGNORE_INDEX`` skipped) or ``(batch, output_size)`` values.
        state: optional initial state in torch.nn layout.
        output: ``(batch, output_size)``; ``ModelOutput.attention`` holds the ``(batch, T)`` pooling
        weights when ``summary='attention'``. The model is stateless (``state`` in the result is ``None``).

    >>> model = SequenceClassifier(vocab_size=10, hidden_size=8, bidirectional=True, output_size=3)
    >>> out = model(torch.tensor([[4, 5, 6], [7, 8, 0]]), torch.tensor([2, 0]), lengths=torch.tensor([3, 2]))
    >>> out.output.shape
    torch.Size([2, 3])
    """

    config_class = SequenceClassifierConfig

    def __init__(self, config: SequenceClassifierConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(SequenceClassifierConfig, config, overrides)
        self.encoder = SequenceEncoder(config, "SequenceClassifier")
        features = (2 if config.bidirectional else 1) * config.hidden_size if config.summary == "last" \
            else self.encoder.output_size * (2 if config.summary == "max_mean" else 1)
        if config.bag_of_tokens and not config.vocab_size:
            raise ValueError("bag_of_tokens needs token inputs (vocab_size > 0): float features have no bag")
        self.pooling = AttentionPooling(features, config.attention_size) if config.summary == "attention" else None
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(features + (config.embedding_dim if config.bag_of_tokens else 0), config.output_size)

    def summarize(self, outputs: Tensor, state, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """The ``(batch, features)`` summary (and attention weights or ``None``)."""
        summary = self.config.summary
        if summary == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            directions = 2 if self.config.bidirectional else 1
            return torch.cat(list(h_n[-directions:]), dim=-1), None  # top layer's directions
        if summary == "attention":
            return self.pooling(outputs, mask)
        mean = valid_mean(outputs, mask) if summary != "max" else None
        if summary == "mean":
            return mean, None
        largest = outputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        return (largest, None) if summary == "max" else (torch.cat([largest, mean], dim=-1), None)

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                **extra) -> ModelOutput:
        outputs, final, _, mask = self.encoder(inputs, lengths, state)
        summary, weights = self.summarize(outputs, final, mask)
        if self.config.bag_of_tokens:
            # A linear view of the token counts next to the recurrence: with the head this is fastText's model,
            # so the network starts from what a bag-of-n-grams baseline sees and the recurrence adds order.
            summary = torch.cat([summary, valid_mean(self.encoder.embedding(inputs), mask)], dim=-1)
        output = self.head(self.dropout(summary))
        loss = None
        if targets is not None:
            if self.config.task == "classification":
                loss = classification_loss(output, targets)
            else:
                loss = regression_loss(output, targets.reshape(output.shape) if targets.numel() == output.numel()
                                       else targets)
        return ModelOutput(output, loss, None, weights)
