"""Unaligned many-to-many: feature frames in, a shorter label sequence out, trained with CTC.

Connectionist temporal classification (Graves et al. 2006) lets a recurrent network emit one
distribution per frame over the labels plus a *blank*; a label sequence ``y`` is the sum over every
frame-level path ``pi`` that collapses to it (merge repeated labels, then drop blanks):

    p(y | x) = sum_{pi : B(pi) = y} prod_t p_t(pi_t),        loss = -log p(y | x)

computed by :func:`torch.nn.functional.ctc_loss`. The model is input-agnostic: frames of any feature
size (audio filterbanks, MFCCs, the columns of a text-line image), so speech and handwriting share it.

Conventions (shared by every caller):

- **Blank is class 0** (:data:`BLANK`). With a :class:`~rnnkit.data.vocab.Vocabulary` the blank is the
  padding id ``PAD_ID = 0``, so vocabulary ids are the CTC classes and ``num_classes = len(vocab)``.
- Targets are ``(batch, S)`` class ids padded with ``IGNORE_INDEX`` (or any negative value); the
  loss is the summed ``-log p(y|x)`` divided by the number of target labels (the trainer weights
  batches by that count).
- With ``subsample=k`` every ``k`` frames are stacked into one (Graves 2013 / Listen-Attend-Spell
  style pyramid reduction, done once at the input); :meth:`CTCRecognizer.output_lengths` gives the
  frames the recurrent layers see. A target needs at least ``len(y) + repeats(y)`` output frames
  (:func:`frames_needed`).

Decoding: :func:`greedy_decode` (best path) and :func:`prefix_beam_search` (Graves 2006 §3.2,
Hannun et al. 2014 "First-pass large vocabulary continuous speech recognition using bi-directional
recurrent DNNs", without a language model). Scores: :func:`edit_distance`, :func:`error_rate`
(character error rate on characters, word error rate on words).

>>> model = CTCRecognizer(input_size=13, num_classes=5, hidden_size=8)
>>> x, lengths = torch.randn(2, 20, 13), torch.tensor([20, 15])
>>> out = model(x, torch.tensor([[1, 2, 2], [3, -100, -100]]), lengths=lengths)
>>> out.output.shape, out.loss.dim()
(torch.Size([2, 20, 5]), 0)
>>> len(greedy_decode(out.output, model.output_lengths(lengths)))
2
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit import _checks
from rnnkit.models.common import RecurrentConfig, build_config, check_non_negative_int, make_rnn, option
from rnnkit.types import ModelOutput

#: The CTC blank's class id (also :data:`rnnkit.data.vocab.PAD_ID`).
BLANK = 0


@dataclasses.dataclass
class CTCRecognizerConfig(RecurrentConfig):
    """Configuration of :class:`CTCRecognizer` (the recurrent fields come from ``RecurrentConfig``)."""

    input_size: int = option(1, "features per input frame", derived=True)
    num_classes: int = option(2, "output classes including the blank (class 0)", derived=True)
    bidirectional: bool = option(True, "also read each sequence backwards")
    subsample: int = option(1, "stack this many consecutive frames into one before the recurrent layers")
    projection_size: int = option(0, "a linear projection of the (stacked) frames to this size first; 0: none")

    def validate(self) -> None:
        super().validate()
        _checks.positive_int("input_size", self.input_size)
        _checks.positive_int("subsample", self.subsample)
        check_non_negative_int("projection_size", self.projection_size)
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2 (the blank and at least one label), "
                             f"got {self.num_classes!r}")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False, got {self.bidirectional!r}")


class CTCRecognizer(nn.Module):
    """Frames -> stack ``subsample`` frames -> optional projection -> recurrent layers -> linear -> log-softmax.

    Args:
        config: a :class:`CTCRecognizerConfig`; keyword arguments override its fields.

    Shape:
        inputs: ``(batch, T, input_size)`` float frames, padded past ``lengths``.
        targets: ``(batch, S)`` class ids in ``[1, num_classes)``, padded with negative values.
        output: ``(batch, ceil(T / subsample), num_classes)`` log-probabilities (rows past each
        :meth:`output_lengths` are padding). Stateless: ``state`` is ``None``.
    """

    config_class = CTCRecognizerConfig

    def __init__(self, config: CTCRecognizerConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(CTCRecognizerConfig, config, overrides)
        stacked = config.input_size * config.subsample
        self.projection = nn.Linear(stacked, config.projection_size) if config.projection_size else None
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = make_rnn(config, config.projection_size or stacked, bidirectional=config.bidirectional)
        self.head = nn.Linear(self.rnn.output_size, config.num_classes)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Output frames for input lengths: ``ceil(length / subsample)``."""
        lengths = torch.as_tensor(lengths, dtype=torch.int64)
        return torch.div(lengths + self.config.subsample - 1, self.config.subsample, rounding_mode="floor")

    def _stack(self, inputs: Tensor) -> Tensor:
        k = self.config.subsample
        if k == 1:
            return inputs
        batch, steps, features = inputs.shape
        pad = (-steps) % k
        if pad:
            inputs = F.pad(inputs, (0, 0, 0, pad))
        return inputs.reshape(batch, (steps + pad) // k, k * features)

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                **extra) -> ModelOutput:
        size = self.config.input_size
        if not isinstance(inputs, Tensor) or inputs.dim() != 3 or inputs.shape[-1] != size \
                or not inputs.is_floating_point():
            got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"CTCRecognizer expects float inputs of shape (batch, T, {size}), got {got}")
        batch, steps = inputs.shape[:2]
        lengths = torch.full((batch,), steps, dtype=torch.int64) if lengths is None else \
            _checks.lengths_tensor(lengths, batch, steps)
        frames = self.output_lengths(lengths)
        x = self._stack(inputs)
        if self.projection is not None:
            x = self.projection(x)
        outputs, _ = self.rnn(self.dropout(x), state, lengths=frames)
        log_probs = F.log_softmax(self.head(self.dropout(outputs)).float(), dim=-1)
        loss = None if targets is None else ctc_loss(log_probs, frames, targets)
        return ModelOutput(log_probs, loss, None)


