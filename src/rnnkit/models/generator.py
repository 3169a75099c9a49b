"""One-to-many: a vector sets the initial state, a recurrent decoder emits a sequence.

The condition is a feature vector (e.g. image features), a class id (embedded), or an image read
by a small CNN (captioning). It becomes the decoder's initial state,
``h_0 = tanh(W_h c + b_h)`` per layer (and ``c_0 = tanh(W_c c + b_c)`` for an LSTM), and the
decoder then predicts ``y_t`` from ``y_{t-1}`` (``BOS`` first) and its state. Training uses teacher
forcing; inference uses :mod:`rnnkit.models.decoding` or :mod:`rnnkit.sampling`.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.types import IGNORE_INDEX, ModelOutput
from rnnkit.models.common import (
    RecurrentConfig, build_config, check_non_negative_int, check_token_ids, classification_loss, embed_or_check, make_rnn,
    option, select_state,
)
from rnnkit.models.decoding import greedy_decode


@dataclasses.dataclass
class SequenceGeneratorConfig(RecurrentConfig):
    """Configuration of :class:`SequenceGenerator`."""

    vocab_size: int = option(16, "output vocabulary size, special tokens included", derived=True)
    embedding_dim: int = option(32, "size of the decoder's token embeddings")
    condition_size: int = option(16, "features of the condition vector")
    num_conditions: int = option(0, "if > 0 the condition is a class id in [0, num_conditions), embedded")
    image_channels: int = option(0, "if > 0 the condition is an image (batch, channels, H, W) read by a small CNN")
    bos_id: int = option(2, "first decoder input", derived=True)
    eos_id: int = option(3, "token that ends a sequence", derived=True)
    pad_id: int = option(0, "padding id in targets (ignored by the loss)", derived=True)
    max_length: int = option(20, "longest sequence emitted when decoding")

    def validate(self) -> None:
        super().validate()
        for name in ("vocab_size", "embedding_dim", "condition_size", "max_length"):
            _checks.positive_int(name, getattr(self, name))
        check_non_negative_int("num_conditions", self.num_conditions)
        check_non_negative_int("image_channels", self.image_channels)
        if self.num_conditions and self.image_channels:
            raise ValueError("set num_conditions (class ids) or image_channels (images), not both")
        check_token_ids(self, "vocab_size")


class SmallCNN(nn.Module):
    """Two 3x3 conv + ReLU + 2x2 max-pool blocks, global average pooling, a linear map to ``features``."""

    def __init__(self, channels: int, features: int, width: int = 16) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2 * width, features),
        )

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != self.layers[0].in_channels:
            raise ValueError(f"expected images of shape (batch, {self.layers[0].in_channels}, H, W), "
                             f"got {tuple(images.shape)}")
        return self.layers(images)


class SequenceGenerator(nn.Module):
    """Conditional sequence generator (captioning, generation from a class or style vector).

    Args:
        config: a :class:`SequenceGeneratorConfig`; keyword arguments override its fields.

    Shape:
        inputs: the condition: ``(batch, condition_size)`` floats, ``(batch,)`` class ids, or
        ``(batch, image_channels, H, W)`` images.
        targets: ``(batch, T)`` token ids ending with ``EOS``; ``pad_id`` / ``IGNORE_INDEX`` (or steps
        past ``lengths``) are padding.
        output: with targets, ``(batch, T, vocab_size)`` teacher-forced logits; without, the greedy
        decoding ``(batch, L <= max_length)`` (``pad_id`` after ``EOS``).

    >>> model = SequenceGenerator(vocab_size=10, condition_size=4, hidden_size=8)
    >>> out = model(torch.randn(2, 4), torch.tensor([[4, 5, 3], [6, 3, 0]]))
    >>> out.output.shape, model(torch.randn(2, 4)).output.shape[0]
    (torch.Size([2, 3, 10]), 2)
    """

    config_class = SequenceGeneratorConfig

    def __init__(self, config: SequenceGeneratorConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(SequenceGeneratorConfig, config, overrides)
        if config.image_channels:
            self.condition_encoder: nn.Module | None = SmallCNN(config.image_channels, config.condition_size)
        elif config.num_conditions:
            self.condition_encoder = nn.Embedding(config.num_conditions, config.condition_size)
        else:
            self.condition_encoder = None
        self.rnn = make_rnn(config, config.embedding_dim)
        self.num_states = self.rnn.cell_type.num_states
        self.bridge = nn.Linear(config.condition_size, self.num_states * config.num_layers * config.hidden_size)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def initial_state(self, condition: Tensor):
        """The decoder's start state from the condition, in torch.nn layout."""
        config = self.config
        if config.num_conditions:
            features = embed_or_check(self.condition_encoder, condition, 0, "SequenceGenerator")
        elif config.image_channels:
            features = self.condition_encoder(condition)
        else:
            features = embed_or_check(None, condition, config.condition_size, "SequenceGenerator")
            if features.dim() != 2:
                raise ValueError(f"SequenceGenerator expects a condition of shape (batch, {config.condition_size}), "
                                 f"got {tuple(condition.shape)}")
        batch = features.shape[0]
        parts = torch.tanh(self.bridge(features)).reshape(batch, self.num_states, config.num_layers, config.hidden_size)
        states = tuple(parts[:, k].transpose(0, 1).contiguous() for k in range(self.num_states))
        return states if self.num_states == 2 else states[0]

    def prime(self, tokens: Tensor, state) -> tuple[Tensor, object]:
        """Run decoder inputs ``(batch, P)`` (``BOS`` first) in one call: ``(last logits, state)``."""
        outputs, state = self.rnn(self.dropout(embed_or_check(self.embedding, tokens, 0, "SequenceGenerator")), state)
        return self.head(self.dropout(outputs[:, -1])), state

    def step(self, tokens: Tensor, state) -> tuple[Tensor, object]:
        """One decoder step: ``tokens`` ``(batch,)`` -> ``(logits (batch, vocab), state)``."""
        return self.prime(tokens.unsqueeze(1), state)

    def select_state(self, state, index: Tensor):
        """Batch rows ``index`` of a state (for beam search)."""
        return select_state(state, index)

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                **extra) -> ModelOutput:
        state = self.initial_state(inputs) if state is None else state
        if targets is None:
            decoded = greedy_decode(self, state, bos_id=self.config.bos_id, eos_id=self.config.eos_id,
                                    max_length=self.config.max_length, pad_id=self.config.pad_id)
            return ModelOutput(decoded.tokens)
        decoder_inputs, mask = teacher_inputs(targets, lengths, self.config.bos_id, self.config.pad_id)
        outputs, _ = self.rnn(self.dropout(embed_or_check(self.embedding, decoder_inputs, 0, "SequenceGenerator")),
                              state)
        logits = self.head(self.dropout(outputs))
        return ModelOutput(logits, classification_loss(logits, targets.long(), mask))


def teacher_inputs(targets: Tensor, lengths, bos_id: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """Decoder inputs ``[BOS, y_1 .. y_{T-1}]`` and the mask of counted targets.

    A target counts when it is neither ``pad_id`` nor ``IGNORE_INDEX`` and lies within ``lengths``.
    """
    if not isinstance(targets, Tensor) or targets.dim() != 2 or targets.is_floating_point():
        got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must be (batch, T) integer token ids, got {got}")
    mask = (targets != pad_id) & (targets != IGNORE_INDEX)
    if lengths is not None:
        lengths = _checks.lengths_tensor(lengths, targets.shape[0], targets.shape[1])
        mask &= torch.arange(targets.shape[1], device=targets.device)[None] < lengths.to(targets.device)[:, None]
    shifted = torch.cat([torch.full_like(targets[:, :1], bos_id), targets[:, :-1]], dim=1)
    return shifted.masked_fill(shifted < 0, pad_id).long(), mask
