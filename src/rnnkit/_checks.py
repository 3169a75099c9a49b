"""Argument checks shared by cells and layers.

Every message names the argument, the value received and what is allowed, so a user can fix the
call without reading rnnkit's source.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def choice(name: str, value, allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}")


def floating_input(input, param_dtype: torch.dtype, name: str = "input") -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {input.dtype}; "
            f"convert it with {name}.float() (token ids go through an nn.Embedding first)"
        )
    if input.dtype != param_dtype:
        raise TypeError(
            f"{name} has dtype {input.dtype} but the parameters are {param_dtype}; "
            f"convert one of them, e.g. {name}.to({param_dtype}) or module.to({input.dtype})"
        )


def state_tuple(hx, count: int, owner: str) -> tuple[Tensor, ...]:
    """Normalise a user's ``hx`` to a tuple of ``count`` tensors (``h`` or ``(h, c)``)."""
    if count == 1:
        if not isinstance(hx, Tensor):
            raise TypeError(f"{owner} expects hx to be a single tensor h, got {type(hx).__name__}")
        return (hx,)
    if not isinstance(hx, (tuple, list)) or len(hx) != count:
        got = f"{type(hx).__name__} of length {len(hx)}" if isinstance(hx, (tuple, list)) else type(hx).__name__
        raise TypeError(f"{owner} expects hx to be a tuple (h_0, c_0) of {count} tensors, got {got}")
    for part in hx:
        if not isinstance(part, Tensor):
            raise TypeError(f"{owner} expects hx to hold tensors, got {type(part).__name__}")
    return tuple(hx)


def state_tensor(name: str, value: Tensor, expected: tuple[int, ...], like: Tensor) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"expected {name} of shape {tuple(expected)}, got {tuple(value.shape)}")
    if value.dtype != like.dtype:
        raise TypeError(f"{name} has dtype {value.dtype} but the input is {like.dtype}; convert it")
    if value.device != like.device:
        raise ValueError(f"{name} is on {value.device} but the input is on {like.device}; move it")


def lengths_tensor(lengths, batch: int, steps: int) -> Tensor:
    """Validate per-sequence lengths and return them as a CPU int64 tensor."""
    if isinstance(lengths, (list, tuple)):
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in lengths):
            raise TypeError(f"lengths must hold integers, got {lengths!r}")
        lengths = torch.tensor(lengths, dtype=torch.int64)
    if not isinstance(lengths, Tensor):
        raise TypeError(f"lengths must be a 1-D integer tensor or a list of ints, got {type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must have an integer dtype, got {lengths.dtype}; use lengths.long()")
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D with one entry per sequence, got shape {tuple(lengths.shape)}")
    if lengths.numel() != batch:
        raise ValueError(f"lengths has {lengths.numel()} entries but the batch holds {batch} sequences")
    lengths = lengths.to(device="cpu", dtype=torch.int64)
    if batch and int(lengths.min()) <= 0:
        raise ValueError(f"every length must be >= 1, got minimum {int(lengths.min())}; drop empty sequences")
    if batch and int(lengths.max()) > steps:
        raise ValueError(
            f"lengths must be <= the sequence length {steps}, got maximum {int(lengths.max())}"
        )
    return lengths