def frames_needed(labels: Sequence[int]) -> int:
    """The fewest frames a CTC path for ``labels`` needs: one per label, plus a blank between repeats.

    >>> frames_needed([1, 2, 2, 3])
    5
    """
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def ctc_loss(log_probs: Tensor, frames: Tensor, targets: Tensor) -> Tensor:
    """Summed ``-log p(y|x)`` over the batch divided by the number of target labels.

    ``log_probs`` ``(batch, T, C)``, ``frames`` ``(batch,)`` valid output frames, ``targets``
    ``(batch, S)`` padded with negative values. Raises ``ValueError`` naming the first sequence whose
    target cannot fit its frames (CTC would give an infinite loss).
    """
    if targets.dim() != 2 or targets.shape[0] != log_probs.shape[0] or targets.is_floating_point():
        raise ValueError(f"expected integer CTC targets of shape ({log_probs.shape[0]}, S) padded with -100, "
                         f"got {tuple(targets.shape)} {targets.dtype}")
    valid = targets >= 0
    target_lengths = valid.sum(1).cpu()
    labels = targets[valid]
    if labels.numel() and (int(labels.min()) == BLANK or int(labels.max()) >= log_probs.shape[-1]):
        raise ValueError(f"CTC target ids must be in [1, {log_probs.shape[-1]}) (0 is the blank), "
                         f"got [{int(labels.min())}, {int(labels.max())}]")
    frames = frames.cpu()
    rows = targets.cpu().tolist()
    for i, (row, n) in enumerate(zip(rows, frames.tolist())):
        needed = frames_needed([t for t in row if t >= 0])
        if needed > n:
            raise ValueError(f"sequence {i}: its target needs at least {needed} output frames, got {n}; "
                             "use shorter targets, longer inputs or a smaller subsample")
    total = F.ctc_loss(log_probs.transpose(0, 1), labels, frames, target_lengths, blank=BLANK, reduction="sum",
                       zero_infinity=False)
    return total / max(int(target_lengths.sum()), 1)


