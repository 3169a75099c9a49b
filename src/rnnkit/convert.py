"""Conversion between rnnkit layers and torch.nn's ``RNN``, ``LSTM`` and ``GRU``.

rnnkit's layers are not subclasses of ``torch.nn.RNNBase``, on purpose: code that checks
``isinstance(module, nn.RNNBase)`` goes on to assume torch.nn's whole contract (its forward, its
flat-weight kernels, ``mode``), which an rnnkit layer with a ``sum`` merge, zoneout or a layer-norm
cell does not keep; ``quantize_dynamic``, for instance, would quietly rebuild such a layer as a plain
LSTM. Where a torch.nn module is needed (dynamic quantization, a tool matching on the type), convert:

>>> import torch, rnnkit as rk
>>> lstm = rk.LSTM(8, 16, num_layers=2, bidirectional=True)
>>> twin = rk.to_torch(lstm)                      # a torch.nn.LSTM with the same weights
>>> back = rk.from_torch(twin)                    # and back: an rk.LSTM, state_dict equal
>>> quantized = torch.ao.quantization.quantize_dynamic(twin, {torch.nn.LSTM}, dtype=torch.qint8)

Both copy the weights (the two modules are independent afterwards) with their dtype, device,
``requires_grad`` and the training mode. A parametrized or pruned weight is copied as the value the
forward uses.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit.nn import GRU, LSTM, RECURRENT_REGULARIZERS, RNN, RecurrentLayer

#: torch's kernel name (``RecurrentCell.torch_kernel``, ``nn.RNNBase.mode``) -> (torch.nn class, rnnkit class, nonlinearity)
_KINDS = {
    "LSTM": (nn.LSTM, LSTM, None),
    "GRU": (nn.GRU, GRU, None),
    "RNN_TANH": (nn.RNN, RNN, "tanh"),
    "RNN_RELU": (nn.RNN, RNN, "relu"),
}


def _copy_weights(source: nn.Module, target: nn.Module, names: list[str]) -> None:
    with torch.no_grad():
        for name in names:
            value = getattr(source, name)
            parameter = getattr(target, name)
            if parameter.shape != value.shape:  # cannot happen for matching layers; guards a bad subclass
                raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit {tuple(parameter.shape)}")
            parameter.copy_(value)
            parameter.requires_grad_(value.requires_grad)


def to_torch(layer: RecurrentLayer) -> nn.RNNBase:
    """The ``torch.nn.RNN``/``LSTM``/``GRU`` computing exactly what ``layer`` computes, with its weights.

    Refused (``ValueError``, saying why) for what torch.nn has no equivalent of: cells other than
    Elman, LSTM and GRU (``LayerNormLSTM``, ``PeepholeLSTM``, ``MinGRU``, your own), a bidirectional
    merge other than ``'concat'``, ``recurrent_dropout``, ``zoneout`` and ``weight_drop``. Initialisation options
    (``init``, ``forget_bias``) are already in the weights; ``backend`` has no meaning there, and
    ``lengths=`` becomes a ``PackedSequence`` (``pack_padded_sequence(x, lengths, enforce_sorted=False)``).
    """
    if not isinstance(layer, RecurrentLayer):
        raise TypeError(f"to_torch takes an rnnkit layer (rk.RNN, rk.LSTM, rk.GRU), got {type(layer).__name__}")
    name = type(layer).__name__
    kind = layer.cell_type.torch_kernel(layer.step_options())
    if kind not in _KINDS:
        raise ValueError(f"{name} (cell {layer.cell_type.__name__}) has no torch.nn equivalent: torch.nn has "
                         "only the Elman, LSTM and GRU cells")
    if layer.bidirectional and layer.merge != "concat":
        raise ValueError(f"{name} merges its directions with merge={layer.merge!r}; torch.nn only concatenates "
                         "them (merge='concat')")
    for option in RECURRENT_REGULARIZERS:
        if getattr(layer, option):
            raise ValueError(f"{name} has {option}={getattr(layer, option)}, which torch.nn has no equivalent of")
    torch_cls, _, nonlinearity = _KINDS[kind]
    weight = layer._flat_weights[0]
    options = {"nonlinearity": nonlinearity} if nonlinearity else {}
    if layer.proj_size:
        options["proj_size"] = layer.proj_size
    module = torch_cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers, bias=layer.bias,
                       batch_first=layer.batch_first, dropout=layer.dropout, bidirectional=layer.bidirectional,
                       device=weight.device, dtype=weight.dtype, **options)
    if module._flat_weights_names != layer._flat_weights_names:  # a subclass declaring other parameters
        raise ValueError(f"{name}'s parameters {layer._flat_weights_names} are not torch.nn's "
                         f"{module._flat_weights_names}")
    _copy_weights(layer, module, module._flat_weights_names)
    return module.train(layer.training)


def from_torch(module: nn.RNNBase, **options) -> RecurrentLayer:
    """The rnnkit layer (``rk.RNN``/``LSTM``/``GRU``) equivalent to a ``torch.nn.RNN``/``LSTM``/``GRU``.

    Every torch.nn option carries over (``proj_size``, ``bidirectional``, ``batch_first``, ``dropout``,
    ``bias``, ``nonlinearity``); ``options`` are rnnkit's keyword options for the new layer, e.g.
    ``backend='reference'``.
    """
    if not isinstance(module, nn.RNNBase) or getattr(module, "mode", None) not in _KINDS:
        raise TypeError(f"from_torch takes a torch.nn.RNN, LSTM or GRU, got {type(module).__name__}")
    _, rk_cls, nonlinearity = _KINDS[module.mode]
    if nonlinearity:
        options["nonlinearity"] = nonlinearity
    if module.proj_size:
        options["proj_size"] = module.proj_size
    weight = getattr(module, module._flat_weights_names[0])
    layer = rk_cls(module.input_size, module.hidden_size, num_layers=module.num_layers, bias=bool(module.bias),
                   batch_first=bool(module.batch_first), dropout=float(module.dropout),
                   bidirectional=bool(module.bidirectional), device=weight.device, dtype=weight.dtype, **options)
    _copy_weights(module, layer, layer._flat_weights_names)
    return layer.train(module.training)


__all__ = ["to_torch", "from_torch"]
