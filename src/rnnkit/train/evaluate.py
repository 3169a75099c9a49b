"""The forward pass with its loss, and evaluation: shared by the training loop and the applications.

:func:`evaluate_loss` is what an application calls to measure a trained model on data (no optimizer,
no trainer); the :class:`~rnnkit.train.Trainer` validates with the same :func:`loss_totals`.
:func:`dynamic_evaluation_loss` measures a streamed language model that keeps learning from the text it
has already been scored on (Krause et al., 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

from rnnkit.train.batches import as_batch, count_targets, detach_state, model_kwargs, reset_state, to_device
from rnnkit.types import ModelOutput


def forward_loss(model: torch.nn.Module, batch: dict, state: Any, *, loss_fn: Callable | None = None,
                 bf16: bool = False) -> tuple[Tensor, Any]:
    """``(loss, next state)`` of one batch (already on the model's device).

    A streamed batch (with ``reset`` flags) continues from ``state``, zeroed where a document starts.
    Task models return a :class:`~rnnkit.types.ModelOutput`; any other module needs ``loss_fn``.
    """
    extra = model_kwargs(batch)
    if "reset" in batch:
        extra["state"] = reset_state(state, batch["reset"])
    device_type = batch["inputs"].device.type if isinstance(batch["inputs"], Tensor) else "cpu"
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16) if bf16 else nullcontext():
        if loss_fn is not None:
            return loss_fn(model(batch["inputs"], **extra), batch).float(), None
        output = model(batch["inputs"], batch.get("targets"), **extra)
    if not isinstance(output, ModelOutput) or output.loss is None:
        raise TypeError(f"{type(model).__name__} did not return a ModelOutput with a loss; give the batch "
                        "targets, or pass loss_fn=(output, batch) -> loss to the Trainer")
    return output.loss.float(), output.state


@torch.no_grad()
def loss_totals(model: torch.nn.Module, batches: Iterable, device: torch.device, *,
                loss_fn: Callable | None = None, bf16: bool = False) -> tuple[float, int]:
    """``(sum of per-target losses, targets counted)`` over ``batches``, carrying streamed states."""
    total, count, state = 0.0, 0, None
    for raw in batches:
        batch = to_device(as_batch(raw), device)
        loss, state = forward_loss(model, batch, state, loss_fn=loss_fn, bf16=bf16)
        counted = count_targets(batch)
        total += float(loss) * counted
        count += counted
    return total, count


def evaluate_loss(model: torch.nn.Module, batches: Iterable, *, loss_fn: Callable | None = None) -> float:
    """The count-weighted mean loss of ``model`` over ``batches`` (in evaluation mode, no gradients).

    >>> from rnnkit.models import SequenceTagger
    >>> model = SequenceTagger(vocab_size=5, output_size=0, hidden_size=4)
    >>> batch = {"inputs": torch.tensor([[1, 2, 3]]), "targets": torch.tensor([[2, 3, 4]])}
    >>> 0 < evaluate_loss(model, [batch]) < 10
    True
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        total, count = loss_totals(model, batches, device, loss_fn=loss_fn)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("the evaluation data yields no batches (or no targets)")
    return total / count


def dynamic_evaluation_loss(model: torch.nn.Module, batches: Iterable, *, lr: float, decay: float = 0.0) -> float:
    """The count-weighted mean loss of a streamed model that adapts to the text as it reads it.

    Dynamic evaluation (Krause et al., 2018, "Dynamic Evaluation of Neural Sequence Models"): each chunk is
    scored with the current weights first, then one gradient step on that chunk's mean loss moves them,

        theta <- theta - lr * grad + decay * (theta_0 - theta),

    where ``theta_0`` are the trained weights the ``decay`` pulls back towards (0: plain SGD). Every token is
    still predicted from the text before it alone, as a reader who remembers the play so far would predict
    it: a recurrent model's state holds the last few hundred characters, the adapted weights hold the
    names and turns of phrase of everything read. Only one lane may be streamed (``batches`` of batch size
    1): with several, the model would learn from a later part of the text (the next lane) before scoring an
    earlier one. Evaluation mode (no dropout); the model's weights are restored afterwards.
    """
    if lr < 0 or not 0 <= decay < 1:
        raise ValueError(f"dynamic evaluation needs lr >= 0 and 0 <= decay < 1, got lr={lr}, decay={decay}")
    params = [p for p in model.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    device = params[0].device
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for raw in batches:
            batch = to_device(as_batch(raw), device)
            if batch["inputs"].shape[0] != 1:
                raise ValueError("dynamic evaluation streams one lane (batch size 1): with several, the model would "
                                 "learn from later text before scoring earlier text")
            with torch.enable_grad():
                loss, state = forward_loss(model, batch, state)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            counted = count_targets(batch)
            total += float(loss.detach()) * counted
            count += counted
            state = detach_state(state)
            with torch.no_grad():
                for param, grad, start in zip(params, grads, trained):
                    if decay:
                        param.add_(start - param, alpha=decay)
                    if grad is not None:
                        param.sub_(grad, alpha=lr)
    finally:
        with torch.no_grad():
            for param, start in zip(params, trained):
                param.copy_(start)
        model.train(was_training)
    if count == 0:
        raise ValueError("the evaluation data yields no batches (or no targets)")
    return total / count
