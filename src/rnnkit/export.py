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
import io
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

OPSET = 16
_DOMAIN = "rnnkit"


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
    from rnnkit.nn import RecurrentLayer

    if isinstance(model, RecurrentLayer):
        return [_layer_part(model)]
    kind = type(model).__name__
    if kind not in EXPORTS:
        raise TypeError(f"rnnkit.export does not know how to export a {kind}; it exports rnnkit's recurrent layers "
                        f"and the task models {sorted(EXPORTS)} (register one with rnnkit.export.register)")
    return EXPORTS[kind](model)


# --------------------------------------------------------------------------- the placeholder
class _LayerOp(torch.autograd.Function):
    """A recurrent layer as one node while tracing; its ``symbolic`` is the ``rnnkit::RecurrentLayer`` placeholder."""

    @staticmethod
    def forward(ctx, layer_id: int, has_lengths: int, x: Tensor, *rest: Tensor):
        from rnnkit.backends.reference import REFERENCE

        spec, params = _TRACED[layer_id]
        lengths, state = (rest[0], rest[1:]) if has_lengths else (None, rest)
        # The tracer records this function as one node; the loop inside must not be recorded too.
        tracing = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)
        try:
            output, final = REFERENCE.run(spec, params, x, tuple(state), lengths)
        finally:
            torch._C._set_tracing_state(tracing)
        return (output, *final)

    @staticmethod
    def symbolic(g, layer_id: int, has_lengths: int, x, *rest):
        outputs = g.op(f"{_DOMAIN}::RecurrentLayer", x, *rest, layer_id_i=layer_id, has_lengths_i=has_lengths,
                       outputs=1 + len(rest) - has_lengths)
        for output in outputs:  # every output is a float tensor of rank 3; the expansion fixes the rest
            output.setType(x.type().with_sizes([None, None, None]))
        return outputs


#: ``(spec, params)`` of each recurrent layer call in the trace in progress, by placeholder id.
_TRACED: dict[int, tuple] = {}


class _ExportBackend:
    """Stands in as ``layer.backend`` while a model is traced: each call of the layer becomes one
    placeholder node, and its description and parameters are kept for the expansion."""

    name = "onnx-export"

    def supports(self, spec) -> bool:
        return True

    def preferred(self, spec) -> bool:
        return False

    def run(self, spec, params, x, state, lengths):
        if isinstance(x, torch.nn.utils.rnn.PackedSequence):
            raise TypeError("ONNX export takes padded batches with lengths=, not a PackedSequence")
        layer_id = len(_TRACED)
        _TRACED[layer_id] = (spec, [dict(group) for group in params])
        rest = ((lengths,) if lengths is not None else ()) + tuple(state)
        outputs = _LayerOp.apply(layer_id, int(lengths is not None), x, *rest)
        return outputs[0], tuple(outputs[1:])


# ------------------------------------------------------------------------ a layer in ONNX ops
class _Step(nn.Module):
    """One step of one layer and direction, as the loop computes it: the Scan body.

    ``(h[, c], x_t, valid_t) -> (h'[, c'], y_t)``: the cell's ``input_projection`` and ``recurrence``
    (and zoneout's expectation), the state kept where ``valid_t`` is false, ``y_t`` zero there.
    """

    def __init__(self, spec, params: dict) -> None:
        super().__init__()
        self.cell, self.options = spec.cell, spec.step_options
        self.zoneout = spec.regularization.zoneout if spec.regularization is not None else 0.0
        if spec.regularization is not None and spec.regularization.training:
            raise ValueError("export a model in evaluation mode (model.eval()): dropout and zoneout masks are random")
        self.num_states = spec.cell.num_states
        self.params = nn.ParameterDict({k: nn.Parameter(v.detach().clone(), requires_grad=False)
                                        for k, v in params.items()})

    def forward(self, *args: Tensor):
        state, x, valid = tuple(args[: self.num_states]), args[-2], args[-1]
        params = dict(self.params)
        new = self.cell.recurrence(self.cell.input_projection(x, params), state, params, **self.options)
        if self.zoneout:
            new = tuple(torch.lerp(n, o, self.zoneout) for n, o in zip(new, state))
        new = tuple(torch.where(valid, n, o) for n, o in zip(new, state))
        return (*new, torch.where(valid, new[0], 0.0))


