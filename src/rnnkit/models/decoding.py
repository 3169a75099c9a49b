"""Greedy and beam-search decoding for any step-wise decoder.

A decoder is any object with ``step(tokens, state) -> (logits, state)`` (``tokens`` ``(batch,)``,
``logits`` ``(batch, vocab)``) and ``select_state(state, index)`` (pick batch rows, for beams):
:class:`~rnnkit.models.tagger.SequenceTagger`, :class:`~rnnkit.models.generator.SequenceGenerator`
and :class:`~rnnkit.models.seq2seq.Seq2Seq` all are. When the state has an ``attention`` attribute
(seq2seq), the weights of every emitted token are collected.

Scores are sums of log-probabilities ``log p(Y) = sum_t log p(y_t | y_<t)`` over the emitted tokens,
``EOS`` included. Beam search ranks its finished hypotheses by GNMT's length normalisation
(Wu et al. 2016, eq. 14): ``score(Y) = log p(Y) / lp(Y)`` with ``lp(Y) = ((5 + |Y|) / 6) ** alpha``;
``alpha = 0`` is the raw log-probability, larger ``alpha`` favours longer outputs. ``|Y|`` counts
the emitted tokens including ``EOS``. While searching, beams compete on raw ``log p``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit import _checks


@dataclass
class Decoded:
    """Decoding result.

    Attributes:
        tokens: ``(batch, L)`` emitted ids, ``pad_id`` after each sequence's ``EOS``.
        lengths: ``(batch,)`` emitted tokens per sequence, ``EOS`` included.
        log_probs: ``(batch,)`` ``log p(Y)``.
        scores: ``(batch,)`` the ranking score: ``log p(Y) / lp(Y)`` (equal to ``log_probs`` for greedy).
        attention: ``(batch, L, S)`` attention weights per emitted token, or ``None``.
    """

    tokens: Tensor
    lengths: Tensor
    log_probs: Tensor
    scores: Tensor
    attention: Tensor | None = None


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's ``lp(Y) = ((5 + |Y|) / 6) ** alpha``.

    >>> length_penalty(torch.tensor([1, 7]), 1.0).tolist()
    [1.0, 2.0]
    """
    return ((5.0 + lengths.to(torch.float64)) / 6.0) ** alpha


def batch_size_of(state) -> int:
    """Batch size of a decoder state: its ``batch_size`` attribute, or dim 1 of a torch.nn-layout state."""
    if hasattr(state, "batch_size"):
        return int(state.batch_size)
    if isinstance(state, tuple):
        state = state[0]
    if isinstance(state, Tensor) and state.dim() == 3:
        return state.shape[1]
    raise ValueError("cannot tell the batch size from the decoder state; pass batch_size=")


def _start(decoder, state, batch_size, bos_id, max_length, device):
    _checks.positive_int("max_length", max_length)
    batch = batch_size if batch_size is not None else batch_size_of(state)
    return batch, torch.full((batch,), bos_id, dtype=torch.int64, device=device)


def _device(decoder) -> torch.device:
    parameter = next(decoder.parameters(), None) if hasattr(decoder, "parameters") else None
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def _ban(log_probs: Tensor, banned: Sequence[int]) -> Tensor:
    """Tokens a decoder must never emit (``<pad>``, ``<bos>``, ...) made impossible; the others keep the
    model's own log-probabilities (scores stay the model's, not a renormalised distribution's)."""
    if not banned:
        return log_probs
    log_probs = log_probs.clone()
    log_probs[:, list(banned)] = float("-inf")
    return log_probs


def greedy_decode(decoder, state=None, *, bos_id: int, eos_id: int, max_length: int, pad_id: int = 0,
                  batch_size: int | None = None, banned: Sequence[int] = ()) -> Decoded:
    """Emit the most probable token at every step until ``EOS`` or ``max_length`` tokens.

    Args:
        decoder: an object with ``step`` and ``select_state`` (see the module docstring).
        state: the decoder's start state (``None`` allowed when ``batch_size`` is given).
        bos_id: first input token. eos_id: the token that ends a sequence. pad_id: filler after ``EOS``.
        max_length: most tokens emitted per sequence (``EOS`` included); longer outputs are cut.
        batch_size: needed only when it cannot be read from ``state``.
        banned: token ids never emitted (say ``<pad>``, ``<bos>`` and ``<unk>``).
    """
    batch, tokens = _start(decoder, state, batch_size, bos_id, max_length, _device(decoder))
    finished = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
    lengths = torch.zeros(batch, dtype=torch.int64, device=tokens.device)
    log_probs = torch.zeros(batch, dtype=torch.float64, device=tokens.device)
    emitted, attention = [], []
    for _ in range(max_length):
        logits, state = decoder.step(tokens, state)
        step_log_probs = _ban(torch.log_softmax(logits.double(), dim=-1), banned)
        tokens = step_log_probs.argmax(dim=-1)
        chosen = step_log_probs.gather(1, tokens[:, None]).squeeze(1)
        log_probs += torch.where(finished, torch.zeros_like(chosen), chosen)
        lengths += (~finished).long()
        emitted.append(torch.where(finished, torch.full_like(tokens, pad_id), tokens))
        if getattr(state, "attention", None) is not None:
            attention.append(state.attention)
        finished |= tokens == eos_id
        if bool(finished.all()):
            break
    return Decoded(torch.stack(emitted, 1), lengths, log_probs, log_probs.clone(),
                   torch.stack(attention, 1) if attention else None)


