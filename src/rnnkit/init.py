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
    """Set each ``(hidden, hidden)`` gate block of ``weight_hh`` to ``scale * I`` (IRNN)."""
    for block in _blocks(weight_hh, num_chunks):
        if block.shape[0] != block.shape[1]:
            raise ValueError(f"identity_ needs square gate blocks, got {tuple(block.shape)}")
        block.copy_(torch.eye(block.shape[0], dtype=block.dtype, device=block.device) * scale)
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
def forget_gate_bias_(bias_ih: Tensor | None, bias_hh: Tensor | None, value: float = 1.0) -> None:
    """Make an LSTM's forget-gate bias (gate order ``i, f, g, o``) total ``value``.

    The forget block of ``bias_ih`` is set to ``value`` and that of ``bias_hh`` to 0, since the cell
    adds the two.
    """
    if bias_ih is None or bias_hh is None:
        raise ValueError("forget_bias needs bias=True: the layer has no bias to set")
    hidden = bias_ih.shape[0] // 4
    bias_ih[hidden : 2 * hidden].fill_(value)
    bias_hh[hidden : 2 * hidden].zero_()


@torch.no_grad()
def initialize_(module: nn.Module, scheme: str = "default", *, forget_bias: float | None = None) -> nn.Module:
    """Initialise every weight group of an rnnkit cell or layer with a named scheme (see the table above).

    Args:
        module: an rnnkit cell or layer (anything with ``weight_groups()``, ``hidden_size`` and a cell
            type with ``num_chunks``).
        scheme: ``'default'``, ``'identity'``, ``'orthogonal'`` or ``'xavier'``.
        forget_bias: LSTM only; sets the forget-gate bias after the scheme.
    """
    _checks.choice("init", scheme, SCHEMES)
    chunks = _num_chunks(module)
    if forget_bias is not None and chunks != 4:
        raise ValueError(f"forget_bias applies to LSTMs only, not to {type(module).__name__}")
    bound = 1.0 / math.sqrt(module.hidden_size)
    for weight_ih, weight_hh, bias_ih, bias_hh in module.weight_groups():
        biases = [b for b in (bias_ih, bias_hh) if b is not None]
        if scheme == "default":
            for tensor in (weight_ih, weight_hh, *biases):
                nn.init.uniform_(tensor, -bound, bound)
        else:
            for bias in biases:
                bias.zero_()
            if scheme == "identity":
                nn.init.normal_(weight_ih, 0.0, 0.001)
                identity_(weight_hh, chunks)
            else:
                if scheme == "xavier":
                    xavier_uniform_(weight_ih, chunks)
                else:
                    nn.init.uniform_(weight_ih, -bound, bound)
                orthogonal_(weight_hh, chunks)
        if forget_bias is not None:
            forget_gate_bias_(bias_ih, bias_hh, forget_bias)
    return module


def _num_chunks(module: nn.Module) -> int:
    cell = getattr(module, "cell_type", type(module))
    return cell.num_chunks
