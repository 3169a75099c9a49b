"""Backends: interchangeable implementations of a layer's forward pass over the same parameters.

A backend is an object with a ``name``, ``supports(layer)`` and ``preferred(layer)`` predicates and
``run(layer, x, state, lengths) -> (output, final_state)``. ``x`` is a time-major padded tensor
(with optional CPU int64 ``lengths``) or a ``PackedSequence``; the output is of the same kind.
``state`` and ``final_state`` are tuples of ``(num_layers * num_directions, batch, hidden)`` tensors.

``select(layer)`` honours ``layer.backend``: ``"auto"`` takes the first backend in ``AUTO_ORDER``
that prefers the layer; a name forces that backend (if it supports the layer). Backends needing
compiled code import it lazily, so ``import rnnkit`` never needs a compiler or a GPU.
"""

from __future__ import annotations

from rnnkit.backends.builtin import BuiltinBackend
from rnnkit.backends.engine import ENGINE
from rnnkit.backends.reference import REFERENCE

BACKENDS = {backend.name: backend for backend in (ENGINE, BuiltinBackend(), REFERENCE)}
# The engine claims CPU layers of the GRU and Elman cells (it runs the LSTM too, but only on request:
# oneDNN's LSTM is as fast); torch's kernels take the rest (LSTM on oneDNN, everything on cuDNN); the
# reference runs any other cell.
AUTO_ORDER = ["engine", "builtin", "reference"]


def names() -> list[str]:
    """Every value ``backend=`` accepts."""
    return ["auto", *BACKENDS]


def select(layer):
    """The backend that will run ``layer`` (``layer.backend`` may also be a backend object itself)."""
    if not isinstance(layer.backend, str):
        return layer.backend
    if layer.backend == "auto":
        for name in AUTO_ORDER:
            if BACKENDS[name].preferred(layer):
                return BACKENDS[name]
    backend = BACKENDS[layer.backend]
    if not backend.supports(layer):
        raise ValueError(
            f"backend {layer.backend!r} does not support this {type(layer).__name__} "
            f"(cell {layer.cell_type.__name__}); use backend='auto' or 'reference'"
        )
    return backend


__all__ = ["BACKENDS", "AUTO_ORDER", "names", "select"]
