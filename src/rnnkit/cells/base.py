"""What every recurrent cell shares: the parameters it declares, argument checks and the step contract.

A cell describes one time step and nothing about time. It declares its parameters
(:meth:`RecurrentCell.parameter_specs`: names, shapes and roles); a cell module, and every layer built
from the cell, registers exactly those (a layer once per layer and direction, named
``<name>_l{k}[_reverse]`` as torch.nn does). Its math lives in two static functions that receive the
parameters as a mapping by name, and that the cell's own ``forward`` and the layers' time loop
(``rnnkit.loop``) both call, so a single definition is the reference for the cell and every layer:

* ``input_projection(x, params)`` -- the part that depends on the input only. The loop computes it
  for all time steps at once (for the classic cells: one matrix multiply).
* ``recurrence(x_proj, state, params, **options)`` -- the part that needs the previous state.
  ``state`` is a tuple (``(h,)`` or ``(h, c)``) and the new state is returned the same way.
* optionally ``parallel_scan(x_proj, state, params, *, lengths, **options) -> (outputs, final_state)``
  -- all steps at once, for cells whose recurrence is linear in the state (minGRU, minLSTM); the
  loop uses it instead of stepping, and ``recurrence`` stays the step-by-step reference.

A parameter's *role* tells ``rnnkit.init`` how each ``init=`` scheme treats it: ``"input"`` and
``"recurrent"`` weights (``chunks`` gate blocks stacked in the rows, each initialised on its own),
``"bias"``, ``"gain"`` (ones: a normalisation's scale), ``"shift"`` (zeros: its offset),
``"peephole"`` and ``"projection"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit import _checks
from rnnkit.errors import ShapeError

State = tuple[Tensor, ...]
Params = Mapping[str, Tensor]
ROLES = ("input", "recurrent", "bias", "gain", "shift", "peephole", "projection")


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter a cell declares: its name (torch.nn's where torch.nn has it), shape and role."""

    name: str
    shape: tuple[int, ...]
    role: str
    chunks: int = 1  # gate blocks stacked in the rows; initialisation schemes treat each on its own

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown parameter role {self.role!r}; expected one of {', '.join(ROLES)}")


def classic_specs(num_chunks: int, input_size: int, hidden_size: int, bias: bool,
                  recurrent_size: int | None = None) -> list[ParameterSpec]:
    """torch.nn's four parameters of a cell with ``num_chunks`` gate blocks, in torch.nn's order.

    ``recurrent_size``: features of the state the recurrent weight reads, if not ``hidden_size``
    (an LSTM with ``proj_size`` reads its projected ``h``).
    """
    rows = num_chunks * hidden_size
    specs = [ParameterSpec("weight_ih", (rows, input_size), "input", num_chunks),
             ParameterSpec("weight_hh", (rows, recurrent_size or hidden_size), "recurrent", num_chunks)]
    if bias:
        specs += [ParameterSpec("bias_ih", (rows,), "bias", num_chunks),
                  ParameterSpec("bias_hh", (rows,), "bias", num_chunks)]
    return specs


