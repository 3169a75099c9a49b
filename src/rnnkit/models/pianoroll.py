"""Aligned many-to-many with independent Bernoulli outputs: a language model over piano-roll frames.

The classic RNN baseline of polyphonic music modelling (Boulanger-Lewandowski et al. 2012): the
network reads frame ``x_t`` (which keys sound, a 0/1 vector of ``keys``) and predicts every key of the
next frame independently, ``p(x_{t+1,k} = 1) = sigmoid(W o_t + b)_k``. The loss is the negative
log-likelihood of a frame, summed over the keys and averaged over the valid frames, so it is directly
the "NLL per time step" the benchmark reports (in nats)::

    NLL_t = -sum_k [ x_{t+1,k} log p_k + (1 - x_{t+1,k}) log(1 - p_k) ]
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit import _checks
from rnnkit.models.common import (
    RecurrentConfig, build_config, length_mask, make_rnn, option, select_state, sequence_lengths,
)
from rnnkit.types import ModelOutput


@dataclasses.dataclass
class PianoRollModelConfig(RecurrentConfig):
    """Configuration of :class:`PianoRollModel`."""

    keys: int = option(88, "keys per frame (88: the piano, MIDI 21-108)", derived=True)

    def validate(self) -> None:
        super().validate()
        _checks.positive_int("keys", self.keys)


def frame_nll(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over valid frames of the Bernoulli NLL summed over keys (nats per frame).

    ``logits`` and ``targets`` are ``(batch, T, keys)``; ``mask`` ``(batch, T)`` marks valid frames.
    """
    if targets.shape != logits.shape:
        raise ValueError(f"expected targets of shape {tuple(logits.shape)} (0/1 per key and frame), "
                         f"got {tuple(targets.shape)}")
    per_frame = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none").sum(-1)
    if mask is None:
        return per_frame.mean()
    weights = mask.to(per_frame.dtype)
    return (per_frame * weights).sum() / weights.sum().clamp_min(1)


class PianoRollModel(nn.Module):
    """Recurrent layer over 0/1 frames with one sigmoid output per key: ``p_t = sigmoid(W o_t + b)``.

    Args:
        config: a :class:`PianoRollModelConfig`; keyword arguments override its fields.

    Shape:
        inputs: ``(batch, T, keys)`` frames (floats 0/1), padded past ``lengths``.
        targets: ``(batch, T, keys)`` the frames to predict (usually the inputs shifted by one).
        output: ``(batch, T, keys)`` logits; ``loss``: NLL per frame (see :func:`frame_nll`);
        ``state``: the state at each sequence's last valid step.

    >>> model = PianoRollModel(keys=4, hidden_size=8)
    >>> frames = torch.tensor([[[1., 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 1]]])
    >>> out = model(frames[:, :-1], frames[:, 1:])
    >>> out.output.shape, bool(out.loss > 0)
    (torch.Size([1, 2, 4]), True)
    """

    config_class = PianoRollModelConfig

    def __init__(self, config: PianoRollModelConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(PianoRollModelConfig, config, overrides)
        self.rnn = make_rnn(config, config.keys)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.keys)

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                **extra) -> ModelOutput:
        keys = self.config.keys
        if not isinstance(inputs, Tensor) or inputs.dim() != 3 or inputs.shape[-1] != keys:
            got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"PianoRollModel expects frames of shape (batch, T, {keys}), got {got}")
        inputs = inputs.float() if not inputs.is_floating_point() else inputs
        lengths = sequence_lengths(lengths, inputs.shape[0], inputs.shape[1])
        outputs, state = self.rnn(inputs, state, lengths=lengths)
        logits = self.head(self.dropout(outputs))
        loss = None
        if targets is not None:
            loss = frame_nll(logits, targets, length_mask(lengths, inputs.shape[1], inputs.device))
        return ModelOutput(logits, loss, state)

    def prime(self, frames: Tensor, state=None) -> tuple[Tensor, object]:
        """Run frames ``(batch, P, keys)`` in one call: ``(logits of the next frame (batch, keys), state)``."""
        result = self.forward(frames, state=state)
        return result.output[:, -1], result.state

    def step(self, frame: Tensor, state=None) -> tuple[Tensor, object]:
        """One frame ``(batch, keys)`` -> ``(logits of the next frame, state)``."""
        return self.prime(frame.unsqueeze(1), state)

    def select_state(self, state, index: Tensor):
        return None if state is None else select_state(state, index)

    @torch.no_grad()
    def generate(self, prefix: Tensor, steps: int, *, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """Sample ``steps`` frames after ``prefix`` ``(batch, P, keys)`` (P >= 1; an all-zero frame
        starts from silence); each key ~ Bernoulli(sigmoid(logit / temperature)), 0 = the likelier value.

        Returns ``(batch, steps, keys)`` 0/1 floats (the prefix not repeated).
        """
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"temperature must be a number >= 0 (0: each key's likelier value), got {temperature!r}")
        logits, state = self.prime(prefix.float())
        frames = []
        for _ in range(steps):
            if temperature == 0:
                frame = (logits > 0).float()
            else:
                probs = torch.sigmoid(logits.double() / temperature)
                frame = torch.bernoulli(probs, generator=generator).float()
            frames.append(frame)
            logits, state = self.step(frame, state)
        return torch.stack(frames, dim=1) if frames else prefix.new_zeros(prefix.shape[0], 0, prefix.shape[2])