def _step_graph(spec, params: list[dict], index: int, prefix: str):
    """The ONNX graph of :class:`_Step` for layer/direction ``index``, every name prefixed (Scan body)."""
    import onnx

    from rnnkit.stacking import merged_size

    # Exported with a static batch, so feature sizes the cell reads from shapes (a layer norm's) stay
    # constants; the body computes row by row, and to_onnx checks it on other batch sizes.
    step = _Step(spec, params[index]).eval()
    sizes = [spec.proj_size or spec.hidden_size, spec.hidden_size][: step.num_states]
    # layers past the first read the previous layer's merged output
    features = spec.input_size if index < spec.num_directions else \
        merged_size(spec.proj_size or spec.hidden_size, spec.bidirectional, spec.merge)
    dtype = next(iter(params[index].values())).dtype
    state = tuple(torch.zeros(2, size, dtype=dtype) for size in sizes)
    names = [f"s{k}" for k in range(step.num_states)]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, (*state, torch.zeros(2, features, dtype=dtype), torch.ones(2, 1, dtype=torch.bool)),
                          buffer,
                          dynamo=False, opset_version=OPSET, input_names=[*names, "x", "valid"],
                          output_names=[*(f"{n}_out" for n in names), "y"])
    graph = onnx.load_from_string(buffer.getvalue()).graph
    _prefix_names(graph, prefix)
    for value in [*graph.input, *graph.output]:  # the body sees one step: shapes are not static
        value.type.tensor_type.ClearField("shape")
    return graph


def _prefix_names(graph, prefix: str) -> None:
    """Rename every value, node and initializer of ``graph`` with ``prefix`` (names are global in ONNX)."""
    rename = {}
    for value in [*graph.input, *graph.output, *graph.initializer, *graph.value_info]:
        rename.setdefault(value.name, prefix + value.name)
    for node in graph.node:
        for name in [*node.input, *node.output]:
            if name:
                rename.setdefault(name, prefix + name)
    for collection in (graph.input, graph.output, graph.initializer, graph.value_info):
        for value in collection:
            value.name = rename[value.name]
    for node in graph.node:
        node.name = prefix + node.name
        node.input[:] = [rename.get(n, n) if n else n for n in node.input]
        node.output[:] = [rename[n] for n in node.output]


