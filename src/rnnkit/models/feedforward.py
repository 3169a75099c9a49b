"""One-to-one: the feed-forward baseline, one input vector in, one prediction out.

It sees the same data as the recurrent models (a fixed-size feature vector, a flattened window of
``(T, F)`` features, or ``context`` token ids), so a recurrent model can be compared with a model
that has no memory and no notion of order beyond position.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.types import ModelOutput
from rnnkit.models.common import (
    TASKS, build_config, check_non_negative_int, check_probability, classification_loss, embed_or_check,
    length_mask, option, regression_loss,
)

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclasses.dataclass
class OneToOneConfig:
    """Configuration of :class:`OneToOne`."""

    input_size: int = option(1, "input features per example (for (batch, T, F) inputs: T * F); unused with tokens")
    vocab_size: int = option(0, "token vocabulary size; 0 means the inputs are float features")
    embedding_dim: int = option(32, "embedding size per token when vocab_size > 0")
    context: int = option(1, "tokens per example when vocab_size > 0")
    hidden_sizes: tuple = option((64,), "width of each hidden layer")
    activation: str = option("relu", "hidden activation: 'relu' or 'tanh'")
    dropout: float = option(0.0, "dropout after each hidden layer")
    output_size: int = option(2, "classes (classification) or output features (regression)")
    task: str = option("classification", "'classification' (cross-entropy) or 'regression' (MSE)")

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(self.hidden_sizes)
        for name in ("input_size", "embedding_dim", "context", "output_size"):
            _checks.positive_int(name, getattr(self, name))
        check_non_negative_int("vocab_size", self.vocab_size)
        for width in self.hidden_sizes:
            _checks.positive_int("each of hidden_sizes", width)
        _checks.choice("activation", self.activation, ACTIVATIONS)
        check_probability("dropout", self.dropout)
        _checks.choice("task", self.task, TASKS)


class OneToOne(nn.Module):
    """A multilayer perceptron: ``h_{l+1} = act(W_l h_l + b_l)``, then a linear head.

    Args:
        config: an :class:`OneToOneConfig`; keyword arguments override its fields.

    Shape:
        inputs: ``(batch, input_size)`` features, ``(batch, T, F)`` with ``T * F == input_size``
        (flattened; with ``lengths`` the steps past each length are zeroed so padding cannot leak in),
        or ``(batch, context)`` token ids.
        targets: ``(batch,)`` class ids (``IGNORE_INDEX`` skipped) or ``(batch, output_size)`` values.
        output: ``(batch, output_size)`` logits or predictions. ``state`` is accepted and ignored (no recurrence).

    >>> model = OneToOne(input_size=4, hidden_sizes=(8,), output_size=3)
    >>> out = model(torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0]))
    >>> out.output.shape, out.loss.shape
    (torch.Size([5, 3]), torch.Size([]))
    """

    config_class = OneToOneConfig

    def __init__(self, config: OneToOneConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(OneToOneConfig, config, overrides)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim) if config.vocab_size else None
        width = config.context * config.embedding_dim if config.vocab_size else config.input_size
        layers: list[nn.Module] = []
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), ACTIVATIONS[config.activation](), nn.Dropout(config.dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, config.output_size)

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                **extra) -> ModelOutput:
        config = self.config
        if config.vocab_size:
            if inputs.dim() != 2 or inputs.shape[1] != config.context:
                raise ValueError(f"OneToOne expects token ids of shape (batch, context={config.context}), "
                                 f"got {tuple(inputs.shape)}")
            x = embed_or_check(self.embedding, inputs, 0, "OneToOne")
        else:
            x = embed_or_check(None, inputs, inputs.shape[-1], "OneToOne")
            if inputs.dim() < 2 or math.prod(inputs.shape[1:]) != config.input_size:
                raise ValueError(f"OneToOne expects inputs of shape (batch, {config.input_size}) or (batch, T, F) "
                                 f"with T * F = input_size={config.input_size}, got {tuple(inputs.shape)}")
        if lengths is not None:
            if x.dim() != 3:
                raise ValueError("lengths= applies to sequence inputs (batch, T, F) or token ids (batch, context); "
                                 f"got inputs of shape {tuple(inputs.shape)}")
            mask = length_mask(_checks.lengths_tensor(lengths, x.shape[0], x.shape[1]), x.shape[1], x.device)
            x = x * mask.unsqueeze(-1).to(x.dtype)
        output = self.head(self.body(x.flatten(1)))
        loss = None
        if targets is not None:
            if config.task == "classification":
                loss = classification_loss(output, targets)
            else:
                loss = regression_loss(output, targets.reshape(output.shape) if targets.numel() == output.numel()
                                       else targets)
        return ModelOutput(output, loss)
