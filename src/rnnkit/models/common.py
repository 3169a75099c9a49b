"""Plumbing shared by the task models: configs, recurrent layers by name, masks, losses, states.

Kept in one place so that every pattern builds its recurrent core, validates its config and
computes its masked loss the same way.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit import _checks, registry
from rnnkit.nn import RECURRENT_REGULARIZERS
from rnnkit.options import option
from rnnkit.types import IGNORE_INDEX

TASKS = ("classification", "regression")


@dataclasses.dataclass
class RecurrentConfig:
    """Fields every recurrent task model shares."""

    cell: str = option("gru", "the recurrent cell, any registered kind (rnnkit.registry)", choices=registry.cell_names)
    hidden_size: int = option(64, "features of the recurrent state")
    num_layers: int = option(1, "stacked recurrent layers")
    dropout: float = option(0.0, "dropout on embeddings, between recurrent layers and before the output head")
    recurrent_dropout: float = option(0.0, "variational dropout on the recurrent state, one mask per sequence "
                                           "(Gal & Ghahramani 2016); every cell with recurrent weights (not minGRU/minLSTM)")
    zoneout: float = option(0.0, "probability that a state unit keeps its previous value at a step "
                                 "(Krueger et al. 2016)")
    weight_drop: float = option(0.0, "DropConnect on the recurrent weights, one mask per forward call (AWD-LSTM, "
                                     "Merity et al. 2018); keeps the fused kernels' speed")
    backend: str = option("auto", "recurrent backend: 'auto' (the fastest for the device), 'engine', 'builtin' or "
                                  "'reference'", choices=("auto", "engine", "builtin", "reference"))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ``ValueError`` naming the field, the value and what is allowed."""
        registry.cell_kind(self.cell)
        for name in ("hidden_size", "num_layers"):
            _checks.positive_int(name, getattr(self, name))
        check_probability("dropout", self.dropout)
        for name in RECURRENT_REGULARIZERS:
            _checks.probability(name, getattr(self, name), closed=False)
        from rnnkit import backends

        _checks.choice("backend", self.backend, backends.names())


def check_probability(name: str, value) -> None:
    _checks.probability(name, value)


def check_non_negative_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def check_token_ids(config, vocab_field: str) -> None:
    """``bos_id``, ``eos_id`` and ``pad_id`` of ``config`` are ids in ``[0, config.<vocab_field>)``."""
    size = getattr(config, vocab_field)
    for name in ("bos_id", "eos_id", "pad_id"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
            raise ValueError(f"{name} must be a token id in [0, {vocab_field}={size}), got {value!r}")


def build_config(config_class: type, config, overrides: dict):
    """``config`` (or the defaults) with ``overrides`` applied; rejects unknown field names."""
    if config is not None and not isinstance(config, config_class):
        raise TypeError(f"config must be a {config_class.__name__}, got {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown {config_class.__name__} field(s) {unknown}; known fields: {sorted(known)}")
    return config_class(**overrides) if config is None else dataclasses.replace(config, **overrides)


def make_rnn(config: RecurrentConfig, input_size: int, *, bidirectional: bool = False) -> nn.Module:
    """A batch-first rnnkit layer as the config describes (dropout between layers only when stacked)."""
    return registry.make_layer(config.cell, input_size, config.hidden_size, num_layers=config.num_layers,
                               batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0,
                               bidirectional=bidirectional, backend=config.backend,
                               recurrent_dropout=config.recurrent_dropout, zoneout=config.zoneout,
                               weight_drop=config.weight_drop)


def embed_or_check(embedding: nn.Module | None, inputs: Tensor, input_size: int, owner: str) -> Tensor:
    """Embed token ids, or check that float features have ``input_size`` features."""
    if embedding is not None:
        if not isinstance(inputs, Tensor) or inputs.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            got = inputs.dtype if isinstance(inputs, Tensor) else type(inputs).__name__
            raise TypeError(f"{owner} has vocab_size={embedding.num_embeddings} and expects integer token ids, "
                            f"got {got}; set vocab_size=0 to feed float features")
        if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= embedding.num_embeddings):
            raise ValueError(f"{owner} got token ids in [{int(inputs.min())}, {int(inputs.max())}] but "
                             f"vocab_size={embedding.num_embeddings}; ids must be in [0, vocab_size)")
        return embedding(inputs.long())
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        got = inputs.dtype if isinstance(inputs, Tensor) else type(inputs).__name__
        raise TypeError(f"{owner} has vocab_size=0 and expects float features, got {got}; "
                        "set vocab_size to feed token ids")
    if inputs.shape[-1] != input_size:
        raise ValueError(f"{owner} expects {input_size} input features (input_size={input_size}), "
                         f"got input of shape {tuple(inputs.shape)}")
    return inputs


def sequence_lengths(lengths, batch: int, steps: int) -> Tensor:
    """Validated CPU int64 lengths; all ``steps`` when ``lengths`` is ``None``."""
    if lengths is None:
        return torch.full((batch,), steps, dtype=torch.int64)
    return _checks.lengths_tensor(lengths, batch, steps)


def length_mask(lengths: Tensor, steps: int, device=None) -> Tensor:
    """``(batch, steps)`` boolean mask, ``True`` at valid steps."""
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


