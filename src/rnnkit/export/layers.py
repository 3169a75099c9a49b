"""A recurrent layer in standard ONNX operators: the placeholder traced for it and its expansion.

While a model is traced, each recurrent layer's backend is :class:`_ExportBackend`, which records the
layer's description and parameters and emits one ``rnnkit::RecurrentLayer`` node. :func:`trace` then
replaces every such node by, per layer and direction, a ``Scan`` over the cell's own step (see the
package docstring); the masks and ``ReverseSequence`` give variable lengths the loop's semantics.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

OPSET = 16  # layer_norm decomposes into reductions here (closer to PyTorch than opset 17's LayerNormalization)
_DOMAIN = "rnnkit"


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


def trace(part) -> bytes:
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