class RecurrentCell(nn.Module):
    """Base class of the cells.

    Subclasses set ``num_chunks`` (gate blocks in the classic weights), ``num_states`` (1 for ``h``,
    2 for ``(h, c)``), implement ``recurrence`` (and ``input_projection`` unless it is
    ``W_ih x + b_ih + b_hh``), and override :meth:`parameter_specs` when they need other parameters
    than torch.nn's four.
    """

    num_chunks: ClassVar[int] = 1
    num_states: ClassVar[int] = 1
    #: Index of the forget gate among the gate blocks, for ``forget_bias`` (LSTM-like cells), else None.
    forget_gate: ClassVar[int | None] = None
    #: torch's fused kernel computing exactly this cell, by the ``nonlinearity`` step option (None for
    #: cells without one). Read only from the class that sets it: a subclass changing the math must
    #: not inherit a kernel.
    torch_kernels: ClassVar[dict] = {}
    #: The fused engine's kernel computing exactly this cell (``rnnkit.engine.BY_NAME``), for cells without a
    #: torch kernel (the classic cells map through ``torch_kernels``). Read only from the class that sets it.
    engine_kernel: ClassVar[str | None] = None
    #: Whether ``recurrence`` takes ``recurrent_mask=`` (a ``(batch, hidden)`` mask multiplying the state
    #: the recurrent weights read), which variational recurrent dropout needs.
    accepts_recurrent_mask: ClassVar[bool] = False
    #: Whether ``parameter_specs`` takes ``proj_size`` (an LSTM's output projection, torch.nn's ``proj_size``).
    supports_projection: ClassVar[bool] = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        # torch.nn's cells accept sizes of 0 (empty parameters and states) and any truthy ``bias``.
        _checks.size("input_size", input_size)
        _checks.size("hidden_size", hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        self._specs = self.parameter_specs(input_size, hidden_size, self.bias, **self.step_options())
        for spec in self._specs:
            self.register_parameter(spec.name, nn.Parameter(torch.empty(spec.shape, device=device, dtype=dtype)))
        if not self.bias:  # torch.nn's cells have bias_ih = bias_hh = None then
            for name in ("bias_ih", "bias_hh"):
                if name not in self._parameters:
                    self.register_parameter(name, None)
        self.reset_parameters()

    @classmethod
    def parameter_specs(cls, input_size: int, hidden_size: int, bias: bool = True, **options) -> list[ParameterSpec]:
        """The parameters of one cell (one layer and direction of a layer); torch.nn's four by default."""
        return classic_specs(cls.num_chunks, input_size, hidden_size, bias)

    @classmethod
    def torch_kernel(cls, options: Mapping) -> str | None:
        """The name of torch's fused kernel for this cell (``'LSTM'``, ``'GRU'``, ``'RNN_TANH'``, ...), or None."""
        return cls.__dict__.get("torch_kernels", {}).get(options.get("nonlinearity"))

    def reset_parameters(self) -> None:
        """torch.nn's default: weights and biases U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (gains 1, shifts 0)."""
        from rnnkit.init import initialize_

        if self.hidden_size == 0:  # every parameter is empty (and U(±1/sqrt(0)) has no bound)
            return
        initialize_(self, "default")

    def named_groups(self) -> list[list[tuple[ParameterSpec, Tensor]]]:
        """The parameters with their specs, one group (a cell has one; a layer one per layer and direction)."""
        return [[(spec, getattr(self, spec.name)) for spec in self._specs]]

    def parameter_groups(self) -> list[dict[str, Tensor]]:
        """The parameters by name, one mapping per group: what the step functions receive."""
        return [{spec.name: tensor for spec, tensor in group} for group in self.named_groups()]

    def step_options(self) -> dict:
        """Keyword arguments this cell passes to ``recurrence`` (e.g. the Elman nonlinearity)."""
        return {}

    @staticmethod
    def input_projection(x: Tensor, params: Params) -> Tensor:
        """``W_ih x + b_ih + b_hh``: both biases fold in when they are simply added to the gates."""
        bias = params["bias_ih"] + params["bias_hh"] if "bias_ih" in params else None
        return F.linear(x, params["weight_ih"], bias)

    @staticmethod
    def recurrence(x_proj: Tensor, state: State, params: Params, **options) -> State:
        raise NotImplementedError

    def forward(self, input: Tensor, hx=None):
        """One step, with torch.nn's signature: ``input`` is ``(batch, input_size)`` or ``(input_size,)``."""
        params = self.parameter_groups()[0]
        _checks.floating_input(input, next(iter(params.values())).dtype)
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__} expected input of shape (batch, {self.input_size}) or "
                f"({self.input_size},), got {tuple(input.shape)}"
            )
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        state = self._state_from_hx(hx, x.shape[0], batched, x)
        x_proj = self.input_projection(x, params)
        state = self.recurrence(x_proj, state, params, **self.step_options())
        if not batched:
            state = tuple(s.squeeze(0) for s in state)
        return state[0] if self.num_states == 1 else state

    def _state_from_hx(self, hx, batch: int, batched: bool, like: Tensor) -> State:
        shape = (batch, self.hidden_size)
        if hx is None:
            zeros = torch.zeros(shape, dtype=like.dtype, device=like.device)
            return (zeros,) * self.num_states
        parts = _checks.state_tuple(hx, self.num_states, type(self).__name__)
        expected = shape if batched else (self.hidden_size,)
        for name, part in zip(("h", "c"), parts):
            _checks.state_tensor(f"hx ({name})", part, expected, like)
        return parts if batched else tuple(p.unsqueeze(0) for p in parts)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"