def classification_loss(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean cross-entropy over counted targets: not ``IGNORE_INDEX`` and inside ``mask``.

    ``logits`` is ``(..., classes)`` and ``targets`` the matching ``(...)`` integer tensor. With no
    counted target the loss is an exact zero that still backpropagates (into zero gradients).
    """
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"expected targets of shape {tuple(logits.shape[:-1])} (one class id per prediction), "
                         f"got {tuple(targets.shape)}")
    if targets.is_floating_point():
        raise TypeError(f"classification targets must be integer class ids, got {targets.dtype}")
    targets = targets.long()
    if mask is not None:
        targets = targets.masked_fill(~mask, IGNORE_INDEX)
    if not bool((targets != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def regression_loss(predictions: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error over the valid positions (``mask`` covers the leading dimensions)."""
    if targets.shape != predictions.shape:
        raise ValueError(f"expected regression targets of shape {tuple(predictions.shape)}, got {tuple(targets.shape)}")
    squared = (predictions - targets.to(predictions.dtype)) ** 2
    if mask is None:
        return squared.mean()
    weights = mask.to(squared.dtype).reshape(*mask.shape, *([1] * (squared.dim() - mask.dim()))).expand_as(squared)
    return (squared * weights).sum() / weights.sum().clamp_min(1)


def select_state(state, index: Tensor):
    """Pick batch rows ``index`` of a torch.nn-layout state (a tensor or a tuple, batch on dim 1)."""
    if isinstance(state, tuple):
        return tuple(select_state(part, index) for part in state)
    return state.index_select(1, index)


def last_layer_hidden(state) -> Tensor:
    """The top layer's ``h`` of a unidirectional torch.nn-layout state: ``(batch, hidden)``."""
    return (state[0] if isinstance(state, tuple) else state)[-1]


@dataclasses.dataclass
class SequenceInputConfig(RecurrentConfig):
    """Fields of models that read a sequence of tokens or feature vectors."""

    vocab_size: int = option(0, "input token vocabulary size; 0 means the inputs are float features", derived=True)
    embedding_dim: int = option(32, "embedding size when vocab_size > 0")
    input_size: int = option(1, "features per step when vocab_size == 0", derived=True)
    bidirectional: bool = option(False, "also read each sequence backwards")

    def validate(self) -> None:
        super().validate()
        check_non_negative_int("vocab_size", self.vocab_size)
        _checks.positive_int("embedding_dim", self.embedding_dim)
        _checks.positive_int("input_size", self.input_size)
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False, got {self.bidirectional!r}")


class SubwordEmbedding(nn.Module):
    """The mean vector of each word's hashed character n-grams (:mod:`rnnkit.data.subwords`), fastText's
    subword information: ``(batch, T, grams)`` bucket ids, 0 for padding, to ``(batch, T, dim)``; a word
    with no n-gram (a padded step) gets zeros."""

    def __init__(self, buckets: int, dim: int) -> None:
        super().__init__()
        self.buckets = buckets
        self.bag = nn.EmbeddingBag(buckets + 1, dim, mode="mean", padding_idx=0)

    def forward(self, subwords: Tensor, steps: tuple[int, int], owner: str) -> Tensor:
        if not isinstance(subwords, Tensor) or subwords.dim() != 3 or tuple(subwords.shape[:2]) != tuple(steps) \
                or subwords.is_floating_point():
            shape = tuple(subwords.shape) if isinstance(subwords, Tensor) else type(subwords).__name__
            raise ValueError(f"{owner} expects subwords of shape ({steps[0]}, {steps[1]}, grams), integer bucket "
                             f"ids for each input token, got {shape} (rnnkit.data.subwords.pad_subwords makes them)")
        if subwords.numel() and (int(subwords.min()) < 0 or int(subwords.max()) > self.buckets):
            raise ValueError(f"{owner} got subword ids in [{int(subwords.min())}, {int(subwords.max())}] but "
                             f"subword_buckets={self.buckets}; ids must be in [0, {self.buckets}] (0 = padding)")
        subwords = subwords.long()
        if torch.onnx.is_in_onnx_export():
            # ONNX has no bag with padding; the same mean, written out (more memory, fine at inference).
            present = (subwords > 0).unsqueeze(-1)
            vectors = F.embedding(subwords, self.bag.weight) * present
            return vectors.sum(2) / present.sum(2).clamp_min(1)
        flat = self.bag(subwords.reshape(-1, subwords.shape[-1]))
        return flat.reshape(*subwords.shape[:2], -1)


class SequenceEncoder(nn.Module):
    """Embedding (for tokens) + dropout + a batch-first recurrent layer, correct under padding.

    Returns ``(outputs, state, lengths, mask)``: outputs ``(batch, T, D * hidden)`` (zero past each
    length), the torch.nn-layout final state at each sequence's last valid step, CPU lengths and the
    ``(batch, T)`` validity mask.
    """

    def __init__(self, config: SequenceInputConfig, owner: str) -> None:
        super().__init__()
        self.owner, self.input_size = owner, config.input_size
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim) if config.vocab_size else None
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = make_rnn(config, config.embedding_dim if config.vocab_size else config.input_size,
                            bidirectional=config.bidirectional)

    @property
    def output_size(self) -> int:
        return self.rnn.output_size

    def embed(self, inputs: Tensor, added: Tensor | None = None) -> Tensor:
        """The ``(batch, T, features)`` the recurrence reads, before dropout; ``added`` (for example the
        words' subword vectors) is summed onto the token embeddings."""
        expected = "(batch, T) token ids" if self.embedding is not None else f"(batch, T, {self.input_size})"
        if not isinstance(inputs, Tensor) or inputs.dim() != (2 if self.embedding is not None else 3):
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"{self.owner} expects inputs of shape {expected}, got {shape}")
        x = embed_or_check(self.embedding, inputs, self.input_size, self.owner)
        return x if added is None else x + added

    def forward(self, inputs: Tensor, lengths=None, state=None, *, added: Tensor | None = None):
        x = self.dropout(self.embed(inputs, added))
        lengths = sequence_lengths(lengths, x.shape[0], x.shape[1])
        outputs, state = self.rnn(x, state, lengths=lengths)
        return outputs, state, lengths, length_mask(lengths, x.shape[1], x.device)
