"""Backends: interchangeable implementations of a layer's forward pass over the same parameters.

A backend never sees the layer object: it receives a frozen description of it
(``rnnkit.backends.spec.LayerSpec``, from ``layer.describe()``) and its parameters as one mapping by
name per layer and direction (``layer.parameter_groups()``). It is an object with a ``name``,
``supports(spec)`` and ``preferred(spec)`` predicates and ``run(spec, params, x, state, lengths) ->
(output, final_state)``. ``x`` is a time-major padded tensor (with optional CPU int64 ``lengths``) or a
``PackedSequence``; the output is of the same kind. ``state`` and ``final_state`` are tuples of
``(num_layers * num_directions, batch, hidden)`` tensors.

``select(layer)`` honours ``layer.backend``: ``"auto"`` takes the first backend in ``AUTO_ORDER``
that prefers the layer's description; a name forces that backend (if it supports the layer). Backends needing
compiled code import it lazily, so ``import rnnkit`` never needs a compiler or a GPU.

Under a transform or tracer that the fused kernels do not support
(``rnnkit.engine.transform_active``), ``select`` hands the layer to a backend that computes the same
function in ops those see through, whatever was asked for: under torch.func transforms (``grad``,
``vmap``, ``jacrev``, per-sample gradients) and forward-mode AD (``torch.autograd.forward_ad``) the
engine and torch's kernels go to the reference (torch's RNN kernels have no ``vmap`` rule); under
``torch.jit.trace``, ``torch.export`` and ``torch.compile`` the engine goes to torch's kernels (one
``aten`` op per layer, as torch.nn exports), or to the reference for layers those do not run.
Silently: the results are the same up to rounding.
"""

from __future__ import annotations

import dataclasses

import torch

from rnnkit.backends.builtin import BuiltinBackend
from rnnkit.backends.engine import ENGINE
from rnnkit.backends.reference import REFERENCE
from rnnkit.backends.spec import LayerSpec, ParamGroups, flat_weights
from rnnkit.engine import transform_active

BACKENDS = {backend.name: backend for backend in (ENGINE, BuiltinBackend(), REFERENCE)}
# The engine claims CPU layers of the GRU and Elman cells (it runs the LSTM too, but only on request:
# oneDNN's LSTM is as fast); torch's kernels take the rest (LSTM on oneDNN, everything on cuDNN); the
# reference runs any other cell.
AUTO_ORDER = ["engine", "builtin", "reference"]


def names() -> list[str]:
    """Every value ``backend=`` accepts."""
    return ["auto", *BACKENDS]


def select(layer, spec: LayerSpec | None = None):
    """The backend that will run ``layer`` (``layer.backend`` may also be a backend object itself).

    ``spec``: the layer's description if the caller has it already (``layer.describe()``)."""
    if not isinstance(layer.backend, str):
        return layer.backend
    spec = spec if spec is not None else layer.describe()
    return _transformable(spec, _chosen(layer.backend, spec))


def check_runnable(name: str, spec: LayerSpec) -> None:
    """Refuse, when a layer is built, a backend named for it that could not run it anywhere: not in evaluation
    on the CPU in float32, where each backend runs the most (a layer it runs only there, or only after
    ``.eval()``, is refused at its call instead)."""
    if name == "auto":
        return
    evaluated = None if spec.regularization is None or not spec.regularization.zoneout else \
        dataclasses.replace(spec.regularization, recurrent_dropout=0.0, training=False)
    _chosen(name, dataclasses.replace(spec, training=False, regularization=evaluated, device_type="cpu",
                                      dtype=torch.float32))


def _chosen(name: str, spec: LayerSpec):
    if name == "auto":
        for candidate in AUTO_ORDER:
            if BACKENDS[candidate].preferred(spec):
                return BACKENDS[candidate]
    backend = BACKENDS[name]
    if not backend.supports(spec):
        reason = backend.refusal(spec)
        raise ValueError(f"backend {name!r} does not support this {spec.describe()}{': ' + reason if reason else ''}; "
                         "use backend='auto' or 'reference'")
    return backend


def _transformable(spec: LayerSpec, backend):
    """``backend``, or the one that stands in for it under the active transform or tracer."""
    if backend.name not in ("engine", "builtin"):
        return backend
    reason = transform_active()
    if reason is None and backend.name == "engine" and torch.is_autocast_enabled("cpu"):
        reason = "autocast"  # torch's kernels follow autocast's per-op dtype policy; the engine computes in float32
    if reason is None:
        return backend
    if reason in ("functorch", "forward_ad"):
        return REFERENCE
    if backend.name == "engine":
        builtin = BACKENDS["builtin"]
        return builtin if builtin.supports(spec) else REFERENCE
    return backend


__all__ = ["BACKENDS", "AUTO_ORDER", "LayerSpec", "ParamGroups", "flat_weights", "names", "select"]
