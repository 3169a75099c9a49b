"""rnnkit's fused CPU engine (GRU and Elman cells): see ``rnnkit.engine``."""

from __future__ import annotations

from rnnkit import engine
from rnnkit.backends.reference import LoopBackend


def _supports(layer) -> bool:
    weight = layer.weight_hh_l0
    return (
        engine.engine_cell(layer.cell_type, layer.step_options()) is not None
        and weight.device.type == "cpu"
        and weight.dtype in engine.DTYPES
    )


def _preferred(layer) -> bool:
    """Whether ``backend="auto"`` should pick the engine (it is faster than the alternatives)."""
    return _supports(layer) and engine.engine_cell(layer.cell_type, layer.step_options()).auto


ENGINE = LoopBackend("engine", engine.recur, _supports, preferred=_preferred)
