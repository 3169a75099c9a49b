"""Drop-in replacements for ``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU``.

Same constructor arguments, same ``forward(input, hx)`` and return shapes, same parameter names and
layout (a torch.nn ``state_dict`` loads with ``strict=True``, and back). On top of torch.nn:
``lengths=`` for padded variable-length batches, bidirectional ``merge`` modes, named ``init``
schemes, and ``backend=`` to choose between torch's fused kernels and rnnkit's readable reference loop.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit import _checks, backends, loop
from rnnkit.backends.reference import REFERENCE
from rnnkit.cells import ElmanCell, GRUCell, LSTMCell, RecurrentCell
from rnnkit.cells.base import ParameterSpec
from rnnkit.cells.elman import NONLINEARITIES
from rnnkit.errors import ArgumentTypeError, ShapeError
from rnnkit.init import SCHEMES, initialize_
from rnnkit.stacking import MERGE_MODES, merged_size

#: Options that regularise the recurrence itself (torch.nn has none of them); each is a probability in [0, 1).
RECURRENT_REGULARIZERS = ("recurrent_dropout", "zoneout", "weight_drop")

_LAYER_ARGS = """
    Args:
        input_size: features of each input step.
        hidden_size: features of the hidden state.
        num_layers: stacked recurrent layers. Default: 1.
        bias: use ``b_ih`` and ``b_hh``. Default: ``True``.
        batch_first: input and output are ``(batch, seq, feature)`` instead of ``(seq, batch, feature)``.
        dropout: dropout probability on the outputs of every layer but the last. Default: 0.
        bidirectional: add a layer reading each sequence backwards. Default: ``False``.
        merge: how the two directions combine: ``'concat'`` (torch.nn's, output ``2*hidden_size``),
            ``'sum'``, ``'mean'`` or ``'mul'`` (output ``hidden_size``). Keyword only.
        init: ``'default'`` (torch.nn's), ``'identity'``, ``'orthogonal'`` or ``'xavier'``; see
            ``rnnkit.init``. Keyword only.
        backend: ``'auto'`` (torch's fused kernels when they apply), ``'builtin'`` or ``'reference'``
            (rnnkit's readable loop over the cell's step). Keyword only.
        recurrent_dropout: variational dropout on the state the recurrent weights read, one mask per
            sequence held for all its steps (Gal & Ghahramani 2016); training only. Keyword only.
        zoneout: probability that each state unit keeps its previous value at a step (Krueger et al.
            2016); outside training the state moves to the expectation. Keyword only. While they act,
            LSTM and GRU layers run on the fused engine (CPU), other cells on the reference loop.
        weight_drop: DropConnect on the recurrent weights (Wan et al. 2013), AWD-LSTM's regulariser
            (Merity et al. 2018): in training each forward call multiplies ``weight_hh`` by a fresh dropout
            mask shared by all steps and sequences of the call. The recurrence itself is untouched, so
            every backend (torch's fused kernels included) keeps its speed. Keyword only.

    Shape:
        input: ``(seq, batch, input_size)``, ``(batch, seq, input_size)`` if ``batch_first``,
        ``(seq, input_size)`` unbatched, or a ``PackedSequence``.
        lengths: optional ``(batch,)`` integers in ``[1, seq]``, any order; outputs past a sequence's
        length are zero and its final state is the one at its last valid step.
        output: like input with ``D * hidden_size`` features (``D = 2`` for a bidirectional ``concat``,
        else 1); a ``PackedSequence`` for packed input.
        h_n (and c_n): ``(num_directions * num_layers, batch, hidden_size)``.
"""


class RecurrentLayer(nn.Module):
    """Multi-layer, optionally bidirectional recurrent network over any rnnkit cell type.

    Subclasses set ``cell_type``. The layer registers the parameters the cell declares
    (``cell_type.parameter_specs``) once per layer and direction, named ``<name>_l{k}[_reverse]``: for the
    classic cells torch.nn's ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``.
    """

    cell_type: type[RecurrentCell] = RecurrentCell
    #: Features of the output ``h`` when the cell projects it (LSTM only), else 0: torch.nn's attribute.
    proj_size: int = 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        merge: str = "concat",
        init: str = "default",
        backend: str = "auto",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        weight_drop: float = 0.0,
        forget_bias: float | None = None,
        proj_size: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        num_layers = _checks.as_int(num_layers)
        # Each check raises what torch.nn raises for the same mistake (see rnnkit.errors).
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            _checks.positive_int(name, value)
        _checks.flag("bias", bias)
        _checks.flag("batch_first", batch_first)  # bidirectional: any truthy value, as torch.nn
        _checks.probability("dropout", dropout)
        if proj_size is not None:  # rk.LSTM takes proj_size itself and does not pass it on; torch.nn refuses even 0
            raise ValueError(f"proj_size={proj_size!r}: only LSTMs have an output projection (as torch.nn: "
                             f"proj_size argument is only supported for LSTM), not {type(self).__name__}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} has no effect with num_layers=1: it applies between stacked layers",
                stacklevel=2,
            )
        _checks.choice("merge", merge, MERGE_MODES)
        if merge != "concat" and not bidirectional:
            warnings.warn(f"merge={merge!r} has no effect without bidirectional=True", stacklevel=2)
        _checks.choice("init", init, SCHEMES)
        _checks.choice("backend", backend, backends.names())
        for name, value in zip(RECURRENT_REGULARIZERS, (recurrent_dropout, zoneout, weight_drop), strict=True):
            _checks.probability(name, value, closed=False)
        if recurrent_dropout and not self.cell_type.accepts_recurrent_mask:
            raise ValueError(f"recurrent_dropout needs a cell whose step reads its state through recurrent weights; "
                             f"{self.cell_type.__name__} has none (use dropout= between layers)")
        self.recurrent_dropout, self.zoneout = float(recurrent_dropout), float(zoneout)
        self.weight_drop = float(weight_drop)
        if forget_bias is not None:
            if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)) or not math.isfinite(forget_bias):
                raise ValueError(f"forget_bias must be a finite number, got {forget_bias!r}")
            if self.cell_type.forget_gate is None:
                raise ValueError(f"forget_bias applies to LSTMs only (cells with a forget gate), not to {type(self).__name__}")
            if not bias:
                raise ValueError("forget_bias needs bias=True: the layer has no bias to set")
        self.forget_bias = forget_bias
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.merge, self.init, self.backend = bool(bidirectional), merge, init, backend
        self._groups: list[list[tuple[ParameterSpec, str]]] = []  # per layer and direction: (spec, attribute)
        layer_input = input_size
        for layer in range(num_layers):
            projection = {"proj_size": self.proj_size} if self.proj_size else {}
            specs = self.cell_type.parameter_specs(layer_input, hidden_size, self.bias, **self.step_options(),
                                                   **projection)
            for suffix in ("", "_reverse")[: self.num_directions]:
                group = []
                for spec in specs:
                    name = f"{spec.name}_l{layer}{suffix}"
                    self.register_parameter(name, nn.Parameter(torch.empty(spec.shape, device=device, dtype=dtype)))
                    group.append((spec, name))
                self._groups.append(group)
            layer_input = merged_size(self.proj_size or hidden_size, self.bidirectional, merge)
        if weight_drop and not any(spec.role == "recurrent" for spec, _ in self._groups[0]):
            raise ValueError(f"weight_drop needs a cell with recurrent weights; {self.cell_type.__name__} has none "
                             "(use dropout= between layers)")
        backends.check_runnable(backend, self.describe())
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features of each output step."""
        return merged_size(self.proj_size or self.hidden_size, self.bidirectional, self.merge)

    def reset_parameters(self) -> None:
        """Re-initialise with the scheme given as ``init`` (and ``forget_bias`` on top)."""
        initialize_(self, self.init, forget_bias=self.forget_bias)

    def regularization(self) -> loop.Regularization | None:
        """The recurrent regularisers in effect now: recurrent dropout in training, zoneout always (its
        expectation outside training); ``None`` when the plain recurrence applies, which every backend runs."""
        dropout = self.recurrent_dropout if self.training else 0.0
        if not dropout and not self.zoneout:
            return None
        return loop.Regularization(dropout, self.zoneout, self.training)

    def step_options(self) -> dict:
        """Keyword arguments for ``cell_type.recurrence``."""
        return {}

    def describe(self) -> backends.LayerSpec:
        """A frozen description of this layer as it runs now (mode and regularisers included): what its
        backends receive, beside :meth:`parameter_groups` (``rnnkit.backends.spec``)."""
        weight = self.flat_weights()[0]
        return backends.LayerSpec(
            cell=self.cell_type, layer_name=type(self).__name__, input_size=self.input_size,
            hidden_size=self.hidden_size, num_layers=self.num_layers, bias=self.bias,
            bidirectional=self.bidirectional, merge=self.merge, proj_size=self.proj_size, dropout=self.dropout,
            training=self.training, regularization=self.regularization(),
            options=tuple(sorted(self.step_options().items())), device_type=weight.device.type, dtype=weight.dtype,
        )

    def named_groups(self) -> list[list[tuple[ParameterSpec, Tensor]]]:
        """The parameters with their cell's specs, one group per layer and direction (torch.nn's order)."""
        return [[(spec, getattr(self, name)) for spec, name in group] for group in self._groups]

    def parameter_groups(self) -> list[dict[str, Tensor]]:
        """The cell's parameters by name (``weight_ih``, ...), one mapping per layer and direction."""
        return [{spec.name: tensor for spec, tensor in group} for group in self.named_groups()]

    def forward_weights(self) -> list[dict[str, Tensor]]:
        """What this forward call computes with: :meth:`parameter_groups`, the recurrent weights through a
        fresh DropConnect mask while ``weight_drop`` acts (training)."""
        if not (self.training and self.weight_drop):
            return self.parameter_groups()
        return [{spec.name: nn.functional.dropout(tensor, self.weight_drop) if spec.role == "recurrent" else tensor
                 for spec, tensor in group} for group in self.named_groups()]

    def flat_weights(self) -> list[Tensor]:
        """Parameters in torch.nn's flat order (per layer and direction: w_ih, w_hh, b_ih, b_hh)."""
        return [weight for group in self.all_weights for weight in group]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """torch.nn's view of the parameters: one list per layer and direction."""
        return [[tensor for _, tensor in group] for group in self.named_groups()]

    # torch.nn.RNNBase's private views, which torch utilities read (torch.ao's numeric suite, fx
    # quantization). Computed on each access from the attributes, so they follow load_state_dict,
    # .to(), parametrizations (weight_norm) and pruning, which replace or wrap those attributes.
    @property
    def _flat_weights_names(self) -> list[str]:
        """The parameter names in torch.nn's flat order (``weight_ih_l0``, ``weight_hh_l0``, ...)."""
        return [name for group in self._groups for _, name in group]

    @property
    def _all_weights(self) -> list[list[str]]:
        """The parameter names, one list per layer and direction (torch.nn.RNNBase's ``_all_weights``)."""
        return [[name for _, name in group] for group in self._groups]

    @property
    def _flat_weights(self) -> list[Tensor]:
        """The tensors the forward uses, in torch.nn's flat order (what ``getattr`` gives for each name)."""
        return [getattr(self, name) for name in self._flat_weights_names]

    def forward(self, input, hx=None, *, lengths=None):
        """Run the network; returns ``(output, h_n)``, or ``(output, (h_n, c_n))`` for an LSTM."""
        packed = isinstance(input, PackedSequence)
        x = input.data if packed else input
        _checks.floating_input(x, self.flat_weights()[0].dtype)
        if packed:
            if lengths is not None:
                raise ValueError("pass either a PackedSequence or lengths=, not both: the packing holds the lengths")
            batch, batched = int(input.batch_sizes[0]), True
            self._check_features(x, f"(packed steps, {self.input_size})")
        else:
            batched = x.dim() == 3
            if x.dim() not in (2, 3):
                raise ShapeError(
                    f"{type(self).__name__} expected a 3-D batched input {self._input_layout()} or a 2-D unbatched "
                    f"input (seq, {self.input_size}), got {x.dim()}-D of shape {tuple(x.shape)}"
                )
            self._check_features(x, self._input_layout())
            if not batched:
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
            batch = x.shape[1]
            if x.shape[0] == 0:
                raise ShapeError("the input sequence is empty (0 time steps); give at least one step")
            if lengths is not None:
                lengths = _checks.lengths_tensor(lengths, batch, x.shape[0])
        state = self._initial_state(hx, batch, batched, x)

        observer = loop.active_observer()
        if observer is not None:  # rnnkit.diagnostics: the readable loop, whose every step it sees
            observer.layer(self)
        spec = self.describe()
        backend = REFERENCE if observer is not None else backends.select(self, spec)
        output, final = backend.run(spec, self.forward_weights(), input if packed else x, state, lengths)

        if not packed:
            output = output.squeeze(1) if not batched else output.transpose(0, 1) if self.batch_first else output
        if not batched:
            final = tuple(s.squeeze(1) for s in final)
        return output, (final[0] if self.cell_type.num_states == 1 else final)

    def _input_layout(self) -> str:
        return f"(batch, seq, {self.input_size})" if self.batch_first else f"(seq, batch, {self.input_size})"

    def _check_features(self, x: Tensor, layout: str) -> None:
        if x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__} expected input of shape {layout} with input_size={self.input_size} "
                f"features, got {x.shape[-1]} features (input shape {tuple(x.shape)})"
            )

    def _initial_state(self, hx, batch: int, batched: bool, x: Tensor) -> tuple[Tensor, ...]:
        # h has proj_size features when the LSTM projects it; c (and h otherwise) hidden_size
        sizes = (self.proj_size or self.hidden_size, self.hidden_size)[: self.cell_type.num_states]
        shapes = [(self.num_layers * self.num_directions, batch, size) for size in sizes]
        if hx is None:
            return tuple(torch.zeros(shape, dtype=x.dtype, device=x.device) for shape in shapes)
        parts = _checks.state_tuple(hx, self.cell_type.num_states, type(self).__name__)
        for name, part, shape in zip(("h_0", "c_0"), parts, shapes):
            _checks.state_tensor(name, part, shape if batched else (shape[0], shape[2]), x)
        return parts if batched else tuple(p.unsqueeze(1) for p in parts)

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self.flatten_parameters()
        return result

    def flatten_parameters(self) -> None:
        """On CUDA with cuDNN, lay all weights in one buffer so cuDNN reads them without copying.

        A no-op elsewhere. Only layers whose weights cuDNN can consume as one network qualify (a
        bidirectional merge other than ``concat`` runs one kernel per layer instead).
        """
        weights = self.flat_weights()
        if not (weights[0].is_cuda and torch.backends.cudnn.is_acceptable(weights[0])):
            return
        if self.bidirectional and self.merge != "concat":
            return
        if len({w.data_ptr() for w in weights}) != len(weights) or len({w.dtype for w in weights}) != 1:
            return
        mode = self.cell_type.torch_kernel(self.step_options())
        if mode is None:
            return
        import torch.backends.cudnn.rnn as cudnn_rnn

        with torch.cuda.device_of(weights[0]), torch.no_grad():
            if torch._use_cudnn_rnn_flatten_weight():
                torch._cudnn_rnn_flatten_weight(
                    weights, (4 if self.bias else 2) + (1 if self.proj_size else 0), self.input_size,
                    cudnn_rnn.get_cudnn_mode(mode), self.hidden_size, self.proj_size, self.num_layers,
                    self.batch_first, self.bidirectional,
                )

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0,
                    "bidirectional": False, "proj_size": 0, "merge": "concat", "init": "default", "backend": "auto",
                    "recurrent_dropout": 0.0, "zoneout": 0.0, "weight_drop": 0.0, "forget_bias": None}
        for name, default in defaults.items():
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text


class RNN(RecurrentLayer):
    __doc__ = (
        "Elman RNN layer, a drop-in for ``torch.nn.RNN``: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.\n\n"
        "    Each step is ``rnnkit.ElmanCell``. ``nonlinearity`` is ``'tanh'`` (default) or ``'relu'``.\n"
        + _LAYER_ARGS
        + """
    >>> rnn = RNN(8, 16, num_layers=2, nonlinearity="relu", init="identity")
    >>> output, h_n = rnn(torch.randn(5, 3, 8))
    >>> output.shape, h_n.shape
    (torch.Size([5, 3, 16]), torch.Size([2, 3, 16]))
    """
    )

    cell_type = ElmanCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, **kwargs) -> None:
        _checks.choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, **kwargs)

    def step_options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + f", nonlinearity={self.nonlinearity!r}"


