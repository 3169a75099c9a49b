"""Aligned many-to-many: one prediction per input step (taggers, language models, per-step forecasts).

As a language model the targets are the inputs shifted by one (``targets[:, t] = inputs[:, t + 1]``)
and ``output_size=0`` makes the output the vocabulary; the final state comes back in every result so truncated
BPTT can carry it into the next chunk, and :meth:`SequenceTagger.prime` / :meth:`SequenceTagger.step`
let ``rnnkit.sampling`` stream tokens without re-running the prefix.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.types import ModelOutput
from rnnkit.models.common import (
    TASKS, SequenceEncoder, SequenceInputConfig, build_config, check_non_negative_int, classification_loss,
    option, regression_loss, select_state,
)


@dataclasses.dataclass
class SequenceTaggerConfig(SequenceInputConfig):
    """Configuration of :class:`SequenceTagger`."""

    output_size: int = option(2, "tags / classes / forecast features per step; 0 means vocab_size (a language model)", derived=True)
    task: str = option("classification", "'classification' (cross-entropy per step) or 'regression' (MSE per step)", derived=True)

    def validate(self) -> None:
        super().validate()
        check_non_negative_int("output_size", self.output_size)
        if self.output_size == 0 and self.vocab_size == 0:
            raise ValueError("output_size=0 means 'same as vocab_size', but vocab_size=0 (feature inputs); "
                             "set output_size to the number of tags or forecast features")
        _checks.choice("task", self.task, TASKS)

    @property
    def num_outputs(self) -> int:
        return self.output_size or self.vocab_size


class SequenceTagger(nn.Module):
    """Recurrent layer with a linear head on every step: ``y_t = W o_t + b``.

    Args:
        config: a :class:`SequenceTaggerConfig`; keyword arguments override its fields.

    Shape:
        inputs: ``(batch, T)`` token ids or ``(batch, T, input_size)`` features, padded past ``lengths``.
        targets: ``(batch, T)`` class ids (``IGNORE_INDEX`` and steps past ``lengths`` are skipped) or
        ``(batch, T, output_size)`` values.
        state: initial state in torch.nn layout (e.g. the previous chunk's, detached).
        output: ``(batch, T, output_size)``; ``state`` in the result: the state at each sequence's last
        valid step.

    >>> lm = SequenceTagger(vocab_size=12, output_size=0, hidden_size=16, cell="lstm")
    >>> tokens = torch.randint(4, 12, (2, 9))
    >>> out = lm(tokens[:, :-1], tokens[:, 1:])
    >>> out.output.shape, out.state[0].shape
    (torch.Size([2, 8, 12]), torch.Size([1, 2, 16]))
    """

    config_class = SequenceTaggerConfig

    def __init__(self, config: SequenceTaggerConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(SequenceTaggerConfig, config, overrides)
        self.encoder = SequenceEncoder(config, "SequenceTagger")
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.output_size, config.num_outputs)

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                **extra) -> ModelOutput:
        outputs, final, _, mask = self.encoder(inputs, lengths, state)
        output = self.head(self.dropout(outputs))
        loss = None
        if targets is not None:
            if self.config.task == "classification":
                loss = classification_loss(output, targets, mask)
            else:
                loss = regression_loss(output, targets.reshape(output.shape) if targets.numel() == output.numel()
                                       else targets, mask)
        return ModelOutput(output, loss, final)

    def _check_causal(self) -> None:
        if self.config.bidirectional:
            raise ValueError("a bidirectional SequenceTagger reads future steps, so it cannot run step by step; "
                             "use bidirectional=False for language models and streaming")

    def prime(self, inputs: Tensor, state=None, *, lengths=None) -> tuple[Tensor, object]:
        """Run a prefix in one call: ``(output at each sequence's last valid step (batch, out), state)``."""
        self._check_causal()
        result = self.forward(inputs, lengths=lengths, state=state)
        last = result.output.shape[1] - 1 if lengths is None else torch.as_tensor(lengths).to(inputs.device) - 1
        rows = torch.arange(result.output.shape[0], device=result.output.device)
        return result.output[rows, last], result.state

    def step(self, inputs: Tensor, state=None) -> tuple[Tensor, object]:
        """One step: ``inputs`` ``(batch,)`` token ids or ``(batch, input_size)`` -> ``((batch, out), state)``."""
        self._check_causal()
        result = self.forward(inputs.unsqueeze(1), state=state)
        return result.output[:, 0], result.state

    def select_state(self, state, index: Tensor):
        """Batch rows ``index`` of a state (for beam search); ``None`` stays ``None``."""
        return None if state is None else select_state(state, index)
