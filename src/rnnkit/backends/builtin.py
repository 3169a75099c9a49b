"""PyTorch's own fused RNN kernels (oneDNN / native on CPU, cuDNN on GPU), called on the layer's parameters.

The kernels read the layer's parameter tensors directly: nothing is copied per call. They compute
exactly the math of rnnkit's Elman, LSTM and GRU cells. Bidirectional layers with a merge other than
``concat`` run one kernel call per layer and merge between layers, since the kernels only concatenate.
"""

from __future__ import annotations

import torch
from torch import _VF
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.stacking import merge_halves

#: torch's kernels by the name a cell gives (``RecurrentCell.torch_kernel``).
_KERNELS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}


def _kernel(layer):
    return _KERNELS.get(layer.cell_type.torch_kernel(layer.step_options()))


def _call(kernel, data, batch_sizes, state, weights, *, bias, num_layers, dropout, training, bidirectional):
    hx = state if len(state) == 2 else state[0]
    if batch_sizes is None:
        result = kernel(data, hx, weights, bias, num_layers, dropout, training, bidirectional, False)
    else:
        result = kernel(data, batch_sizes, hx, weights, bias, num_layers, dropout, training, bidirectional)
    return result[0], tuple(result[1:])


class BuiltinBackend:
    name = "builtin"

    def supports(self, layer) -> bool:
        return _kernel(layer) is not None and layer.regularization() is None

    preferred = supports

    def run(self, layer, x, state, lengths):
        padded_steps = None
        if lengths is not None:
            padded_steps = x.shape[0]
            x = pack_padded_sequence(x, lengths, enforce_sorted=False)
        packed = isinstance(x, PackedSequence)
        data, batch_sizes = (x.data, x.batch_sizes) if packed else (x, None)
        if packed and x.sorted_indices is not None:
            state = tuple(s.index_select(1, x.sorted_indices) for s in state)

        output, final = self._layers(layer, data, batch_sizes, state)

        if packed and x.unsorted_indices is not None:
            final = tuple(s.index_select(1, x.unsorted_indices) for s in final)
        if packed:
            output = PackedSequence(output, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
        if padded_steps is not None:
            output, _ = pad_packed_sequence(output, total_length=padded_steps)
        return output, final

    def _layers(self, layer, data, batch_sizes, state):
        kernel, weights = _kernel(layer), layer.flat_weights()
        options = {"bias": layer.bias, "training": layer.training, "bidirectional": layer.bidirectional}
        if not layer.bidirectional or layer.merge == "concat":
            return _call(kernel, data, batch_sizes, state, weights,
                         num_layers=layer.num_layers, dropout=layer.dropout, **options)
        # One kernel call per layer; merge the two directions before the next layer.
        per_layer = len(weights) // layer.num_layers
        finals = []
        for index in range(layer.num_layers):
            layer_state = tuple(s[2 * index : 2 * index + 2] for s in state)
            layer_weights = weights[index * per_layer : (index + 1) * per_layer]
            data, final = _call(kernel, data, batch_sizes, layer_state, layer_weights,
                                num_layers=1, dropout=0.0, **options)
            data = merge_halves(data, layer.merge)
            if layer.dropout > 0 and layer.training and index < layer.num_layers - 1:
                data = F.dropout(data, layer.dropout, training=True)
            finals.append(final)
        return data, tuple(torch.cat(parts) for parts in zip(*finals))