class _Default:
    """LSTM's ``proj_size`` when not given by name (it may come by position, as in torch.nn); shown as 0."""

    def __repr__(self) -> str:
        return "0"


_UNSET: Any = _Default()


class LSTM(RecurrentLayer):
    __doc__ = (
        "LSTM layer, a drop-in for ``torch.nn.LSTM`` (gate order ``i, f, g, o``; see ``rnnkit.LSTMCell``).\n"
        + _LAYER_ARGS
        + """        forget_bias: if given, the forget-gate bias is set to this value after ``init``
            (1.0 per Jozefowicz et al. 2015). Keyword only.

    >>> lstm = LSTM(8, 16, bidirectional=True, forget_bias=1.0)
    >>> output, (h_n, c_n) = lstm(torch.randn(5, 3, 8), lengths=torch.tensor([5, 2, 4]))
    >>> output.shape, h_n.shape
    (torch.Size([5, 3, 32]), torch.Size([2, 3, 16]))
    """
    )

    cell_type = LSTMCell

    def __init__(self, *args, proj_size: int = _UNSET, **kwargs) -> None:
        if len(args) > 7:  # torch.nn.LSTM's positional order goes on: proj_size, device, dtype
            if len(args) > 10 or proj_size is not _UNSET or any(k in kwargs for k in ("device", "dtype")[: len(args) - 8]):
                raise TypeError(f"LSTM takes at most 10 positional arguments (torch.nn.LSTM's order, proj_size, "
                                f"device, dtype last), each given once; got {len(args)} and {sorted(kwargs)}")
            proj_size = args[7]
            kwargs.update(zip(("device", "dtype"), args[8:]))
            args = args[:7]
        proj_size = 0 if proj_size is _UNSET else _checks.as_int(proj_size)
        hidden_size = args[1] if len(args) > 1 else kwargs.get("hidden_size")
        if isinstance(proj_size, bool) or not isinstance(proj_size, int):
            raise ArgumentTypeError(f"proj_size must be an integer >= 0 (0: no projection), got {proj_size!r}")
        if proj_size < 0:
            raise ValueError(f"proj_size must be an integer >= 0 (0: no projection), got {proj_size!r}")
        if proj_size and isinstance(hidden_size, int) and proj_size >= hidden_size:
            raise ValueError(f"proj_size={proj_size} must be smaller than hidden_size={hidden_size}: the projection "
                             "maps the hidden state to fewer features (as torch.nn.LSTM requires)")
        if proj_size and not self.cell_type.supports_projection:
            raise ValueError(f"proj_size: {self.cell_type.__name__} has no output projection; use rk.LSTM")
        self.proj_size = proj_size
        super().__init__(*args, **kwargs)


class GRU(RecurrentLayer):
    __doc__ = (
        "GRU layer, a drop-in for ``torch.nn.GRU`` (gate order ``r, z, n``; see ``rnnkit.GRUCell``).\n"
        + _LAYER_ARGS
        + """
    >>> gru = GRU(8, 16, batch_first=True, bidirectional=True, merge="sum")
    >>> output, h_n = gru(torch.randn(3, 5, 8))
    >>> output.shape, h_n.shape
    (torch.Size([3, 5, 16]), torch.Size([2, 3, 16]))
    """
    )

    cell_type = GRUCell
