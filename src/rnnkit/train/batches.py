"""Batches and recurrent states as the training loop and the evaluator handle them.

A batch is a dict with ``inputs`` and ``targets`` (plus e.g. ``lengths``, and ``reset`` for streamed
text), or a tuple ``(inputs, targets[, lengths])``. A recurrent state follows torch.nn's layout: a
tensor or a nested tuple of tensors ``(..., batch, hidden)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rnnkit.types import IGNORE_INDEX


def detach_state(state: Any) -> Any:
    """Cut the graph behind a recurrent state (a tensor or a nested tuple/list of tensors)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def reset_state(state: Any, reset: Tensor) -> Any:
    """Zero the rows of a torch.nn-layout state ``(..., batch, hidden)`` where ``reset`` is true."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        keep = (~reset).to(state.device, state.dtype).view(1, -1, 1)
        return state * keep
    return type(state)(reset_state(s, reset) for s in state)


def flatten_state(state: Any) -> list[Tensor]:
    if state is None:
        return []
    if isinstance(state, Tensor):
        return [state]
    return [t for s in state for t in flatten_state(s)]


def as_batch(batch: Any) -> dict:
    if isinstance(batch, dict):
        return batch
    if isinstance(batch, (tuple, list)) and 2 <= len(batch) <= 3:
        return dict(zip(("inputs", "targets", "lengths"), batch))
    if isinstance(batch, Tensor):
        return {"inputs": batch}
    raise TypeError(f"a batch must be a dict with 'inputs' (and 'targets'), or a tuple (inputs, targets"
                    f"[, lengths]); got {type(batch).__name__}")


def model_kwargs(batch: dict) -> dict:
    """The batch entries passed to the model as keyword arguments (e.g. ``lengths``)."""
    return {k: v for k, v in batch.items() if k not in ("inputs", "targets", "reset")}


def to_device(batch: dict, device: torch.device) -> dict:
    # lengths stay on the CPU: the layers read them there (as torch.nn's pack_padded_sequence does).
    return {k: v.to(device) if isinstance(v, Tensor) and k not in ("lengths", "reset") else v
            for k, v in batch.items()}


def count_targets(batch: dict) -> int:
    """How many targets the batch's mean loss averages over (its weight when averaging batches).

    ``target_lengths`` (sequence-to-sequence batches, whose targets are padded with the model's pad id rather than
    ``IGNORE_INDEX``) count the real tokens of each target."""
    targets = batch.get("targets")
    if isinstance(batch.get("target_lengths"), Tensor):
        return int(batch["target_lengths"].sum())
    if isinstance(targets, Tensor):
        if not targets.is_floating_point():
            return int((targets != IGNORE_INDEX).sum())
        lengths = batch.get("lengths")
        if isinstance(lengths, Tensor) and targets.dim() >= 2:
            return int(lengths.sum())  # a loss per valid time step (e.g. piano-roll frames) averages over them
        return targets.shape[0] if targets.dim() else 1
    inputs = batch["inputs"]
    return inputs.shape[0] if isinstance(inputs, Tensor) and inputs.dim() else 1


def count_tokens(batch: dict) -> int:
    """Input positions in the batch, for tokens/s."""
    if isinstance(batch.get("lengths"), Tensor):
        return int(batch["lengths"].sum())
    inputs = batch["inputs"]
    if not isinstance(inputs, Tensor):
        return 1
    return int(inputs.shape[0] * (inputs.shape[1] if inputs.dim() > 1 else 1))
