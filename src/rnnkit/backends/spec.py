"""What a backend is told about a layer: a frozen description, with the parameters passed beside it.

Backends never see the layer object. ``RecurrentLayer.describe()`` gives a :class:`LayerSpec` (the
cell class, sizes, stacking, merge, dropout, the regularisers in effect, the training flag, the step
options and the parameters' device and dtype) and ``RecurrentLayer.parameter_groups()`` the
parameters: one mapping by name per layer and direction, in torch.nn's order (layer 0, layer 0
reverse, layer 1, ...), each mapping in the order the cell declares them (torch.nn's flat order for
the classic cells). A backend implements::

    supports(spec) -> bool       # can it compute this layer?
    preferred(spec) -> bool      # should backend="auto" pick it?
    run(spec, params, x, state, lengths) -> (output, final_state)

A description is a value: equal layers in the same mode give equal (and hashable) descriptions,
and nothing a backend does can change the layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnkit.cells.base import RecurrentCell
from rnnkit.loop import Regularization

#: One mapping of a cell's parameters by name per layer and direction (``layer.parameter_groups()``).
ParamGroups = list[Mapping[str, Tensor]]


@dataclass(frozen=True)
class LayerSpec:
    """A frozen description of a recurrent layer, as its backends receive it.

    ``options`` are the cell's step options (``layer.step_options()``) as sorted ``(name, value)``
    pairs; :attr:`step_options` gives them back as a dict. ``regularization`` is what
    ``layer.regularization()`` returns at the time of the call (``None``: the plain recurrence).
    ``device_type`` and ``dtype`` are those of the layer's parameters.
    """

    cell: type[RecurrentCell]
    layer_name: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    merge: str = "concat"
    proj_size: int = 0
    dropout: float = 0.0
    training: bool = False
    regularization: Regularization | None = None
    options: tuple[tuple[str, Any], ...] = ()
    device_type: str = "cpu"
    dtype: torch.dtype = torch.float32

    @property
    def step_options(self) -> dict:
        """Keyword arguments for ``cell.recurrence`` (a fresh dict)."""
        return dict(self.options)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def torch_kernel(self) -> str | None:
        """The name of torch's fused kernel computing this cell (``'LSTM'``, ``'GRU'``, ...), or None."""
        return self.cell.torch_kernel(self.step_options)

    def describe(self) -> str:
        """``'LSTM (cell LSTMCell)'``: for messages."""
        return f"{self.layer_name} (cell {self.cell.__name__})"


def flat_weights(params: ParamGroups) -> list[Tensor]:
    """The parameters in torch.nn's flat order (per layer and direction: w_ih, w_hh, b_ih, b_hh[, w_hr])."""
    return [tensor for group in params for tensor in group.values()]


__all__ = ["LayerSpec", "ParamGroups", "flat_weights"]
