"""Many-to-many, encoder-decoder (seq2seq), with optional attention.

The encoder (optionally bidirectional) reads the source into outputs ``k_1..k_S`` and a final state;
the decoder starts from that state (for a bidirectional encoder: ``tanh(W [h_fwd; h_bwd] + b)`` per
layer) and predicts ``y_t`` from ``y_{t-1}``:

- no attention (Sutskever et al. 2014): ``s_t = RNN(e(y_{t-1}), s_{t-1})``, ``logits = W_o s_t``;
- ``bahdanau`` (Bahdanau et al. 2015): context ``c_t`` from the previous top state ``s_{t-1}``,
  ``s_t = RNN([e(y_{t-1}); c_t], s_{t-1})``, ``logits = W_o [s_t; c_t]``;
- ``dot`` / ``general`` (Luong et al. 2015): ``s_t = RNN(e(y_{t-1}), s_{t-1})``, ``c_t`` from ``s_t``,
  ``logits = W_o tanh(W_c [s_t; c_t])``.

Scores are in :mod:`rnnkit.models.attention`. Training feeds the true previous token with
probability ``teacher_forcing`` and the model's own arg-max otherwise (only in training mode;
evaluation losses are always teacher-forced).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.models.attention import ATTENTION
from rnnkit.types import ModelOutput
from rnnkit.models.common import (
    SequenceEncoder, SequenceInputConfig, build_config, check_probability, check_token_ids, classification_loss, embed_or_check,
    last_layer_hidden, make_rnn, option, select_state,
)
from rnnkit.models.decoding import greedy_decode
from rnnkit.models.generator import teacher_inputs


@dataclasses.dataclass
class Seq2SeqConfig(SequenceInputConfig):
    """Configuration of :class:`Seq2Seq`. ``vocab_size``, ``input_size`` and ``bidirectional`` describe the source."""

    target_vocab_size: int = option(16, "target vocabulary size, special tokens included", derived=True)
    attention: str = option("none", "'none', 'bahdanau' (additive), 'dot' or 'general' (Luong)")
    attention_size: int = option(64, "hidden size of the additive attention scorer")
    teacher_forcing: float = option(1.0, "probability of feeding the true previous token while training")
    bos_id: int = option(2, "first decoder input", derived=True)
    eos_id: int = option(3, "token that ends a sequence", derived=True)
    pad_id: int = option(0, "padding id in targets (ignored by the loss)", derived=True)
    max_length: int = option(50, "longest output emitted when decoding", derived=True)

    def validate(self) -> None:
        super().validate()
        _checks.positive_int("target_vocab_size", self.target_vocab_size)
        _checks.choice("attention", self.attention, ("none", *ATTENTION))
        _checks.positive_int("attention_size", self.attention_size)
        check_probability("teacher_forcing", self.teacher_forcing)
        _checks.positive_int("max_length", self.max_length)
        check_token_ids(self, "target_vocab_size")
        if self.attention == "dot" and self.bidirectional:
            raise ValueError("attention='dot' needs keys of the decoder's size, but a bidirectional encoder gives "
                             f"2 * hidden_size={2 * self.hidden_size}; use attention='general' or 'bahdanau'")


@dataclass
class Seq2SeqState:
    """Decoder state: the recurrent state plus what attention reads.

    Attributes:
        hidden: decoder state in torch.nn layout. keys: ``(batch, S, key_size)`` encoder outputs.
        mask: ``(batch, S)`` valid source steps. attention: ``(batch, S)`` weights of the last step, or ``None``.
    """

    hidden: object
    keys: Tensor
    mask: Tensor
    attention: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.keys.shape[0]


class Seq2Seq(nn.Module):
    """Encoder-decoder with optional attention, teacher forcing, greedy and beam-search decoding.

    Args:
        config: a :class:`Seq2SeqConfig`; keyword arguments override its fields.

    Shape:
        inputs: source ``(batch, S)`` token ids or ``(batch, S, input_size)`` features; ``lengths``: source lengths.
        targets: ``(batch, T)`` ids ending with ``EOS``; ``pad_id`` / ``IGNORE_INDEX`` are padding
        (``target_lengths=`` may also be given). state: optional initial *encoder* state (torch.nn layout).
        output: with targets, ``(batch, T, target_vocab_size)`` logits; without, the greedy decoding
        ``(batch, L <= max_length)``. ``ModelOutput.attention``: ``(batch, T or L, S)`` or ``None``.

    >>> model = Seq2Seq(vocab_size=10, target_vocab_size=12, hidden_size=8, attention="bahdanau")
    >>> source, target = torch.randint(4, 10, (2, 5)), torch.tensor([[4, 5, 3], [6, 3, 0]])
    >>> out = model(source, target, lengths=torch.tensor([5, 3]))
    >>> out.output.shape, out.attention.shape
    (torch.Size([2, 3, 12]), torch.Size([2, 3, 5]))
    """

    config_class = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(Seq2SeqConfig, config, overrides)
        hidden = config.hidden_size
        self.encoder = SequenceEncoder(config, "Seq2Seq")
        key_size = self.encoder.output_size
        self.num_states = self.encoder.rnn.cell_type.num_states
        self.bridge = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in range(self.num_states)) \
            if config.bidirectional else None
        self.attention = ATTENTION[config.attention](hidden, key_size, config.attention_size) \
            if config.attention != "none" else None
        additive = config.attention == "bahdanau"
        self.embedding = nn.Embedding(config.target_vocab_size, config.embedding_dim)
        self.rnn = make_rnn(config, config.embedding_dim + (key_size if additive else 0))
        self.combine = nn.Linear(hidden + key_size, hidden) if config.attention in ("dot", "general") else None
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(hidden + (key_size if additive else 0), config.target_vocab_size)

    def encode(self, inputs: Tensor, lengths=None, state=None) -> Seq2SeqState:
        """Read the source (from the encoder state ``state``, default zeros); return the decoder's start state."""
        outputs, final, _, mask = self.encoder(inputs, lengths, state)
        parts = final if isinstance(final, tuple) else (final,)
        if self.bridge is not None:  # (layers * 2, B, H) -> (layers, B, 2H) -> (layers, B, H)
            parts = tuple(torch.tanh(bridge(torch.cat([p[0::2], p[1::2]], dim=-1)))
                          for bridge, p in zip(self.bridge, parts))
        return Seq2SeqState(parts if self.num_states == 2 else parts[0], outputs, mask)

    def step(self, tokens: Tensor, state: Seq2SeqState) -> tuple[Tensor, Seq2SeqState]:
        """One decoder step: ``tokens`` ``(batch,)`` -> ``(logits (batch, vocab), state)``."""
        x = self.dropout(embed_or_check(self.embedding, tokens, 0, "Seq2Seq"))
        weights = None
        if self.config.attention == "bahdanau":
            context, weights = self.attention(last_layer_hidden(state.hidden), state.keys, state.mask)
            x = torch.cat([x, context], dim=-1)
        output, hidden = self.rnn(x.unsqueeze(1), state.hidden)
        features = output[:, 0]
        if self.config.attention == "bahdanau":
            features = torch.cat([features, context], dim=-1)
        elif self.attention is not None:
            context, weights = self.attention(features, state.keys, state.mask)
            features = torch.tanh(self.combine(torch.cat([features, context], dim=-1)))
        return self.head(self.dropout(features)), Seq2SeqState(hidden, state.keys, state.mask, weights)

    def prime(self, tokens: Tensor, state: Seq2SeqState) -> tuple[Tensor, Seq2SeqState]:
        """Feed decoder inputs ``(batch, P)`` (``BOS`` first) step by step: ``(last logits, state)``."""
        for t in range(tokens.shape[1]):
            logits, state = self.step(tokens[:, t], state)
        return logits, state

    def select_state(self, state: Seq2SeqState, index: Tensor) -> Seq2SeqState:
        """Batch rows ``index`` of a state (for beam search)."""
        return Seq2SeqState(select_state(state.hidden, index), state.keys.index_select(0, index),
                            state.mask.index_select(0, index),
                            None if state.attention is None else state.attention.index_select(0, index))

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                target_lengths=None, **extra) -> ModelOutput:
        config = self.config
        state = self.encode(inputs, lengths, state)
        if targets is None:
            decoded = greedy_decode(self, state, bos_id=config.bos_id, eos_id=config.eos_id,
                                    max_length=config.max_length, pad_id=config.pad_id)
            return ModelOutput(decoded.tokens, attention=decoded.attention)
        decoder_inputs, mask = teacher_inputs(targets, target_lengths, config.bos_id, config.pad_id)
        ratio = config.teacher_forcing if self.training else 1.0
        logits, weights = [], []
        tokens = decoder_inputs[:, 0]
        for t in range(targets.shape[1]):
            step_logits, state = self.step(tokens, state)
            logits.append(step_logits)
            weights.append(state.attention)
            if t + 1 < targets.shape[1]:
                tokens = decoder_inputs[:, t + 1]
                if ratio < 1.0:
                    own = step_logits.argmax(-1).detach()
                    tokens = torch.where(torch.rand(tokens.shape, device=tokens.device) < ratio, tokens, own)
        logits = torch.stack(logits, 1)
        attention = torch.stack(weights, 1) if self.attention is not None else None
        return ModelOutput(logits, classification_loss(logits, targets.long(), mask), None, attention)
