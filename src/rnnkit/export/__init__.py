"""ONNX export of rnnkit's layers and task models, verified with onnxruntime when it is written.

Recurrent models are where ONNX export usually breaks: packed sequences (pytorch/pytorch#62240), a
dynamic time axis (#126339), GRUs written with the wrong ``linear_before_reset`` (#189225). rnnkit
exports every recurrent layer the same way, whatever its cell or backend:

1. The model is traced by ``torch.onnx.export`` (TorchScript exporter) with every recurrent layer
   standing in as one placeholder node (``rnnkit::RecurrentLayer``).
2. Each placeholder is replaced by standard operators: per layer and direction an ONNX ``Scan``
   whose body is the cell's own step (``input_projection`` + ``recurrence``, exported from the very
   functions the reference loop runs), so LSTM/GRU/RNN and the variant cells (layer-norm, peephole,
   minGRU/minLSTM, projections) export alike, the fused engine's node included, and the GRU's
   ``r * (W_hn h + b_hn)`` is computed exactly as in PyTorch (no ``linear_before_reset`` to get wrong).
   Variable lengths work as in the loop: a sequence's state stops at its last valid step, outputs
   past it are zero, and the reverse direction reads each sequence backwards within its length
   (``ReverseSequence``). Batch and time are dynamic axes.
3. The file is run with onnxruntime on several batch sizes and lengths against PyTorch; the
   largest difference is reported (and an error raised above ``tolerance``).

What a model exports to is a list of :class:`Part` s (one ONNX file each), from :data:`EXPORTS`:
a task model class registers a function building its parts with :func:`register`, so a new model
adds its export in a few lines. See docs/shipping.md for running the files without rnnkit.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from rnnkit._files import read_json_object, replace_atomically, write_json_atomic
from rnnkit.export.layers import OPSET, trace

# ---------------------------------------------------------------------------------- parts
@dataclasses.dataclass
class Part:
    """One exported graph: a module taking and returning tensors, its names and example inputs.

    Attributes:
        name: the part's name (``model``, ``encoder``, ``decoder_step``); names the file of a multi-part export.
        module: called with the inputs in order; returns a tensor or a tuple in ``outputs`` order.
        inputs, outputs: names of the graph's inputs and outputs.
        dynamic: per input/output name, ``{axis: name}`` of its dynamic axes (``batch``, ``time``, ...).
        example: ``example(batch, steps, generator)`` -> a tuple of inputs (verification draws several).
    """

    name: str
    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]]
    example: Callable[[int, int, torch.Generator], tuple]


#: How each task model exports, by class name: ``function(model) -> list[Part]``.
EXPORTS: dict[str, Callable[[nn.Module], list[Part]]] = {}


def register(kind: str) -> Callable:
    """Decorator: ``@register("MyModel")`` on ``def parts(model) -> list[Part]``."""
    def wrap(function):
        EXPORTS[kind] = function
        return function
    return wrap


def parts_of(model: nn.Module) -> list[Part]:
    """The parts ``model`` exports to: a registered task model, or any rnnkit recurrent layer."""
    from rnnkit.export.models import layer_part
    from rnnkit.nn import RecurrentLayer

    if isinstance(model, RecurrentLayer):
        return [layer_part(model)]
    kind = type(model).__name__
    if kind not in EXPORTS:
        raise TypeError(f"rnnkit.export does not know how to export a {kind}; it exports rnnkit's recurrent layers "
                        f"and the task models {sorted(EXPORTS)} (register one with rnnkit.export.register)")
    return EXPORTS[kind](model)

# ------------------------------------------------------------------------------ verification
def max_difference(onnx_bytes: bytes | str | Path, part: Part, shapes: Sequence[tuple[int, int]],
                   seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and PyTorch over inputs of the given
    ``(batch, steps)`` shapes (fresh random inputs for each)."""
    import numpy as np
    import onnxruntime

    source = onnx_bytes if isinstance(onnx_bytes, bytes) else str(onnx_bytes)
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch, steps in shapes:
        inputs = part.example(batch, steps, generator)
        with torch.no_grad():
            expected = part.module(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(part.outputs, {n: t.numpy() for n, t in zip(part.inputs, inputs)})
        for name, want, have in zip(part.outputs, expected, got):
            if tuple(have.shape) != tuple(want.shape):
                raise AssertionError(f"{part.name}: output {name} has shape {have.shape} in onnxruntime, "
                                     f"{tuple(want.shape)} in PyTorch (batch {batch}, steps {steps})")
            if want.numel():
                worst = max(worst, float(np.abs(have.astype(np.float64) - want.double().numpy()).max()))
    return worst


#: (batch, steps) pairs every export is checked on: one row, odd sizes, longer than the trace's 3 steps.
CHECK_SHAPES = ((1, 1), (3, 7), (5, 2), (2, 12))


@dataclasses.dataclass
class Exported:
    """What :func:`to_onnx` wrote: one file per part and the largest difference found for each."""

    files: dict[str, Path]
    max_difference: dict[str, float]

    def to_dict(self) -> dict:
        return {"files": {k: str(v) for k, v in self.files.items()}, "max_difference": self.max_difference}


def to_onnx(model: nn.Module, path: str | Path, *, check: bool = True, tolerance: float = 1e-4,
            shapes: Sequence[tuple[int, int]] = CHECK_SHAPES) -> Exported:
    """Export ``model`` (an rnnkit layer or task model) to ONNX and check it with onnxruntime.

    Args:
        model: an rnnkit recurrent layer (``rk.LSTM``, ``rk.GRU``, a variant layer, ...) or a task model
            registered in :data:`EXPORTS`. Exported in evaluation mode (dropout off), float32.
        path: the ``.onnx`` file; a model of several parts writes ``<stem>.<part>.onnx`` next to it.
        check: run every file with onnxruntime against PyTorch on the ``(batch, steps)`` ``shapes``.
        tolerance: largest absolute difference accepted (a ``ValueError`` above it).

    Returns:
        :class:`Exported`: the files by part and the largest difference measured for each part.

    >>> import tempfile, rnnkit as rk
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     done = to_onnx(rk.GRU(3, 4, bidirectional=True, batch_first=True), f"{tmp}/gru.onnx")
    >>> done.max_difference["model"] < 1e-5
    True
    """
    path = Path(path)
    parts = parts_of(model)
    was_training = model.training
    model.eval()
    files, differences = {}, {}
    traced = {}
    try:
        for part in parts:
            traced[part.name] = trace(part)
            if check:
                differences[part.name] = max_difference(traced[part.name], part, shapes)
                if not differences[part.name] <= tolerance:
                    raise ValueError(f"the exported {part.name} differs from PyTorch by {differences[part.name]:.3g} "
                                     f"(tolerance {tolerance:g}); please report this as an rnnkit bug")
    finally:
        model.train(was_training)
    # Written only once every part passed its check, each atomically: a failed export leaves no file behind.
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, data in traced.items():
        target = path if len(parts) == 1 else path.with_name(f"{path.stem}.{name}.onnx")
        files[name] = replace_atomically(target, lambda temporary, data=data: temporary.write_bytes(data))
    return Exported(files, differences)


def describe(parts: list[Part]) -> dict:
    """JSON-able inputs and outputs of each part, with their dynamic axes (written next to the files)."""
    return {p.name: {"inputs": p.inputs, "outputs": p.outputs,
                     "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in p.dynamic.items()}}
            for p in parts}

def write_manifest(path: Path, model: nn.Module, exported: Exported, extra: dict | None = None) -> Path:
    """``<stem>.json`` next to the files: each part's inputs, outputs, dynamic axes and the measured difference."""
    manifest = {"kind": type(model).__name__, "opset": OPSET, "parts": describe(parts_of(model)),
                **exported.to_dict(), **(extra or {})}
    return write_json_atomic(path.with_suffix(".json"), manifest)

# ------------------------------------------------------------------------------------ runs
def export_run(run: str | Path, out: str | Path | None = None, *, check: bool = True,
               tolerance: float = 1e-4) -> dict:
    """Export the trained model of a run directory (any app) to ONNX, with its vocabularies.

    Writes ``out`` (default ``<run>/export/model.onnx``; ``<stem>.<part>.onnx`` for several parts), the
    vocabularies as ``<stem>.vocab[_<name>].json`` and ``<stem>.json`` (parts, inputs, outputs, dynamic
    axes, the app's data facts and the measured differences). Returns that manifest.
    """
    from rnnkit.data.vocab import Vocabulary
    from rnnkit.errors import InputError
    from rnnkit.models import load_model, load_vocab
    from rnnkit.models.io import CONFIG_FILE

    run = Path(run)
    info_file = run / "app.json"
    if run.is_file():
        raise InputError(f"{run} is a file, not a run directory; pass the --out of a training run")
    if not run.is_dir():
        raise InputError(f"run directory {run} does not exist; pass the --out of a training run")
    if not info_file.is_file():
        raise InputError(f"{run} is not an rnnkit run directory (no app.json); pass the --out of a training run")
    info = read_json_object(info_file)
    app = info.get("app", "?")
    model_dir = run / "model"
    if not (model_dir / CONFIG_FILE).is_file():
        raise InputError(f"{run} has no trained model yet (model/ is missing): finish the run with "
                         f"`rnnkit {app} train --out {run} --resume`")
    path = Path(out) if out is not None else run / "export" / "model.onnx"
    if path.suffix != ".onnx":
        raise InputError(f"--out {path}: give a file name ending in .onnx")
    if path.is_dir():
        raise InputError(f"--out {path} is a directory; give a file name ending in .onnx")
    inside = path.resolve().parent
    if inside.is_relative_to(run.resolve()) and not inside.is_relative_to((run / "export").resolve()):
        # The manifest (<stem>.json) and vocabularies beside the .onnx would overwrite the run's own files.
        raise InputError(f"--out {path} is inside the run {run}, beside its own files; write the export to "
                         f"{run / 'export'}/ (the default) or outside the run")
    model = load_model(model_dir)
    vocab = load_vocab(model_dir)
    try:
        parts_of(model)
    except TypeError as error:
        raise InputError(f"{run}: {error}") from None
    exported = to_onnx(model, path, check=check, tolerance=tolerance)
    copied = {}
    for name, value in ({"": vocab} if isinstance(vocab, Vocabulary) else vocab or {}).items():
        target = path.with_name(f"{path.stem}.vocab{'_' + name if name else ''}.json")
        copied[name or "vocab"] = str(replace_atomically(target, value.save))
    return json.loads(write_manifest(path, model, exported, {
        "app": app, "run": str(run), "vocab": copied, "facts": info.get("facts", {})}).read_text())


from rnnkit.export import models as _models  # noqa: E402,F401  (registers the task models' parts)

__all__ = ["CHECK_SHAPES", "EXPORTS", "Exported", "OPSET", "Part", "export_run", "max_difference", "parts_of",
           "register", "to_onnx"]