class _Builder:
    """Appends standard-operator nodes for one placeholder, with unique names."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.nodes, self.initializers, self.count = prefix, [], [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, values, dtype=None) -> str:
        import numpy as np
        from onnx import numpy_helper

        name = self.name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=dtype or np.int64), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attributes):
        from onnx import helper

        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.name(op_type), **attributes))
        return names[0] if outputs == 1 else names


_MERGE_OPS = {"sum": "Add", "mul": "Mul"}


def _layer_nodes(spec, params: list[dict], node, prefix: str) -> _Builder:
    """Standard-operator nodes computing placeholder ``node`` (its inputs and outputs keep their names)."""
    from onnx import helper

    b = _Builder(prefix)
    has_lengths = next(a.i for a in node.attribute if a.name == "has_lengths")
    x, rest = node.input[0], list(node.input[1:])
    lengths, states = (rest[0], rest[1:]) if has_lengths else (None, rest)
    shape = b.op("Shape", [x])
    steps = b.op("Gather", [shape, b.const(0)], axis=0)
    batch = b.op("Gather", [shape, b.const([1])], axis=0)
    if lengths is None:
        lengths = b.op("Expand", [b.op("Unsqueeze", [steps, b.const([0])]), batch])
    time = b.op("Range", [b.const(0), steps, b.const(1)])
    valid = b.op("Less", [b.op("Unsqueeze", [time, b.const([1])]), b.op("Unsqueeze", [lengths, b.const([0])])])
    valid = b.op("Unsqueeze", [valid, b.const([2])])  # (T, B, 1), true where t < length
    finals: list[list[str]] = [[] for _ in states]
    for k in range(spec.num_layers):
        outputs = []
        for direction in range(spec.num_directions):
            index = k * spec.num_directions + direction
            inputs = x if direction == 0 else b.op("ReverseSequence", [x, lengths], batch_axis=1, time_axis=0)
            initial = [b.op("Gather", [s, b.const(index)], axis=0) for s in states]
            body = _step_graph(spec, params, index, f"{prefix}l{k}d{direction}_")
            scanned = b.op("Scan", [*initial, inputs, valid], outputs=len(states) + 1, body=body,
                           num_scan_inputs=2)
            output = scanned[-1]
            if direction == 1:
                output = b.op("ReverseSequence", [output, lengths], batch_axis=1, time_axis=0)
            outputs.append(output)
            for collected, final in zip(finals, scanned[:-1]):
                collected.append(b.op("Unsqueeze", [final, b.const([0])]))
        if len(outputs) == 1:
            x = outputs[0]
        elif spec.merge == "concat":
            x = b.op("Concat", outputs, axis=2)
        elif spec.merge == "mean":
            x = b.op("Mul", [b.op("Add", outputs), b.const(0.5, "float32")])
        else:
            x = b.op(_MERGE_OPS[spec.merge], outputs)
    b.nodes.append(helper.make_node("Identity", [x], [node.output[0]], name=b.name("output")))
    for collected, out in zip(finals, node.output[1:]):
        b.nodes.append(helper.make_node("Concat", collected, [out], axis=0, name=b.name("final")))
    return b


def _replace_placeholders(model, layers: dict[int, tuple]):
    """The traced model with every ``rnnkit::RecurrentLayer`` node replaced by standard operators."""
    import onnx

    graph = model.graph
    kept = []
    for position, node in enumerate(graph.node):
        if node.domain == _DOMAIN and node.op_type == "RecurrentLayer":
            layer_id = next(a.i for a in node.attribute if a.name == "layer_id")
            built = _layer_nodes(*layers[layer_id], node, f"rnn{position}_")
            kept.extend(built.nodes)
            graph.initializer.extend(built.initializers)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    for opset in list(model.opset_import):
        if opset.domain == _DOMAIN:
            model.opset_import.remove(opset)
    # the placeholder's outputs had no shapes; let the checker infer what it can
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def _trace(part: Part) -> bytes:
    """``part`` traced to ONNX with its recurrent layers expanded into standard operators."""
    import onnx

    from rnnkit.nn import RecurrentLayer

    layers = [m for m in part.module.modules() if isinstance(m, RecurrentLayer)]
    saved = [layer.backend for layer in layers]
    example = part.example(2, 3, torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    if _TRACED:
        raise RuntimeError("rnnkit.export traces one model at a time (another export is in progress)")
    try:
        for layer in layers:
            layer.backend = _ExportBackend()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about the shape checks, which hold for any input
            torch.onnx.export(part.module.eval(), example, buffer, dynamo=False, opset_version=OPSET,
                              input_names=part.inputs, output_names=part.outputs, dynamic_axes=part.dynamic,
                              custom_opsets={_DOMAIN: 1}, do_constant_folding=True)
        traced = dict(_TRACED)
    finally:
        for layer, backend in zip(layers, saved):
            layer.backend = backend
        _TRACED.clear()
    model = _replace_placeholders(onnx.load_from_string(buffer.getvalue()), traced)
    return model.SerializeToString()


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
    try:
        for part in parts:
            data = _trace(part)
            target = path if len(parts) == 1 else path.with_name(f"{path.stem}.{part.name}.onnx")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files[part.name] = target
            if check:
                differences[part.name] = max_difference(data, part, shapes)
                if not differences[part.name] <= tolerance:
                    raise ValueError(f"the exported {part.name} differs from PyTorch by {differences[part.name]:.3g} "
                                     f"(tolerance {tolerance:g}); please report this as an rnnkit bug")
    finally:
        model.train(was_training)
    return Exported(files, differences)


def describe(parts: list[Part]) -> dict:
    """JSON-able inputs and outputs of each part, with their dynamic axes (written next to the files)."""
    return {p.name: {"inputs": p.inputs, "outputs": p.outputs,
                     "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in p.dynamic.items()}}
            for p in parts}


# ------------------------------------------------------------------------------ the parts
def _tokens_or_features(vocab_size: int, input_size: int):
    def draw(batch: int, steps: int, generator: torch.Generator) -> Tensor:
        if vocab_size:
            return torch.randint(0, vocab_size, (batch, steps), generator=generator)
        return torch.randn(batch, steps, input_size, generator=generator)
    return draw


def _lengths(batch: int, steps: int, generator: torch.Generator) -> Tensor:
    """Random lengths in [1, steps], the first row full (the padded batch is as long as its longest)."""
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    return lengths


def _states(layer, batch: int, generator: torch.Generator) -> tuple[Tensor, ...]:
    sizes = [layer.proj_size or layer.hidden_size, layer.hidden_size][: layer.cell_type.num_states]
    rows, dtype = layer.num_layers * layer.num_directions, layer.flat_weights()[0].dtype
    return tuple(0.5 * torch.randn(rows, batch, size, generator=generator).to(dtype) for size in sizes)


def _state_names(layer, suffix: str = "") -> list[str]:
    return ["h", "c"][: layer.cell_type.num_states] if not suffix else \
        [f"h{suffix}", f"c{suffix}"][: layer.cell_type.num_states]


class _LayerCall(nn.Module):
    def __init__(self, layer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths, *state):
        output, final = self.layer(x, state if len(state) > 1 else state[0], lengths=lengths)
        return (output, *(final if isinstance(final, tuple) else (final,)))


def _layer_part(layer) -> Part:
    time_axis, batch_axis = (1, 0) if layer.batch_first else (0, 1)
    states = _state_names(layer)

    def example(batch, steps, generator):
        shape = (batch, steps) if layer.batch_first else (steps, batch)
        x = torch.randn(*shape, layer.input_size, generator=generator).to(layer.flat_weights()[0].dtype)
        return (x, _lengths(batch, steps, generator), *_states(layer, batch, generator))

    dynamic = {"input": {batch_axis: "batch", time_axis: "time"}, "output": {batch_axis: "batch", time_axis: "time"},
               "lengths": {0: "batch"}}
    dynamic.update({n: {1: "batch"} for n in [*(f"{s}0" for s in states), *(f"{s}_n" for s in states)]})
    return Part("model", _LayerCall(layer), ["input", "lengths", *(f"{s}0" for s in states)],
                ["output", *(f"{s}_n" for s in states)], dynamic, example)


class _Tagger(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths, *state):
        result = self.model(inputs, lengths=lengths, state=state if len(state) > 1 else state[0])
        final = result.state if isinstance(result.state, tuple) else (result.state,)
        return (result.output, *final)


@register("SequenceTagger")
def _tagger_parts(model) -> list[Part]:
    """Language models and taggers: ``(inputs, lengths, h[, c]) -> (output, h_n[, c_n])``; a text generator
    feeds one token at a time (time = 1) and carries the state, or a whole prime at once."""
    layer, config = model.encoder.rnn, model.config
    draw, states = _tokens_or_features(config.vocab_size, config.input_size), _state_names(layer)

    def example(batch, steps, generator):
        return (draw(batch, steps, generator), _lengths(batch, steps, generator), *_states(layer, batch, generator))

    dynamic = {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "output": {0: "batch", 1: "time"}}
    dynamic.update({n: {1: "batch"} for n in [*states, *(f"{s}_n" for s in states)]})
    return [Part("model", _Tagger(model), ["inputs", "lengths", *states], ["output", *(f"{s}_n" for s in states)],
                 dynamic, example)]


@register("PianoRollModel")
def _pianoroll_parts(model) -> list[Part]:
    """Music: ``(frames (batch, time, keys) 0/1 floats, lengths, h[, c]) -> (logits per key, h_n[, c_n])``;
    generate by feeding one frame at a time (time = 1) and drawing each key from its sigmoid."""
    layer, keys, states = model.rnn, model.config.keys, _state_names(model.rnn)

    def example(batch, steps, generator):
        frames = (torch.rand(batch, steps, keys, generator=generator) < 0.2).float()
        return (frames, _lengths(batch, steps, generator), *_states(layer, batch, generator))

    dynamic = {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "output": {0: "batch", 1: "time"}}
    dynamic.update({n: {1: "batch"} for n in [*states, *(f"{s}_n" for s in states)]})
    return [Part("model", _Tagger(model), ["inputs", "lengths", *states], ["output", *(f"{s}_n" for s in states)],
                 dynamic, example)]


class _Classifier(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths):
        result = self.model(inputs, lengths=lengths)
        return result.output if result.attention is None else (result.output, result.attention)


@register("SequenceClassifier")
def _classifier_parts(model) -> list[Part]:
    """Classifiers and forecasters: ``(inputs, lengths) -> output`` (plus ``attention`` with attention pooling)."""
    config = model.config
    draw = _tokens_or_features(config.vocab_size, config.input_size)
    outputs = ["output"] + (["attention"] if config.summary == "attention" else [])
    dynamic = {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "output": {0: "batch"},
               "attention": {0: "batch", 1: "time"}}
    return [Part("model", _Classifier(model), ["inputs", "lengths"], outputs,
                 {k: v for k, v in dynamic.items() if k in ["inputs", "lengths", *outputs]},
                 lambda batch, steps, g: (draw(batch, steps, g), _lengths(batch, steps, g)))]


class _Encoder(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths):
        state = self.model.encode(inputs, lengths)
        hidden = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        return (*hidden, state.keys, state.mask)


class _DecoderStep(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens, *rest):
        from rnnkit.models.seq2seq import Seq2SeqState

        hidden, keys, mask = rest[:-2], rest[-2], rest[-1]
        logits, state = self.model.step(tokens, Seq2SeqState(hidden if len(hidden) > 1 else hidden[0], keys, mask))
        new = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        weights = state.attention if state.attention is not None else torch.zeros_like(mask, dtype=logits.dtype)
        return (logits, *new, weights)


@register("Seq2Seq")
def _seq2seq_parts(model) -> list[Part]:
    """The translator: ``encoder (inputs, lengths) -> (h[, c], keys, mask)`` and one decoder step
    ``decoder_step (tokens, h[, c], keys, mask) -> (logits, h_n[, c_n], attention)``; decode by feeding
    ``BOS`` and then each chosen token until ``EOS``."""
    config = model.config
    draw = _tokens_or_features(config.vocab_size, config.input_size)
    states = _state_names(model.rnn)
    encoder = _Encoder(model)

    def encoder_example(batch, steps, generator):
        return (draw(batch, steps, generator), _lengths(batch, steps, generator))

    def step_example(batch, steps, generator):
        with torch.no_grad():
            encoded = encoder(*encoder_example(batch, steps, generator))
        tokens = torch.randint(0, config.target_vocab_size, (batch,), generator=generator)
        hidden = tuple(h + 0.1 * torch.randn(h.shape, generator=generator) for h in encoded[:-2])
        return (tokens, *hidden, *encoded[-2:])

    keys = {"keys": {0: "batch", 1: "source_time"}, "mask": {0: "batch", 1: "source_time"}}
    hidden = {n: {1: "batch"} for n in [*states, *(f"{s}_n" for s in states)]}
    return [
        Part("encoder", encoder, ["inputs", "lengths"], [*states, "keys", "mask"],
             {"inputs": {0: "batch", 1: "source_time"}, "lengths": {0: "batch"}, **keys,
              **{n: {1: "batch"} for n in states}}, encoder_example),
        Part("decoder_step", _DecoderStep(model), ["tokens", *states, "keys", "mask"],
             ["logits", *(f"{s}_n" for s in states), "attention"],
             {"tokens": {0: "batch"}, "logits": {0: "batch"}, "attention": {0: "batch", 1: "source_time"},
              **keys, **hidden}, step_example),
    ]


class _Recognizer(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths):
        return self.model(inputs, lengths=lengths).output


@register("CTCRecognizer")
def _ctc_parts(model) -> list[Part]:
    """Speech/handwriting CTC: ``(inputs (batch, time, features), lengths) -> log_probs (batch, frames, classes)``;
    decode greedily by collapsing repeats and dropping class 0 (the blank)."""
    size = model.config.input_size
    return [Part("model", _Recognizer(model), ["inputs", "lengths"], ["log_probs"],
                 {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "log_probs": {0: "batch", 1: "frames"}},
                 lambda batch, steps, g: (torch.randn(batch, steps, size, generator=g), _lengths(batch, steps, g)))]


class _ImageEncoder(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, images):
        state = self.model.encode(images)
        hidden = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        return (*hidden, state.keys)


class _CaptionStep(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens, *rest):
        from rnnkit.models.captioner import CaptionState

        hidden, keys = rest[:-1], rest[-1]
        logits, state = self.model.step(tokens, CaptionState(hidden if len(hidden) > 1 else hidden[0], keys))
        new = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        return (logits, *new, state.attention)


@register("Captioner")
def _captioner_parts(model) -> list[Part]:
    """Image captioning: ``encoder (images) -> (h[, c], keys)`` and ``decoder_step (tokens, h[, c], keys) ->
    (logits, h_n[, c_n], attention)``, decoded like the translator's."""
    config, states = model.config, _state_names(model.rnn)
    encoder = _ImageEncoder(model)

    def images(batch, steps, generator):  # "steps" sets the image size: regions vary like a time axis
        side = 2 ** config.conv_layers * (2 + steps % 3)  # at least 2x2 regions (the encoder branches on 1)
        return (torch.rand(batch, config.image_channels, side, side + 2 ** config.conv_layers, generator=generator),)

    def step_example(batch, steps, generator):
        with torch.no_grad():
            encoded = encoder(*images(batch, steps, generator))
        return (torch.randint(0, config.vocab_size, (batch,), generator=generator), *encoded)

    regions = {"keys": {0: "batch", 1: "regions"}}
    return [
        Part("encoder", encoder, ["images"], [*states, "keys"],
             {"images": {0: "batch", 2: "height", 3: "width"}, **regions, **{n: {1: "batch"} for n in states}}, images),
        Part("decoder_step", _CaptionStep(model), ["tokens", *states, "keys"],
             ["logits", *(f"{s}_n" for s in states), "attention"],
             {"tokens": {0: "batch"}, "logits": {0: "batch"}, "attention": {0: "batch", 1: "regions"}, **regions,
              **{n: {1: "batch"} for n in [*states, *(f"{s}_n" for s in states)]}}, step_example),
    ]


