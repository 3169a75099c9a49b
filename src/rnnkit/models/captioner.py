"""One-to-many with attention: image -> sentence (Xu et al. 2015, "Show, Attend and Tell"; soft attention).

A small convolutional encoder, trained from scratch, turns an image into a grid of ``L = H' x W'``
region vectors ``a_1..a_L`` (each block: 3x3 convolution, batch norm, ReLU, 2x2 max pooling, the
channels doubling block by block up to ``conv_channels``; the region's normalised ``(x, y)``
coordinates are appended to its vector, as CoordConv does (Liu et al. 2018), so attention can move
left to right over a strip). A recurrent decoder of any registered cell then emits the caption one
token at a time:

- start state (Xu eq. 5): ``h_0 = tanh(W_h mean_i a_i)`` (and ``c_0 = tanh(W_c mean_i a_i)`` for
  two-state cells), for every layer;
- soft attention (eq. 4-6, 13): ``alpha_t = softmax_i(v^T tanh(W_q h_{t-1} + W_k a_i))``
  (:class:`~rnnkit.models.attention.AdditiveAttention`), ``z_t = beta_t sum_i alpha_ti a_i`` with the
  gating scalar ``beta_t = sigmoid(f_beta h_{t-1})`` (section 4.2.1);
- ``h_t = RNN([E y_{t-1}; z_t], h_{t-1})``, ``logits = W_o dropout([h_t; z_t])``.

The loss is the mean token cross-entropy plus, with ``attention_penalty = lambda > 0``, the doubly
stochastic regulariser ``lambda * mean_batch sum_i (1 - sum_t alpha_ti)^2`` (eq. 14).
The model implements ``step`` / ``select_state``, so :func:`~rnnkit.models.decoding.greedy_decode`
and :func:`~rnnkit.models.decoding.beam_search` decode it and collect the attention of every token.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.models.attention import AdditiveAttention
from rnnkit.models.common import (
    RecurrentConfig, build_config, check_token_ids, classification_loss, embed_or_check,
    last_layer_hidden, make_rnn, option, select_state,
)
from rnnkit.models.decoding import greedy_decode
from rnnkit.models.generator import teacher_inputs
from rnnkit.types import ModelOutput


@dataclasses.dataclass
class CaptionerConfig(RecurrentConfig):
    """Configuration of :class:`Captioner`."""

    vocab_size: int = option(16, "caption vocabulary size, special tokens included", derived=True)
    image_channels: int = option(3, "channels of the input images (1 grey, 3 colour)", derived=True)
    conv_layers: int = option(3, "convolution blocks of the encoder; each halves the image's height and width")
    conv_channels: int = option(64, "channels of the last convolution block (each earlier block has half)")
    embedding_dim: int = option(32, "word embedding size")
    attention_size: int = option(64, "hidden size of the additive attention scorer")
    attention_penalty: float = option(0.0, "weight of Xu et al.'s doubly stochastic attention penalty (0: off)")
    bos_id: int = option(2, "first decoder input", derived=True)
    eos_id: int = option(3, "token that ends a caption", derived=True)
    pad_id: int = option(0, "padding id in targets (ignored by the loss)", derived=True)
    max_length: int = option(20, "longest caption emitted when decoding, end token included", derived=True)

    def validate(self) -> None:
        super().validate()
        for name in ("vocab_size", "image_channels", "conv_layers", "conv_channels", "embedding_dim",
                     "attention_size", "max_length"):
            _checks.positive_int(name, getattr(self, name))
        value = self.attention_penalty
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"attention_penalty must be a number >= 0, got {value!r}")
        check_token_ids(self, "vocab_size")


@dataclass
class CaptionState:
    """Decoder state: the recurrent state (torch.nn layout), the image regions and the last attention.

    Attributes:
        hidden: the decoder's state. keys: ``(batch, L, key_size)`` region vectors.
        attention: ``(batch, L)`` weights of the last step, or ``None`` before the first.
    """

    hidden: object
    keys: Tensor
    attention: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.keys.shape[0]


class ImageEncoder(nn.Module):
    """Convolution blocks (3x3 conv, batch norm, ReLU, 2x2 max pool) and region coordinates.

    Block ``i`` of ``layers`` has ``max(8, width / 2**(layers - 1 - i))`` channels: ``width`` in the last.

    Shape:
        images: ``(batch, channels, H, W)`` floats; returns ``(batch, H' * W', conv_channels + 2)``
        regions in row-major order and the grid ``(H', W')``, ``H' = H // 2**conv_layers``.
    """

    def __init__(self, channels: int, width: int, layers: int) -> None:
        super().__init__()
        blocks, previous = [], channels
        for index in range(layers):
            # channels double block by block up to ``width`` (cheap where the maps are large, as VGG)
            out = max(8, width >> (layers - 1 - index))
            blocks += [nn.Conv2d(previous, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            previous = out
        self.blocks = nn.Sequential(*blocks)
        self.layers, self.output_size = layers, width + 2

    def forward(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        features = self.blocks(images)
        batch, _, height, width = features.shape
        ys = torch.linspace(-1, 1, height, device=images.device) if height > 1 else images.new_zeros(1)
        xs = torch.linspace(-1, 1, width, device=images.device) if width > 1 else images.new_zeros(1)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), 0).to(features.dtype)  # (2, H', W')
        features = torch.cat([features, grid.expand(batch, -1, -1, -1)], dim=1)
        return features.flatten(2).transpose(1, 2), (height, width)


class Captioner(nn.Module):
    """Image captioning with soft attention (Show, Attend and Tell), greedy and beam-search decoding.

    Args:
        config: a :class:`CaptionerConfig`; keyword arguments override its fields.

    Shape:
        inputs: ``(batch, image_channels, H, W)`` float images, ``H`` and ``W`` at least ``2**conv_layers``.
        targets: ``(batch, T)`` caption ids ending with ``EOS``, ``pad_id`` after it.
        output: with targets, ``(batch, T, vocab_size)`` logits; without, the greedy decoding
        ``(batch, L <= max_length)``. ``ModelOutput.attention``: ``(batch, T or L, regions)``.

    >>> model = Captioner(vocab_size=10, image_channels=1, conv_layers=2, conv_channels=8, hidden_size=8)
    >>> out = model(torch.rand(2, 1, 12, 20), torch.tensor([[4, 5, 3], [6, 3, 0]]))
    >>> out.output.shape, out.attention.shape  # 3 x 5 regions
    (torch.Size([2, 3, 10]), torch.Size([2, 3, 15]))
    """

    config_class = CaptionerConfig

    def __init__(self, config: CaptionerConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(CaptionerConfig, config, overrides)
        hidden = config.hidden_size
        self.encoder = ImageEncoder(config.image_channels, config.conv_channels, config.conv_layers)
        key_size = self.encoder.output_size
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.rnn = make_rnn(config, config.embedding_dim + key_size)
        self.num_states = self.rnn.cell_type.num_states
        self.init_state = nn.ModuleList(nn.Linear(key_size, hidden * config.num_layers)
                                        for _ in range(self.num_states))
        self.attention = AdditiveAttention(hidden, key_size, config.attention_size)
        self.gate = nn.Linear(hidden, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(hidden + key_size, config.vocab_size)

    def check_image_size(self, height: int, width: int) -> None:
        """Each convolution block halves the image: ``conv_layers`` of them need ``2 ** conv_layers`` pixels."""
        minimum = 2 ** self.config.conv_layers
        if min(height, width) < minimum:
            raise ValueError(f"Captioner with conv_layers={self.config.conv_layers} needs images of at least "
                             f"{minimum}x{minimum} pixels, got {(height, width)}")

    def encode(self, images: Tensor) -> CaptionState:
        """The image's regions and the decoder's start state (Xu eq. 5)."""
        config = self.config
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != config.image_channels \
                or not images.is_floating_point():
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"Captioner expects float images of shape (batch, {config.image_channels}, H, W), "
                             f"got {got}")
        self.check_image_size(*images.shape[2:])
        keys, _ = self.encoder(images)
        mean = keys.mean(dim=1)
        batch = images.shape[0]
        parts = tuple(torch.tanh(init(mean)).view(batch, config.num_layers, -1).transpose(0, 1).contiguous()
                      for init in self.init_state)
        return CaptionState(parts if self.num_states == 2 else parts[0], keys)

    def step(self, tokens: Tensor, state: CaptionState) -> tuple[Tensor, CaptionState]:
        """One decoder step: ``tokens`` ``(batch,)`` -> ``(logits (batch, vocab), state)``."""
        x = self.dropout(embed_or_check(self.embedding, tokens, 0, "Captioner"))
        query = last_layer_hidden(state.hidden)
        context, weights = self.attention(query, state.keys)
        context = torch.sigmoid(self.gate(query)) * context
        output, hidden = self.rnn(torch.cat([x, context], dim=-1).unsqueeze(1), state.hidden)
        logits = self.head(self.dropout(torch.cat([output[:, 0], context], dim=-1)))
        return logits, CaptionState(hidden, state.keys, weights)

    def select_state(self, state: CaptionState, index: Tensor) -> CaptionState:
        """Batch rows ``index`` of a state (for beam search)."""
        return CaptionState(select_state(state.hidden, index), state.keys.index_select(0, index),
                            None if state.attention is None else state.attention.index_select(0, index))

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, target_lengths=None, **extra) -> ModelOutput:
        config = self.config
        state = self.encode(inputs)
        if targets is None:
            decoded = greedy_decode(self, state, bos_id=config.bos_id, eos_id=config.eos_id,
                                    max_length=config.max_length, pad_id=config.pad_id)
            return ModelOutput(decoded.tokens, attention=decoded.attention)
        decoder_inputs, mask = teacher_inputs(targets, target_lengths, config.bos_id, config.pad_id)
        logits, weights = [], []
        for t in range(targets.shape[1]):
            step_logits, state = self.step(decoder_inputs[:, t], state)
            logits.append(step_logits)
            weights.append(state.attention)
        logits, attention = torch.stack(logits, 1), torch.stack(weights, 1)
        loss = classification_loss(logits, targets.long(), mask)
        if config.attention_penalty > 0:
            attended = (attention * mask.unsqueeze(-1).to(attention.dtype)).sum(dim=1)  # (batch, L)
            loss = loss + config.attention_penalty * ((1 - attended) ** 2).sum(dim=1).mean()
        return ModelOutput(logits, loss, None, attention)
