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

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


class ContinuousCache:
    """Per-lane memory of the last ``size`` (output, next token) pairs of streamed text, and the mixture.

    Call it chunk by chunk, in order, with a lane's ``reset`` set where a new document starts (its memory is
    then emptied, as the recurrent state is). Each call scores the chunk's targets against the memory and the
    chunk's own earlier positions, then remembers them. A target equal to ``ignore_index`` (padding) is not
    scored and is never visible, though it takes its place in the window (padding only ends a document, which
    a reset follows). The memory is a ring: remembering a position costs its own features, not a copy of the
    memory; a lane holds ``size`` x features numbers.

    >>> cache = ContinuousCache(size=4, theta=1.0, mix=0.5)
    >>> h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])   # one lane, 3 positions
    >>> p, seen = cache(h, torch.tensor([[7, 8, 7]]))
    >>> seen.tolist(), round(float(p[0, 2]), 4)                     # at t = 2, h_2 = h_0, whose next token was 7
    ([[False, True, True]], 0.7311)
    """

    def __init__(self, size: int, theta: float, mix: float = 0.5, ignore_index: int = -100) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"a continuous cache needs an integer size >= 1, got {size!r}")
        if not (isinstance(theta, (int, float)) and math.isfinite(theta) and theta >= 0):
            raise ValueError(f"a continuous cache needs a finite theta >= 0, got {theta!r}")
        if not (isinstance(mix, (int, float)) and 0 <= mix <= 1):
            raise ValueError(f"the cache's mix must be in [0, 1], got {mix!r}")
        self.size, self.theta, self.mix, self.ignore_index = size, float(theta), float(mix), ignore_index
        self.clear()

    def clear(self) -> None:
        """Forget everything: the next call starts a new text in every lane."""
        self.keys: Tensor | None = None  # (lanes, size, features), a ring
        self.values: Tensor | None = None  # (lanes, size) next-token ids, ignore_index where empty
        self.positions: Tensor | None = None  # (size,) the stream position each slot holds; -size - 1 if none
        self.position = 0  # positions remembered so far (every lane advances together)

    def _ensure(self, features: Tensor) -> Tensor:
        features = features if features.dtype == torch.float64 else features.float()  # bf16 would blur similarities
        lanes, width = features.shape[0], features.shape[-1]
        if self.keys is None or self.keys.shape[0] != lanes or self.keys.shape[2] != width:
            self.keys = features.new_zeros(lanes, self.size, width)
            self.values = torch.full((lanes, self.size), self.ignore_index, dtype=torch.long, device=features.device)
            self.positions = torch.full((self.size,), -self.size - 1, dtype=torch.long, device=features.device)
            self.position = 0
        return features.to(self.keys.dtype)

    def __call__(self, features: Tensor, targets: Tensor, reset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(p_cache of each target (lanes, T), whether anything was visible there (lanes, T))``.

        ``features``: ``(lanes, T, F)`` the outputs fed to the softmax; ``targets``: ``(lanes, T)`` next tokens.
        """
        features = self._ensure(features)
        steps = features.shape[1]
        if reset is not None:
            self.values = self.values.masked_fill(reset.to(self.values.device).view(-1, 1), self.ignore_index)
        # Position P + t reads what is at most `size` positions back: the memory's slots from P + t - size on,
        # and the chunk's own positions t - size .. t - 1.
        now = self.position + torch.arange(steps, device=features.device).view(-1, 1)
        from_memory = (self.positions.view(1, -1) >= now - self.size).unsqueeze(0)
        from_memory = from_memory & (self.values != self.ignore_index).unsqueeze(1)
        offset = torch.arange(steps, device=features.device)
        from_chunk = (offset.view(1, -1) < offset.view(-1, 1)) & (offset.view(1, -1) >= offset.view(-1, 1) - self.size)
        from_chunk = from_chunk.unsqueeze(0) & (targets != self.ignore_index).unsqueeze(1)
        visible = torch.cat([from_memory, from_chunk], dim=-1)
        scores = self.theta * torch.cat([features @ self.keys.transpose(1, 2), features @ features.transpose(1, 2)], -1)
        weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).nan_to_num(0.0)  # none visible
        matches = torch.cat([self.values, targets], dim=1).unsqueeze(1) == targets.unsqueeze(2)
        probability = (weights * matches).sum(dim=-1)
        self.remember(features, targets)
        return probability, visible.any(dim=-1) & (targets != self.ignore_index)

    def remember(self, features: Tensor, next_tokens: Tensor) -> None:
        """Add positions whose next tokens are now known: ``features`` ``(lanes, T, F)``, ``next_tokens``
        ``(lanes, T)``."""
        features = self._ensure(features)
        steps = features.shape[1]
        kept = min(steps, self.size)
        slots = (self.position + torch.arange(steps - kept, steps, device=features.device)) % self.size
        self.keys[:, slots] = features[:, steps - kept:]
        self.values[:, slots] = next_tokens[:, steps - kept:].to(self.values.device)
        self.positions[slots] = self.position + torch.arange(steps - kept, steps, device=features.device)
        self.position += steps

    def distribution(self, features: Tensor, vocab_size: int) -> tuple[Tensor, Tensor]:
        """``(p_cache over the vocabulary (lanes, vocab_size), whether the memory held anything (lanes,))`` for
        one position's ``features`` ``(lanes, F)``, before its next token is known (what sampling needs)."""
        features = self._ensure(features.unsqueeze(1))[:, 0]
        visible = self.values != self.ignore_index  # the ring holds the last `size` positions exactly
        scores = self.theta * (self.keys @ features.unsqueeze(-1)).squeeze(-1)
        weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).nan_to_num(0.0)
        probability = features.new_zeros(features.shape[0], vocab_size)
        probability.scatter_add_(1, self.values.clamp(min=0), weights)
        return probability, visible.any(dim=-1)



def mixed_log_probability(model_log_p: Tensor, cached: Tensor, seen: Tensor, mix: float) -> Tensor:
    """``log((1 - mix) p_model + mix p_cache)`` in float64, and the model's own where ``seen`` is false (nothing
    remembered yet: a cache that held nothing does not dilute the model)."""
    model_log_p = model_log_p.double()
    mixed = torch.log((1 - mix) * model_log_p.exp() + mix * cached.double())
    return torch.where(seen, mixed, model_log_p)


@contextmanager
def head_inputs(model) -> Iterator[list[Tensor]]:
    """Within the block, every input of ``model.head`` (the outputs its softmax reads, which the cache
    remembers) is appended to the list yielded."""
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Module):
        raise TypeError(f"{type(model).__name__} has no `head` layer whose input could be read; "
                        "a SequenceTagger language model has one")
    seen: list[Tensor] = []
    hook = head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    try:
        yield seen
    finally:
        hook.remove()
