"""A continuous cache: a language model's memory of the text it has just read (Grave et al., 2017).

"Improving Neural Language Models with a Continuous Cache" keeps the last ``size`` pairs of (the output
``h_i`` the model fed its softmax at position ``i``, the token ``x_{i+1}`` that then came) and, at position
``t``, turns them into a distribution over the next token:

    p_cache(w | h_t) = sum_{i = t - size}^{t - 1} 1[x_{i+1} = w] exp(theta h_t . h_i)  /  sum_i exp(theta h_t . h_i)

    p(w | h_t) = (1 - mix) p_model(w | h_t) + mix p_cache(w | h_t)

(eq. 2 and the linear interpolation of section 4). It has no trained parameters: a model that has learnt to
describe where it is in the text (``h_t``) can copy what followed the last time it was there, such as a name
spoken earlier in the scene, which a recurrent state of a few hundred numbers holds only approximately. This
is the attention a transformer learns over its context window, in a fixed form over outputs the recurrent
model already computes. ``size``, ``theta`` and ``mix`` are chosen on held-out text.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ContinuousCache:
    """Per-lane memory of the last ``size`` (output, next token) pairs of streamed text.

    Call it chunk by chunk, in order, with a lane's ``reset`` set where a new document starts (its memory is
    then emptied, as the recurrent state is). Each call scores the chunk's targets against the memory and the
    chunk's own earlier positions, then remembers them; a target equal to ``ignore_index`` (padding) is
    neither scored nor remembered.

    >>> cache = ContinuousCache(size=4, theta=1.0)
    >>> h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])   # one lane, 3 positions
    >>> p, seen = cache(h, torch.tensor([[7, 8, 7]]))
    >>> seen.tolist(), round(float(p[0, 2]), 4)                     # at t = 2, h_2 = h_0, whose next token was 7
    ([[False, True, True]], 0.7311)
    """

    def __init__(self, size: int, theta: float, ignore_index: int = -100) -> None:
        if size < 1 or not theta >= 0:
            raise ValueError(f"a continuous cache needs size >= 1 and theta >= 0, got size={size}, theta={theta}")
        self.size, self.theta, self.ignore_index = size, theta, ignore_index
        self.keys: Tensor | None = None  # (lanes, size, features)
        self.values: Tensor | None = None  # (lanes, size) next-token ids, ignore_index where empty

    def __call__(self, features: Tensor, targets: Tensor, reset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(p_cache of each target (lanes, T), whether the memory held anything there (lanes, T))``.

        ``features``: ``(lanes, T, F)`` the outputs fed to the softmax; ``targets``: ``(lanes, T)`` next tokens.
        """
        lanes, steps, width = features.shape
        if features.dtype != torch.float64:
            features = features.float()  # bf16 outputs would blur the similarities
        if self.keys is None or self.keys.shape[0] != lanes or self.keys.shape[2] != width:
            self.keys = features.new_zeros(lanes, self.size, width)
            self.values = torch.full((lanes, self.size), self.ignore_index, dtype=torch.long, device=features.device)
        if reset is not None:
            self.values = self.values.masked_fill(reset.to(self.values.device).view(-1, 1), self.ignore_index)
        keys = torch.cat([self.keys, features], dim=1)  # slot k holds position k - size of this chunk
        values = torch.cat([self.values, targets], dim=1)
        slot = torch.arange(self.size + steps, device=features.device).view(1, -1)
        position = torch.arange(steps, device=features.device).view(-1, 1) + self.size
        # Position t reads slots t - size .. t - 1: the last `size` pairs whose next token it has already seen.
        visible = (slot < position) & (slot >= position - self.size)
        visible = visible.unsqueeze(0) & (values != self.ignore_index).unsqueeze(1)
        scores = (self.theta * features @ keys.transpose(1, 2)).masked_fill(~visible, float("-inf"))
        seen = visible.any(dim=-1)
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a row with nothing visible is all -inf
        matches = values.unsqueeze(1) == targets.unsqueeze(2)
        probability = (weights * matches).sum(dim=-1)
        self.keys, self.values = keys[:, -self.size:].clone(), values[:, -self.size:].clone()
        return probability, seen & (targets != self.ignore_index)

    def distribution(self, features: Tensor, vocab_size: int) -> tuple[Tensor, Tensor]:
        """``(p_cache over the vocabulary (lanes, vocab_size), whether the memory held anything (lanes,))`` for
        one position's ``features`` ``(lanes, F)``, before its next token is known (what sampling needs)."""
        if self.keys is None:
            features = features if features.dtype == torch.float64 else features.float()
            return features.new_zeros(features.shape[0], vocab_size), features.new_zeros(features.shape[0]).bool()
        features = features.to(self.keys.dtype)
        visible = self.values != self.ignore_index
        scores = (self.theta * (self.keys @ features.unsqueeze(-1)).squeeze(-1)).masked_fill(~visible, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        probability = features.new_zeros(features.shape[0], vocab_size)
        probability.scatter_add_(1, self.values.clamp(min=0), weights)
        return probability, visible.any(dim=-1)

    def remember(self, features: Tensor, next_tokens: Tensor) -> None:
        """Add positions whose next tokens are now known: ``features`` ``(lanes, T, F)``, ``next_tokens`` ``(lanes, T)``."""
        self(features, next_tokens)