@torch.no_grad()
def beam_search(decoder, state=None, *, beam_size: int, bos_id: int, eos_id: int, max_length: int,
                alpha: float = 0.6, pad_id: int = 0, batch_size: int | None = None, banned: Sequence[int] = ()) -> Decoded:
    """Keep the ``beam_size`` most probable prefixes per sequence; return the best by normalised score.

    Each step extends every live beam by every token, keeps the ``beam_size`` best by ``log p``;
    a finished beam (it emitted ``EOS``) survives unchanged with its score. The search stops when
    every beam has finished or after ``max_length`` tokens; the final choice is the beam with the
    highest ``log p(Y) / lp(Y)`` (GNMT length normalisation, see the module docstring). With
    ``beam_size=1`` this is greedy decoding.

    Args:
        decoder, state, bos_id, eos_id, max_length, pad_id, batch_size, banned: as :func:`greedy_decode`.
        beam_size: beams per sequence. alpha: length-normalisation strength (0 = none).

    >>> from rnnkit.models.tagger import SequenceTagger
    >>> lm = SequenceTagger(vocab_size=8, output_size=0, hidden_size=8)
    >>> result = beam_search(lm, None, beam_size=3, bos_id=2, eos_id=3, max_length=5, batch_size=2)
    >>> result.tokens.shape[0], result.lengths.le(5).all().item()
    (2, True)
    """
    _checks.positive_int("beam_size", beam_size)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    batch, start = _start(decoder, state, batch_size, bos_id, max_length, _device(decoder))
    device, width = start.device, beam_size
    rows = torch.arange(batch, device=device)
    state = decoder.select_state(state, rows.repeat_interleave(width))
    tokens = start.repeat_interleave(width)
    scores = torch.full((batch, width), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    finished = torch.zeros(batch * width, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch * width, dtype=torch.int64, device=device)
    history = torch.zeros(batch * width, 0, dtype=torch.int64, device=device)
    attention = None
    for _ in range(max_length):
        logits, state = decoder.step(tokens, state)
        step_log_probs = _ban(torch.log_softmax(logits.double(), dim=-1), banned)
        vocab = step_log_probs.shape[-1]
        frozen = torch.full_like(step_log_probs[0], float("-inf"))
        frozen[eos_id] = 0.0  # a finished beam continues only with EOS, at no cost
        step_log_probs = torch.where(finished[:, None], frozen, step_log_probs)
        candidates = (scores.reshape(-1, 1) + step_log_probs).reshape(batch, width * vocab)
        # a dead beam (score -inf) may be fed a token whose distribution is all -inf: NaN, which topk
        # would rank first; keep it dead
        candidates = candidates.nan_to_num(nan=float("-inf"))
        scores, best = candidates.topk(width, dim=1)
        origin = (rows[:, None] * width + best // vocab).reshape(-1)
        tokens = (best % vocab).reshape(-1)
        state = decoder.select_state(state, origin)
        finished, lengths, history = finished[origin], lengths[origin], history[origin]
        step_attention = getattr(state, "attention", None)
        if step_attention is not None:  # weights were computed for the origin row, already reordered
            attention = step_attention[:, None] if attention is None else \
                torch.cat([attention[origin], step_attention[:, None]], 1)
        lengths += (~finished).long()
        history = torch.cat([history, torch.where(finished, torch.full_like(tokens, pad_id), tokens)[:, None]], 1)
        finished = finished | (tokens == eos_id)
        if bool(finished.all()):
            break
    normalised = scores / length_penalty(lengths.reshape(batch, width), alpha)
    pick = rows * width + normalised.argmax(dim=1)
    return Decoded(history[pick], lengths[pick], scores.reshape(-1)[pick], normalised.reshape(-1)[pick],
                   None if attention is None else attention[pick])
