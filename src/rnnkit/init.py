"""Initialisation schemes for recurrent cells and layers.

Weights of gated cells stack one ``(hidden_size, ·)`` block per gate in their rows; the functions
here take ``num_chunks`` and initialise each block on its own, so every gate gets, e.g., its own
orthogonal matrix.

============  ==========================  ==========================  ==========
scheme        weight_ih                   weight_hh                   biases
============  ==========================  ==========================  ==========
default       U(±1/√H) (torch.nn)         U(±1/√H)                    U(±1/√H)
identity      N(0, 0.001²)                scale · I per gate          0
orthogonal    U(±1/√H)                    orthogonal per gate         0
xavier        Glorot uniform per gate     orthogonal per gate         0
============  ==========================  ==========================  ==========

``identity`` is the IRNN of Le, Jaitly & Hinton 2015 (use it with ``nonlinearity='relu'``); ``xavier``
matches Keras' defaults (glorot_uniform kernel, orthogonal recurrent kernel, zero bias). An LSTM's
forget-gate bias can be set on top of any scheme (Jozefowicz et al. 2015 recommend 1.0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit import _checks

SCHEMES = ("default", "identity", "orthogonal", "xavier")


def _blocks(weight: Tensor, num_chunks: int) -> tuple[Tensor, ...]:
    if weight.shape[0] % num_chunks:
        raise ValueError(f"weight with {weight.shape[0]} rows cannot be split into {num_chunks} gate blocks")
    return weight.chunk(num_chunks, dim=0)


@torch.no_grad()
def identity_(weight_hh: Tensor, num_chunks: int = 1, scale: float = 1.0) -> Tensor:
    """Set each ``(hidden, hidden)`` gate block of ``weight_hh`` to ``scale * I`` (IRNN). A block of an LSTM
    with ``proj_size`` is ``(hidden, proj_size)``: it gets the rectangular identity (``torch.eye(hidden,
    proj_size)``), which carries each projected feature into its own hidden unit."""
    for block in _blocks(weight_hh, num_chunks):
        block.copy_(torch.eye(*block.shape, dtype=block.dtype, device=block.device) * scale)
    return weight_hh


@torch.no_grad()
def orthogonal_(weight: Tensor, num_chunks: int = 1, gain: float = 1.0) -> Tensor:
    """Fill each gate block of ``weight`` with a (semi-)orthogonal matrix times ``gain``."""
    for block in _blocks(weight, num_chunks):
        nn.init.orthogonal_(block, gain=gain)
    return weight


@torch.no_grad()
def xavier_uniform_(weight: Tensor, num_chunks: int = 1, gain: float = 1.0) -> Tensor:
    """Glorot/Xavier uniform per gate block: U(±gain·√(6 / (fan_in + fan_out)))."""
    for block in _blocks(weight, num_chunks):
        nn.init.xavier_uniform_(block, gain=gain)
    return weight


@torch.no_grad()
def forget_gate_bias_(bias_ih: Tensor | None, bias_hh: Tensor | None, value: float = 1.0, *, num_chunks: int = 4,
                      gate: int = 1) -> None:
    """Make a gated cell's forget-gate bias (block ``gate`` of ``num_chunks``; LSTM: ``i, f, g, o``) total ``value``.

    The forget block of ``bias_ih`` is set to ``value`` and that of ``bias_hh`` to 0, since the cell
    adds the two; cells without a ``bias_hh`` (minLSTM) have ``bias_ih`` alone.
    """
    if bias_ih is None:
        raise ValueError("forget_bias needs bias=True: the layer has no bias to set")
    hidden = bias_ih.shape[0] // num_chunks
    bias_ih[gate * hidden : (gate + 1) * hidden].fill_(value)
    if bias_hh is not None:
        bias_hh[gate * hidden : (gate + 1) * hidden].zero_()


@torch.no_grad()
def _initialize_parameter(spec, tensor: Tensor, scheme: str, bound: float) -> None:
    if spec.role == "gain":
        tensor.fill_(1.0)
    elif spec.role == "shift":
        tensor.zero_()
    elif scheme == "default":
        nn.init.uniform_(tensor, -bound, bound)
    elif spec.role in ("bias", "peephole"):
        tensor.zero_()
    elif spec.role == "recurrent":
        if scheme == "identity":
            identity_(tensor, spec.chunks)
        else:
            orthogonal_(tensor, spec.chunks)
    elif spec.role == "input" and scheme == "identity":
        nn.init.normal_(tensor, 0.0, 0.001)
    elif scheme == "xavier":
        xavier_uniform_(tensor, spec.chunks)
    elif spec.role == "projection":
        orthogonal_(tensor, spec.chunks)
    else:
        nn.init.uniform_(tensor, -bound, bound)


@torch.no_grad()
def initialize_(module: nn.Module, scheme: str = "default", *, forget_bias: float | None = None) -> nn.Module:
    """Initialise every parameter of an rnnkit cell or layer with a named scheme (see the table above).

    Each parameter is treated by the role its cell declares (``rnnkit.cells.base.ParameterSpec``):
    input and recurrent weights as in the table, biases and peepholes as biases, normalisation gains
    to 1 and shifts to 0 under every scheme, projections as input weights (orthogonal under
    ``orthogonal`` and ``identity``).

    Args:
        module: an rnnkit cell or layer (anything with ``named_groups()`` and ``hidden_size``).
        scheme: ``'default'``, ``'identity'``, ``'orthogonal'`` or ``'xavier'``.
        forget_bias: cells with a forget gate only (LSTM-like); sets its bias after the scheme.
    """
    _checks.choice("init", scheme, SCHEMES)
    cell = getattr(module, "cell_type", type(module))
    if forget_bias is not None and cell.forget_gate is None:
        raise ValueError(f"forget_bias applies to LSTMs only (cells with a forget gate), not to {type(module).__name__}")
    bound = 1.0 / math.sqrt(module.hidden_size)
    for group in module.named_groups():
        for spec, tensor in group:
            _initialize_parameter(spec, tensor, scheme, bound)
        if forget_bias is not None:
            params = {spec.name: tensor for spec, tensor in group}
            forget_gate_bias_(params.get("bias_ih"), params.get("bias_hh"), forget_bias, num_chunks=cell.num_chunks,
                              gate=cell.forget_gate)
    return module
