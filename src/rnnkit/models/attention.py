"""Attention: a query scores every key, the softmax of the scores weights the keys into a context.

For a query ``q`` (the decoder state) and keys ``k_s`` (the encoder outputs, ``s = 1..S``):

    e_s = score(q, k_s),   a = softmax(e) over the valid s,   context = sum_s a_s k_s

with the scores

- additive (Bahdanau et al. 2015): ``score(q, k) = v^T tanh(W_q q + W_k k)``
- dot (Luong et al. 2015): ``score(q, k) = q^T k`` (needs ``query_size == key_size``)
- general (Luong et al. 2015): ``score(q, k) = q^T W k``

Padded keys (``mask`` ``False``) get weight exactly zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Attention(nn.Module):
    """Base class: subclasses define ``score(query, keys) -> (batch, S)``.

    Shape:
        query: ``(batch, query_size)``; keys: ``(batch, S, key_size)``; mask: ``(batch, S)`` bool or ``None``.

    Returns:
        ``(context, weights)``: ``(batch, key_size)`` and ``(batch, S)``, weights summing to 1 over valid keys.
    """

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.query_size, self.key_size = query_size, key_size

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if query.shape[-1] != self.query_size or keys.shape[-1] != self.key_size:
            raise ValueError(f"{type(self).__name__} expects query (batch, {self.query_size}) and keys "
                             f"(batch, S, {self.key_size}), got {tuple(query.shape)} and {tuple(keys.shape)}")
        scores = self.score(query, keys)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1), weights


class AdditiveAttention(Attention):
    """Bahdanau's additive attention: ``score(q, k) = v^T tanh(W_q q + W_k k)``.

    Args:
        query_size, key_size: features of the query and of each key.
        attention_size: rows of ``W_q`` and ``W_k`` (length of ``v``).

    >>> attention = AdditiveAttention(4, 6, attention_size=8)
    >>> context, weights = attention(torch.randn(2, 4), torch.randn(2, 5, 6))
    >>> context.shape, weights.shape, bool(torch.allclose(weights.sum(-1), torch.ones(2)))
    (torch.Size([2, 6]), torch.Size([2, 5]), True)
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int = 64) -> None:
        super().__init__(query_size, key_size)
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)
        self.key_proj = nn.Linear(key_size, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return self.v(torch.tanh(self.query_proj(query).unsqueeze(1) + self.key_proj(keys))).squeeze(-1)


class DotAttention(Attention):
    """Luong's dot attention: ``score(q, k) = q^T k``; no parameters.

    >>> context, weights = DotAttention(3, 3)(torch.ones(1, 3), torch.eye(3).unsqueeze(0))
    >>> weights
    tensor([[0.3333, 0.3333, 0.3333]])
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int = 0) -> None:
        if query_size != key_size:
            raise ValueError(f"dot attention needs query_size == key_size, got {query_size} and {key_size}; "
                             "use attention='general' or 'bahdanau' (e.g. with a bidirectional encoder)")
        super().__init__(query_size, key_size)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(keys, query.unsqueeze(2)).squeeze(2)


class GeneralAttention(Attention):
    """Luong's general attention: ``score(q, k) = q^T W k`` with ``W`` of shape ``(query_size, key_size)``."""

    def __init__(self, query_size: int, key_size: int, attention_size: int = 0) -> None:
        super().__init__(query_size, key_size)
        self.key_proj = nn.Linear(key_size, query_size, bias=False)  # W k

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(self.key_proj(keys), query.unsqueeze(2)).squeeze(2)


#: ``attention`` config values.
ATTENTION: dict[str, type[Attention]] = {
    "bahdanau": AdditiveAttention,
    "dot": DotAttention,
    "general": GeneralAttention,
}


class AttentionPooling(nn.Module):
    """Summarise a sequence as an attention-weighted average with a learned query (Yang et al. 2016).

    ``e_t = v^T tanh(W h_t + b)``, ``a = softmax(e)`` over valid steps, summary ``= sum_t a_t h_t``.

    Shape:
        outputs: ``(batch, T, features)``; mask: ``(batch, T)`` bool. Returns ``(batch, features)``
        and the weights ``(batch, T)``.
    """

    def __init__(self, features: int, attention_size: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(features, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def forward(self, outputs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.v(torch.tanh(self.proj(outputs))).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights.unsqueeze(1), outputs).squeeze(1), weights
