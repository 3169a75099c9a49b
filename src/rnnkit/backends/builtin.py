"""PyTorch's own fused RNN kernels (oneDNN / native on CPU, cuDNN on GPU), called on the layer's parameters.

The kernels read the layer's parameter tensors (the mappings a backend receives) directly: nothing is
copied per call. They compute
exactly the math of rnnkit's Elman, LSTM and GRU cells. Bidirectional layers with a merge other than
``concat`` run one kernel call per layer and merge between layers, since the kernels only concatenate.
"""

from __future__ import annotations

import torch
from torch import _VF
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.backends.spec import LayerSpec, ParamGroups, flat_weights
from rnnkit.stacking import merge_halves

#: torch's kernels by the name a cell gives (``RecurrentCell.torch_kernel``).
_KERNELS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}


def _kernel(spec: LayerSpec):
    return _KERNELS.get(spec.torch_kernel)


def _call(kernel, data, batch_sizes, state, weights, *, bias, num_layers, dropout, training, bidirectional):
    hx = state if len(state) == 2 else state[0]
    if batch_sizes is None:
        result = kernel(data, hx, weights, bias, num_layers, dropout, training, bidirectional, False)
    else:
        result = kernel(data, batch_sizes, hx, weights, bias, num_layers, dropout, training, bidirectional)
    return result[0], tuple(result[1:])


class BuiltinBackend:
    name = "builtin"

    def supports(self, spec: LayerSpec) -> bool:
        return not self.refusal(spec)

    preferred = supports

    def refusal(self, spec: LayerSpec) -> str:
        """Why torch's kernels cannot run the layer, or ``""``."""
        if _kernel(spec) is None:
            return f"torch has no kernel for {spec.cell.__name__}"
        if spec.regularization is not None:
            what = "zoneout" if spec.regularization.zoneout else "recurrent dropout"
            return f"torch's kernels have no {what} masks" + (" (recurrent dropout applies in training only: "
                                                              "after .eval() they run the layer)"
                                                              if not spec.regularization.zoneout else "")
        return ""

    def run(self, spec: LayerSpec, params: ParamGroups, x, state, lengths):
        padded_steps = None
        if lengths is not None:
            padded_steps = x.shape[0]
            x = pack_padded_sequence(x, lengths, enforce_sorted=False)
        packed = isinstance(x, PackedSequence)
        data, batch_sizes = (x.data, x.batch_sizes) if packed else (x, None)
        if packed and x.sorted_indices is not None:
            state = tuple(s.index_select(1, x.sorted_indices) for s in state)

        output, final = self._layers(spec, params, data, batch_sizes, state)

        if packed and x.unsorted_indices is not None:
            final = tuple(s.index_select(1, x.unsorted_indices) for s in final)
        if packed:
            output = PackedSequence(output, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
        if padded_steps is not None:
            output, _ = pad_packed_sequence(output, total_length=padded_steps)
        return output, final

    def _layers(self, spec: LayerSpec, params: ParamGroups, data, batch_sizes, state):
        kernel = _kernel(spec)
        options = {"bias": spec.bias, "training": spec.training, "bidirectional": spec.bidirectional}
        if not spec.bidirectional or spec.merge == "concat":
            return _call(kernel, data, batch_sizes, state, flat_weights(params),
                         num_layers=spec.num_layers, dropout=spec.dropout, **options)
        # One kernel call per layer; merge the two directions before the next layer.
        finals = []
        for index in range(spec.num_layers):
            layer_state = tuple(s[2 * index : 2 * index + 2] for s in state)
            layer_weights = flat_weights(params[2 * index : 2 * index + 2])
            data, final = _call(kernel, data, batch_sizes, layer_state, layer_weights,
                                num_layers=1, dropout=0.0, **options)
            data = merge_halves(data, spec.merge)
            if spec.dropout > 0 and spec.training and index < spec.num_layers - 1:
                data = F.dropout(data, spec.dropout, training=True)
            finals.append(final)
        return data, tuple(torch.cat(parts) for parts in zip(*finals))