# ------------------------------------------------------------------------------------ decoding
def greedy_decode(log_probs: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
    """Best-path decoding: the most likely class per frame, repeats merged, blanks dropped.

    ``log_probs`` ``(batch, T, C)``; ``lengths`` the valid frames of each row (default all).

    >>> lp = torch.log(torch.tensor([[[.1, .9, 0], [.1, .9, 0], [.8, .1, .1], [.1, .9, 0], [.2, .1, .7]]]))
    >>> greedy_decode(lp)
    [[1, 1, 2]]
    """
    best = log_probs.argmax(-1).cpu().tolist()
    lengths = [len(row) for row in best] if lengths is None else torch.as_tensor(lengths).tolist()
    decoded = []
    for row, n in zip(best, lengths):
        labels, previous = [], BLANK
        for c in row[:n]:
            if c != previous and c != BLANK:
                labels.append(c)
            previous = c
        decoded.append(labels)
    return decoded


def transcript(vocab, labels: Sequence[int]) -> str:
    """The text of decoded CTC ``labels`` (``vocab``: a :class:`rnnkit.data.Vocabulary`). Every label counts:
    CTC has no end-of-sequence, so an ``<eos>`` class the network emits (an untrained one does) is dropped like the
    other specials, never read as the end of the text (that hid the insertions after it from CER and WER)."""
    return vocab.decode(labels, stop_at_eos=False)


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    top = max(a, b)
    return top + math.log(math.exp(a - top) + math.exp(b - top))


def prefix_beam_search(log_probs: Tensor, beam_size: int = 8) -> list[tuple[list[int], float]]:
    """Prefix beam search over one sequence's ``(T, C)`` log-probabilities (no language model).

    Each prefix keeps two log-scores: paths ending in a blank (``p_b``) and paths ending in its last
    label (``p_nb``). At frame ``t``, for a kept prefix ``l`` with last label ``e``:

    - blank:           ``p_b(l)   += (p_b + p_nb)(l) * y_t(blank)``
    - repeat ``e``:     ``p_nb(l)  += p_nb(l) * y_t(e)`` (merged) and ``p_nb(l+e) += p_b(l) * y_t(e)``
    - another ``c``:    ``p_nb(l+c) += (p_b + p_nb)(l) * y_t(c)``

    then the ``beam_size`` prefixes with the largest ``p_b + p_nb`` are kept. With a beam as large as
    the number of prefixes the scores are exact ``log p(l | x)`` (tested by enumerating all paths).

    Returns:
        ``(labels, log p)`` pairs, best first (at most ``beam_size``).
    """
    _checks.positive_int("beam_size", beam_size)
    table = log_probs.detach().double().cpu().tolist()
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, -math.inf)}
    for frame in table:
        step: dict[tuple, list[float]] = {}

        def add(prefix, blank=-math.inf, label=-math.inf):
            entry = step.setdefault(prefix, [-math.inf, -math.inf])
            entry[0], entry[1] = _logsumexp(entry[0], blank), _logsumexp(entry[1], label)

        for prefix, (p_b, p_nb) in beams.items():
            total = _logsumexp(p_b, p_nb)
            add(prefix, blank=total + frame[BLANK])
            last = prefix[-1] if prefix else None
            for c, y in enumerate(frame):
                if c == BLANK or y == -math.inf:
                    continue
                if c == last:
                    add(prefix, label=p_nb + y)
                    add(prefix + (c,), label=p_b + y)
                else:
                    add(prefix + (c,), label=total + y)
        ranked = sorted(((prefix, scores) for prefix, scores in step.items() if max(scores) > -math.inf),
                        key=lambda item: (-_logsumexp(*item[1]), item[0]))
        beams = {prefix: tuple(scores) for prefix, scores in ranked[:beam_size]}
    return [(list(prefix), _logsumexp(*scores)) for prefix, scores in beams.items()]


def beam_decode(log_probs: Tensor, lengths: Tensor | None = None, beam_size: int = 8) -> list[list[int]]:
    """:func:`prefix_beam_search`'s best labels for every row of ``(batch, T, C)`` log-probabilities."""
    lengths = [log_probs.shape[1]] * log_probs.shape[0] if lengths is None else torch.as_tensor(lengths).tolist()
    return [prefix_beam_search(row[:n], beam_size)[0][0] for row, n in zip(log_probs, lengths)]


# ------------------------------------------------------------------------------------- scoring
def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, insertions and deletions turning one into the other.

    >>> edit_distance("kitten", "sitting")
    3
    """
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, start=1):
        current = [i]
        for j, h in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> float:
    """Total edit distance over total reference length (characters: CER, word lists: WER).

    >>> error_rate([["one", "two"], ["three"]], [["one"], ["three", "four"]])
    0.6666666666666666
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    errors = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    return errors / max(sum(len(r) for r in references), 1)


def text_error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """``{"cer", "wer"}`` of texts: characters of the space-normalised texts, and whitespace-split words."""
    refs, hyps = [" ".join(r.split()) for r in references], [" ".join(h.split()) for h in hypotheses]
    return {"cer": error_rate(refs, hyps), "wer": error_rate([r.split() for r in refs], [h.split() for h in hyps])}
