"""Types shared by every layer of rnnkit: what a task model returns, and the call convention the trainer relies on.

A task model is a ``torch.nn.Module`` called as ``model(inputs, targets=None, *, lengths=None,
state=None, **extra)``. It returns a :class:`ModelOutput`: the prediction, the loss when ``targets``
were given (a scalar, averaged over the items that count: padded positions and targets equal to
``IGNORE_INDEX`` are left out), and the final recurrent state when the model is stateful (language
models and taggers, so truncated BPTT can carry it into the next chunk). States follow torch.nn's
layout: a tensor or a tuple of tensors of shape ``(num_layers * num_directions, batch, hidden)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

#: Target value that contributes nothing to a loss (torch's ``cross_entropy`` default).
IGNORE_INDEX = -100


@dataclass
class ModelOutput:
    """A task model's result.

    Attributes:
        output: logits or predictions; the shape is documented by each model.
        loss: the mean loss over the counted targets, or ``None`` when no targets were given.
        state: the recurrent state after the last valid step, or ``None`` for stateless models.
        attention: attention weights for models that attend (for plotting), else ``None``:
            ``(batch, T)`` for attention pooling, ``(batch, target_steps, source_steps)`` for seq2seq.
    """

    output: Tensor
    loss: Tensor | None = None
    state: Any = None
    attention: Tensor | None = None
