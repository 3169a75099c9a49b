"""Backends that compose layers from a single-direction time loop: the reference and the fused engine."""

from __future__ import annotations

from collections.abc import Callable

from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import loop
from rnnkit.stacking import run_stack


class LoopBackend:
    """Runs ``layers.run_stack`` with a given ``recur`` (padded input; packed input is unpacked first)."""

    def __init__(self, name: str, recur: Callable, supports: Callable = lambda layer: True,
                 preferred: Callable | None = None) -> None:
        self.name, self._recur, self._supports = name, recur, supports
        self._preferred = preferred or supports

    def supports(self, layer) -> bool:
        return self._supports(layer)

    def preferred(self, layer) -> bool:
        """Whether ``backend="auto"`` should pick this backend for ``layer``."""
        return self._preferred(layer)

    def run(self, layer, x, state, lengths):
        packed = isinstance(x, PackedSequence)
        if packed:
            # pad_packed_sequence restores the caller's batch order, the order of ``state``.
            sorted_input = x.sorted_indices is None
            x, lengths = pad_packed_sequence(x)
        output, final = run_stack(
            layer.cell_type,
            x,
            state,
            layer.parameter_groups(),
            num_layers=layer.num_layers,
            bidirectional=layer.bidirectional,
            merge=layer.merge,
            dropout=layer.dropout,
            training=layer.training,
            lengths=lengths,
            options=layer.step_options(),
            recur=self._recur,
            regularization=layer.regularization(),
        )
        if packed:
            output = pack_padded_sequence(output, lengths, enforce_sorted=sorted_input)
        return output, final


#: The readable reference: rnnkit's own cell steps driven by ``rnnkit.loop``, for any cell.
REFERENCE = LoopBackend("reference", loop.recur)
