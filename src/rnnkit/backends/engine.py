"""rnnkit's fused CPU engine (GRU, Elman and LSTM cells): see ``rnnkit.engine``."""

from __future__ import annotations

from rnnkit import engine
from rnnkit.backends.reference import LoopBackend


def _spec(layer):
    """The engine's description of the layer's cell, or ``None`` if the engine cannot run the layer."""
    weight = layer.flat_weights()[0]
    if (weight.device.type != "cpu" or weight.dtype not in engine.DTYPES or layer.regularization() is not None
            or layer.proj_size):
        return None
    return engine.engine_cell(layer.cell_type, layer.step_options())


def _supports(layer) -> bool:
    return _spec(layer) is not None


def _preferred(layer) -> bool:
    """Whether ``backend="auto"`` should pick the engine (it is faster than the alternatives)."""
    spec = _spec(layer)
    return spec is not None and spec.auto


ENGINE = LoopBackend("engine", engine.recur, _supports, preferred=_preferred)
