"""The forward pass with its loss, and evaluation: shared by the training loop and the applications.

:func:`evaluate_loss` is what an application calls to measure a trained model on data (no optimizer,
no trainer); the :class:`~rnnkit.train.Trainer` validates with the same :func:`loss_totals`.
:func:`dynamic_evaluation_loss` measures a streamed language model that keeps learning from the text it
has already been scored on (Krause et al., 2018); :func:`cache_evaluation_loss` one that also copies from
the text it has just read, with fixed weights (a continuous cache, Grave et al., 2017).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

from rnnkit.errors import InputError
from rnnkit.models.cache import ContinuousCache, head_inputs, mixed_log_probability
from rnnkit.train.batches import as_batch, count_targets, detach_state, model_kwargs, reset_state, to_device
from rnnkit.types import IGNORE_INDEX, ModelOutput


def forward_loss(model: torch.nn.Module, batch: dict, state: Any, *, loss_fn: Callable | None = None,
                 bf16: bool = False) -> tuple[Tensor, Any]:
    """``(loss, next state)`` of one batch (already on the model's device).

    A streamed batch (with ``reset`` flags) continues from ``state``, zeroed where a document starts.
    Task models return a :class:`~rnnkit.types.ModelOutput`; any other module needs ``loss_fn``.
    """
    extra = _streamed_kwargs(batch, state)
    device_type = batch["inputs"].device.type if isinstance(batch["inputs"], Tensor) else "cpu"
    try:
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16) if bf16 else nullcontext():
            return _forward_loss(model, batch, extra, loss_fn)
    except RuntimeError as error:
        if bf16 and "primitive descriptor for the LSTM" in str(error):
            raise InputError("bf16: this CPU's oneDNN has no bfloat16 LSTM kernel (torch.nn.LSTM under autocast "
                             "fails the same way); train without --bf16, or with another cell") from None
        raise


def _forward_loss(model: torch.nn.Module, batch: dict, extra: dict, loss_fn: Callable | None) -> tuple[Tensor, Any]:
    if loss_fn is not None:
        output = model(batch["inputs"], **extra)
        state = getattr(output, "state", None)  # a ModelOutput, or any output with a .state, carries it
        if state is None and "reset" in batch:
            warnings.warn(f"{type(model).__name__}'s output has no .state, so streamed batches start from a "
                          "zero state each chunk: return an object with .state (rnnkit.types.ModelOutput) to "
                          "carry it across chunks (truncated BPTT)", stacklevel=3)
        return loss_fn(output, batch).float(), state
    output = model(batch["inputs"], batch.get("targets"), **extra)
    if not isinstance(output, ModelOutput) or output.loss is None:
        raise TypeError(f"{type(model).__name__} did not return a ModelOutput with a loss; give the batch "
                        "targets, or pass loss_fn=(output, batch) -> loss to the Trainer")
    return output.loss.float(), output.state


def _streamed_kwargs(batch: dict, state: Any) -> dict:
    """The model's keyword arguments for a batch: its extras, and a streamed batch's state (zeroed where a
    document starts)."""
    extra = model_kwargs(batch)
    if "reset" in batch:
        extra["state"] = reset_state(state, batch["reset"])
    return extra


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


@torch.no_grad()
def streamed_predictions(model: torch.nn.Module,
                         batches: Iterable) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor | None]]:
    """Per batch of a streamed language model: ``(features, log p(target), targets, reset)``.

    ``features`` ``(lanes, T, F)`` are what the model's ``head`` layer (its softmax's input) read,
    ``log p(target)`` ``(lanes, T)`` the model's log-probability of each target (0 where the target is
    padding), ``reset`` the batch's document starts (``None`` when it has none). The state is carried from
    batch to batch as in :func:`loss_totals`. The model is put in evaluation mode; the caller restores it.
    """
    device = next(model.parameters()).device
    with head_inputs(model) as seen:
        model.eval()
        state = None
        for raw in batches:
            batch = to_device(as_batch(raw), device)
            seen.clear()
            output = model(batch["inputs"], **_streamed_kwargs(batch, state))
            if not isinstance(output, ModelOutput) or len(seen) != 1:
                raise TypeError(f"{type(model).__name__} must return a ModelOutput and call its head once per batch")
            state = output.state
            targets = batch["targets"]
            features, logits = seen[0], output.output
            if logits.dtype != torch.float64:
                features, logits = features.float(), logits.float()
            log_probs = torch.log_softmax(logits, dim=-1)
            padded = targets == IGNORE_INDEX
            picked = log_probs.gather(-1, targets.masked_fill(padded, 0).unsqueeze(-1)).squeeze(-1)
            yield features, picked.masked_fill(padded, 0.0), targets, batch.get("reset")


def cache_evaluation_loss(model: torch.nn.Module, batches: Iterable, *, size: int, theta: float,
                          mix: float) -> float:
    """The count-weighted mean loss of a streamed language model helped by a continuous cache.

    Each target is predicted by ``(1 - mix) p_model + mix p_cache``, where ``p_cache`` copies what followed
    the model's most similar outputs among the last ``size`` positions of the same lane
    (:class:`~rnnkit.models.cache.ContinuousCache`, Grave et al. 2017); the first position of a document, with
    nothing remembered yet, is the model's alone. The weights never change, and every token is predicted from
    the text before it alone, so any number of lanes may be streamed (each remembers only its own text).
    Evaluation mode, no gradients; the model's mode is restored afterwards.
    """
    if mix == 1:
        raise ValueError("the cache's mix must be below 1 for scoring: at 1 a token the memory lacks has probability 0")
    cache = ContinuousCache(size, theta, mix)
    was_training = model.training
    total, count = 0.0, 0
    try:
        for features, log_p, targets, reset in streamed_predictions(model, batches):
            cached, seen = cache(features, targets, reset)
            valid = targets != IGNORE_INDEX
            total -= float(mixed_log_probability(log_p, cached, seen, mix)[valid].sum())
            count += int(valid.sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("the evaluation data yields no batches (or no targets)")
    return total / count
