"""Gradient flow through time: how much of the loss reaches each time step and layer.

A recurrent network learns a dependency across ``k`` steps only if the loss's gradient survives the
trip back through ``k`` applications of the recurrence. For a tanh RNN, ``dh_t/dh_{t-1} =
diag(1 - h_t^2) W_hh``, so ``||dL/dh_t||`` shrinks (or grows) roughly geometrically with the distance
to the loss, at a rate set by the singular values of ``W_hh`` (Bengio et al. 1994; Pascanu et al.
2013). The LSTM's cell state adds a path whose Jacobian is the forget gate itself, so with the gate
near 1 the gradient travels far (Hochreiter & Schmidhuber 1997; Gers et al. 2000).

:func:`gradient_flow` measures this on a real model and batch. It runs the model's rnnkit recurrent
layers through the reference loop (same weights, same result) while recording every step's state,
then asks autograd for ``dL/dh_t``: the total derivative, through every later step and upper layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from rnnkit import loop
from rnnkit.types import ModelOutput
from rnnkit.nn import RecurrentLayer


@dataclass
class GradientFlow:
    """Gradient norms of one model on one batch.

    Attributes:
        steps: for each recurrent layer and direction (``"lstm.l0"``, ``"lstm.l0_reverse"``), the mean
            over the batch of ``||dL/dh_t||`` at every time step ``t`` (reverse directions are indexed
            by the input's time, not by their order of processing; padded steps are left out).
        cell_steps: the same for an LSTM's cell state ``c_t``.
        parameters: the gradient norm of every parameter.
        spectral_norms: the largest singular value of each recurrent matrix ``W_hh``.
        loss: the loss the gradients are of.
    """

    steps: dict[str, list[float]]
    cell_steps: dict[str, list[float]] = field(default_factory=dict)
    parameters: dict[str, float] = field(default_factory=dict)
    spectral_norms: dict[str, float] = field(default_factory=dict)
    loss: float = math.nan

    def decay(self, name: str | None = None) -> float:
        """``||dL/dh_0|| / ||dL/dh_T-1||`` for one layer (the first by default): 1 means no decay."""
        norms = self.steps[name or next(iter(self.steps))]
        return norms[0] / norms[-1] if norms[-1] > 0 else math.inf

    def to_dict(self) -> dict:
        return {"loss": self.loss, "steps": self.steps, "cell_steps": self.cell_steps,
                "parameters": self.parameters, "spectral_norms": self.spectral_norms}


class _Recorder:
    """A :class:`rnnkit.loop.StepObserver` keeping each pass's states, named by layer, depth and direction."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names  # id(module) -> its name in the model
        self.passes: dict[int, int] = {}
        self.module = None
        self.calls: list[tuple[str, list, Tensor | None, bool]] = []

    def layer(self, module) -> None:
        self.module = module

    def begin(self, lengths, reverse) -> None:
        index = self.passes.get(id(self.module), 0)
        self.passes[id(self.module)] = index + 1
        depth, direction = divmod(index, 2 if self.module.bidirectional else 1)
        name = f"{self.names[id(self.module)]}.l{depth}{'_reverse' if direction else ''}"
        self.calls.append((name, [], lengths, reverse))

    def step(self, state) -> None:
        self.calls[-1][1].append(state)


def _step_norms(grads: list[Tensor | None], lengths: Tensor | None, reverse: bool) -> list[float]:
    """Mean over valid sequences of ``||g_t||`` per time step, with reverse passes put back in input time."""
    reference = next((g for g in grads if g is not None), None)
    if reference is None:
        return [0.0] * len(grads)
    stacked = torch.stack([torch.zeros_like(reference) if g is None else g for g in grads])
    norms = stacked.double().norm(dim=-1, keepdim=True)  # (steps, batch, 1)
    if reverse:
        norms = loop.reverse_padded(norms, lengths)
    if lengths is None:
        return norms.mean(dim=(1, 2)).tolist()
    mask = loop.valid_mask(lengths, norms.shape[0], norms.device).double()
    return ((norms * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1)).tolist()


def gradient_flow(
    model: torch.nn.Module,
    inputs,
    targets=None,
    *,
    loss_fn: Callable[[object], Tensor] | None = None,
    train_mode: bool = False,
    **forward_kwargs,
) -> GradientFlow:
    """Measure ``||dL/dh_t||`` for every time step and recurrent layer of ``model`` on one batch.

    Args:
        model: a module containing rnnkit recurrent layers (``rk.RNN``/``rk.LSTM``/``rk.GRU``), e.g. a
            layer itself or a task model.
        inputs, targets: the batch. With ``loss_fn=None`` the model is called as
            ``model(inputs, targets, **forward_kwargs)`` and must return a ``ModelOutput`` with a loss.
        loss_fn: maps the model's output to the loss instead (then ``targets`` is not passed), e.g.
            ``lambda out: out[0][-1].pow(2).sum()`` for a loss on the last step of an ``rk.RNN``.
        train_mode: run with dropout as in training (default: evaluation mode, deterministic).

    Returns:
        A :class:`GradientFlow`. The model's parameters' ``.grad`` are left untouched.

    >>> import rnnkit as rk
    >>> rnn = rk.RNN(2, 8)
    >>> flow = gradient_flow(rnn, torch.randn(30, 1, 2), loss_fn=lambda out: out[0][-1].sum())
    >>> len(flow.steps["l0"]), flow.decay() < 1
    (30, True)
    """
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, RecurrentLayer)]
    if not layers:
        raise TypeError(f"gradient_flow needs rnnkit recurrent layers (rk.RNN, rk.LSTM, rk.GRU) inside the "
                        f"model; {type(model).__name__} has none")
    recorder = _Recorder({id(layer): name for name, layer in layers})
    was_training = model.training
    model.train(train_mode)
    try:
        with torch.enable_grad(), loop.observing(recorder):
            if loss_fn is None:
                output = model(inputs, targets, **forward_kwargs)
                if not isinstance(output, ModelOutput) or output.loss is None:
                    raise TypeError("the model did not return a ModelOutput with a loss; pass targets, or loss_fn=")
                loss = output.loss
            else:
                loss = loss_fn(model(inputs, **forward_kwargs))
    finally:
        model.train(was_training)
    calls = recorder.calls
    hidden = [state[0] for _, states, _, _ in calls for state in states]
    cells = [state[1] for _, states, _, _ in calls for state in states if len(state) > 1]
    parameters = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, hidden + cells + [p for _, p in parameters], allow_unused=True)
    grad_h, grad_c, grad_p = grads[:len(hidden)], grads[len(hidden):len(hidden) + len(cells)], grads[-len(parameters):]
    flow = GradientFlow(steps={}, loss=float(loss.detach()))
    offset_h = offset_c = 0
    for name, states, lengths, reverse in calls:
        short = name.lstrip(".")
        count = len(states)
        flow.steps[short] = _step_norms(list(grad_h[offset_h:offset_h + count]), lengths, reverse)
        offset_h += count
        if len(states[0]) > 1:
            flow.cell_steps[short] = _step_norms(list(grad_c[offset_c:offset_c + count]), lengths, reverse)
            offset_c += count
    flow.parameters = {n: 0.0 if g is None else float(g.norm()) for (n, _), g in zip(parameters, grad_p)}
    for prefix, layer in layers:
        for param_name, weight in layer.named_parameters():
            if param_name.startswith("weight_hh"):
                key = f"{prefix}.{param_name}".lstrip(".")
                flow.spectral_norms[key] = float(torch.linalg.matrix_norm(weight.detach().double(), ord=2))
    return flow


def plot_gradient_flow(flows: Mapping[str, GradientFlow], path: str | Path, *, title: str = "",
                       layers: list[str] | None = None) -> Path:
    """Plot ``||dL/dh_t||`` against time step ``t`` (log scale) for several models on one figure.

    Args:
        flows: label -> :class:`GradientFlow`, one line per label and recurrent layer.
        path: where to write the PNG.
        layers: only these layer names (default: all).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, flow in flows.items():
        for name, norms in flow.steps.items():
            if layers is not None and name not in layers:
                continue
            values = [max(v, 1e-300) for v in norms]
            ax.semilogy(range(len(values)), values, label=f"{label}: {name}" if len(flow.steps) > 1 else label)
    ax.set(xlabel="time step t", ylabel="||dL/dh_t|| (mean over batch)", title=title or "gradient flow over time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