def write_manifest(path: Path, model: nn.Module, exported: Exported, extra: dict | None = None) -> Path:
    """``<stem>.json`` next to the files: each part's inputs, outputs, dynamic axes and the measured difference."""
    manifest = {"kind": type(model).__name__, "opset": OPSET, "parts": describe(parts_of(model)),
                **exported.to_dict(), **(extra or {})}
    target = path.with_suffix(".json")
    target.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return target


# ------------------------------------------------------------------------------------ runs
def export_run(run: str | Path, out: str | Path | None = None, *, check: bool = True,
               tolerance: float = 1e-4) -> dict:
    """Export the trained model of a run directory (any app) to ONNX, with its vocabularies.

    Writes ``out`` (default ``<run>/export/model.onnx``; ``<stem>.<part>.onnx`` for several parts), the
    vocabularies as ``<stem>.vocab[_<name>].json`` and ``<stem>.json`` (parts, inputs, outputs, dynamic
    axes, the app's data facts and the measured differences). Returns that manifest.
    """
    import shutil

    from rnnkit.errors import InputError
    from rnnkit.models import load_model
    from rnnkit.models.io import CONFIG_FILE

    run = Path(run)
    info_file = run / "app.json"
    if not run.is_dir():
        raise InputError(f"run directory {run} does not exist; pass the --out of a training run")
    if not info_file.is_file():
        raise InputError(f"{run} is not an rnnkit run directory (no app.json); pass the --out of a training run")
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{info_file} is damaged (not valid JSON)") from None
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
    model = load_model(model_dir)
    try:
        parts_of(model)
    except TypeError as error:
        raise InputError(f"{run}: {error}") from None
    exported = to_onnx(model, path, check=check, tolerance=tolerance)
    vocab_files = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8")).get("vocab", {})
    copied = {}
    for name, file in vocab_files.items():
        target = path.with_name(f"{path.stem}.vocab{'_' + name if name else ''}.json")
        shutil.copyfile(model_dir / file, target)
        copied[name or "vocab"] = str(target)
    return json.loads(write_manifest(path, model, exported, {
        "app": app, "run": str(run), "vocab": copied, "facts": info.get("facts", {})}).read_text())
