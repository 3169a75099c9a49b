"""rnnkit's fused CPU engine (GRU, Elman and LSTM cells): see ``rnnkit.engine``."""

from __future__ import annotations

from rnnkit import engine
from rnnkit.backends.reference import LoopBackend
from rnnkit.backends.spec import LayerSpec


def _cell(spec: LayerSpec):
    """The engine's description of the layer's cell, or ``None`` if the engine cannot run the layer."""
    if (spec.device_type != "cpu" or spec.dtype not in engine.DTYPES or spec.regularization is not None
            or spec.proj_size):
        return None
    return engine.engine_cell(spec.cell, spec.step_options)


def _supports(spec: LayerSpec) -> bool:
    return _cell(spec) is not None


def _preferred(spec: LayerSpec) -> bool:
    """Whether ``backend="auto"`` should pick the engine (it is faster than the alternatives)."""
    cell = _cell(spec)
    return cell is not None and cell.auto


ENGINE = LoopBackend("engine", engine.recur, _supports, preferred=_preferred)
