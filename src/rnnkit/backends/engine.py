"""rnnkit's fused CPU engine (GRU, Elman and LSTM cells): see ``rnnkit.engine``."""

from __future__ import annotations

from rnnkit import engine
from rnnkit.backends.reference import LoopBackend
from rnnkit.backends.spec import LayerSpec


def _examine(spec: LayerSpec):
    """``(cell, "")``: the engine's description of the layer's cell; or ``(None, why)`` if it cannot run the layer."""
    if spec.device_type != "cpu":
        return None, f"the engine runs on the CPU, not on {spec.device_type}"
    if spec.dtype not in engine.DTYPES:
        return None, f"the engine computes in float32 or float64, not {str(spec.dtype).removeprefix('torch.')}"
    cell = engine.engine_cell(spec.cell, spec.step_options)
    if cell is None:
        return None, f"the engine has no kernel for {spec.cell.__name__}"
    if spec.proj_size and cell.name != "lstm":
        return None, f"the engine projects (proj_size) only the LSTM, not {spec.cell.__name__}"
    if spec.regularization is not None and spec.regularization.zoneout and not cell.zoneout:
        return None, f"the engine has no zoneout for {spec.cell.__name__} (its backward reads the new state, which " \
                     f"zoneout replaces)"
    return cell, ""


def _cell(spec: LayerSpec):
    """The engine's description of the layer's cell, or ``None`` if the engine cannot run the layer."""
    return _examine(spec)[0]


def _refusal(spec: LayerSpec) -> str:
    """Why the engine cannot run the layer, or ``""`` when it can."""
    return _examine(spec)[1]


def _supports(spec: LayerSpec) -> bool:
    return _cell(spec) is not None


def _preferred(spec: LayerSpec) -> bool:
    """Whether ``backend="auto"`` should pick the engine (it is faster than the alternatives).

    With recurrent dropout or zoneout in effect the only other backend is the reference loop, which
    the engine beats for every cell it runs, and with ``proj_size`` torch's LSTM leaves oneDNN for a
    slower kernel that the engine beats (docs/benchmarks.md): then the engine is preferred even for the
    LSTM, whose plain recurrence oneDNN runs as fast."""
    cell = _cell(spec)
    return cell is not None and (cell.auto or spec.regularization is not None or spec.proj_size > 0)


ENGINE = LoopBackend("engine", engine.recur, _supports, preferred=_preferred, refusal=_refusal)
