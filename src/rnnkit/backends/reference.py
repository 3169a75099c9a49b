"""Backends that compose layers from a single-direction time loop: the reference and the fused engine."""

from __future__ import annotations

from collections.abc import Callable

from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import loop
from rnnkit.backends.spec import LayerSpec, ParamGroups
from rnnkit.stacking import run_stack


class LoopBackend:
    """Runs ``stacking.run_stack`` with a given ``recur`` (padded input; packed input is unpacked first)."""

    def __init__(self, name: str, recur: Callable, supports: Callable = lambda spec: True,
                 preferred: Callable | None = None) -> None:
        self.name, self._recur, self._supports = name, recur, supports
        self._preferred = preferred or supports

    def supports(self, spec: LayerSpec) -> bool:
        return self._supports(spec)

    def preferred(self, spec: LayerSpec) -> bool:
        """Whether ``backend="auto"`` should pick this backend for the layer ``spec`` describes."""
        return self._preferred(spec)

    def run(self, spec: LayerSpec, params: ParamGroups, x, state, lengths):
        packed = isinstance(x, PackedSequence)
        if packed:
            # pad_packed_sequence restores the caller's batch order, the order of ``state``.
            sorted_input = x.sorted_indices is None
            x, lengths = pad_packed_sequence(x)
        output, final = run_stack(
            spec.cell,
            x,
            state,
            params,
            num_layers=spec.num_layers,
            bidirectional=spec.bidirectional,
            merge=spec.merge,
            dropout=spec.dropout,
            training=spec.training,
            lengths=lengths,
            options=spec.step_options,
            recur=self._recur,
            regularization=spec.regularization,
        )
        if packed:
            output = pack_padded_sequence(output, lengths, enforce_sorted=sorted_input)
        return output, final


#: The readable reference: rnnkit's own cell steps driven by ``rnnkit.loop``, for any cell.
REFERENCE = LoopBackend("reference", loop.recur)
