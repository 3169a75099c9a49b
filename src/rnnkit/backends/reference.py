"""The readable reference: rnnkit's own cell steps driven by ``rnnkit.loop``, for any cell."""

from __future__ import annotations

from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.layers import run_stack


class ReferenceBackend:
    name = "reference"

    def supports(self, layer) -> bool:
        return True

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
            layer.weight_groups(),
            num_layers=layer.num_layers,
            bidirectional=layer.bidirectional,
            merge=layer.merge,
            dropout=layer.dropout,
            training=layer.training,
            lengths=lengths,
            options=layer.step_options(),
        )
        if packed:
            output = pack_padded_sequence(output, lengths, enforce_sorted=sorted_input)
        return output, final
