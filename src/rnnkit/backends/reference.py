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
                 preferred: Callable | None = None, refusal: Callable = lambda spec: "") -> None:
        self.name, self._recur, self._supports, self._refusal = name, recur, supports, refusal
        self._preferred = preferred or supports

    def supports(self, spec: LayerSpec) -> bool:
        return self._supports(spec)

    def refusal(self, spec: LayerSpec) -> str:
        """Why the backend cannot run the layer (for the error message), or ``""``."""
        return self._refusal(spec)

    def preferred(self, spec: LayerSpec) -> bool:
        """Whether ``backend="auto"`` should pick this backend for the layer ``spec`` describes."""
        return self._preferred(spec)

    def run(self, spec: LayerSpec, params: ParamGroups, x, state, lengths):
        packed = x if isinstance(x, PackedSequence) else None
        if packed is not None:
            # pad_packed_sequence restores the caller's batch order, the order of ``state``.
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
        if packed is not None:
            output = _pack_like(output, lengths, packed)
        return output, final


def _pack_like(output, lengths, like: PackedSequence) -> PackedSequence:
    """Pack ``output`` (time-major, the caller's batch order) in ``like``'s order, as torch.nn does.

    Sorting the lengths afresh could break ties differently from the input's packing, and ``output.data``
    would then no longer line up with targets packed as the input was.
    """
    if like.sorted_indices is not None:
        output, lengths = output.index_select(1, like.sorted_indices), lengths[like.sorted_indices.cpu()]
    data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


#: The readable reference: rnnkit's own cell steps driven by ``rnnkit.loop``, for any cell.
REFERENCE = LoopBackend("reference", loop.recur)
