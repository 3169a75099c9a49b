"""Argument checks shared by cells and layers.

Every message names the argument, the value received and what is allowed, so a user can fix the
call without reading rnnkit's source. Each error is also an instance of the type torch.nn raises for
the same mistake (see ``rnnkit.errors`` and docs/compatibility.md).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import torch
from torch import Tensor

from rnnkit.errors import ArgumentTypeError, DTypeError, ShapeError, StateError

#: The dtypes autocast moves between; under autocast torch.nn lets input and weights differ among them.
AUTOCAST_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def as_int(value):
    """A numpy (or other ``numbers.Integral``) integer as a Python ``int``; anything else unchanged for the
    checks to judge. torch.nn takes numpy integers for ``num_layers`` and ``proj_size`` (not for the sizes)."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


def positive_int(name: str, value) -> None:
    """An integer > 0: a layer's sizes (torch.nn: TypeError for a non-integer, ValueError for <= 0)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be a positive integer, got {value!r} of type {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def size(name: str, value) -> None:
    """An integer >= 0: a cell's sizes (torch.nn's cells accept 0; a negative size is a RuntimeError there)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be an integer >= 0, got {value!r} of type {type(value).__name__}")
    if value < 0:
        raise ShapeError(f"{name} must be an integer >= 0, got {value!r}")


def flag(name: str, value) -> None:
    """A real ``bool``, as torch.nn requires of ``bias`` and ``batch_first`` (``"False"`` is truthy)."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(
            f"{name} must be True or False, got {value!r} of type {type(value).__name__} "
            f"(torch.nn refuses it too: a string such as 'False' would count as true)"
        )


def probability(name: str, value, *, closed: bool = True) -> None:
    """A number in ``[0, 1]`` (``[0, 1)`` unless ``closed``); torch.nn: TypeError for None, ValueError otherwise."""
    interval = "[0, 1]" if closed else "[0, 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a probability in {interval}, got {value!r} of type "
                                f"{type(value).__name__}")
    if not (0 <= value <= 1 if closed else 0 <= value < 1):
        raise ValueError(f"{name} must be a probability in {interval}, got {value!r}")


def choice(name: str, value, allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}")


def autocast_allows(a: torch.dtype, b: torch.dtype, device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` and both dtypes are ones it converts between:
    torch.nn then runs input, state and weights of different dtypes and lets autocast decide."""
    return a in AUTOCAST_DTYPES and b in AUTOCAST_DTYPES and torch.is_autocast_enabled(device_type)


def floating_input(input, param_dtype: torch.dtype, name: str = "input") -> None:
    # Not a tensor: torch.nn fails with AttributeError ('list' object has no attribute 'dim'); rnnkit
    # says so with a TypeError (an AttributeError would be swallowed by hasattr and properties).
    if not isinstance(input, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise DTypeError(
            f"{name} must be a floating-point tensor, got dtype {input.dtype}; "
            f"convert it with {name}.float() (token ids go through an nn.Embedding first)"
        )
    if input.dtype != param_dtype and not autocast_allows(input.dtype, param_dtype, input.device.type):
        raise DTypeError(
            f"{name} has dtype {input.dtype} but the parameters are {param_dtype}; "
            f"convert one of them, e.g. {name}.to({param_dtype}) or module.to({input.dtype})"
            + (" (autocast converts only between float16, bfloat16 and float32)"
               if torch.is_autocast_enabled(input.device.type) else "")
        )


def state_tuple(hx, count: int, owner: str) -> tuple[Tensor, ...]:
    """Normalise a user's ``hx`` to a tuple of ``count`` tensors (``h`` or ``(h, c)``)."""
    if count == 1:
        if not isinstance(hx, Tensor):
            raise StateError(f"{owner} expects hx to be a single tensor h, got {type(hx).__name__}")
        return (hx,)
    if not isinstance(hx, (tuple, list)) or len(hx) != count:
        got = f"{type(hx).__name__} of length {len(hx)}" if isinstance(hx, (tuple, list)) else type(hx).__name__
        raise StateError(f"{owner} expects hx to be a tuple (h_0, c_0) of {count} tensors, got {got}")
    for part in hx:
        if not isinstance(part, Tensor):
            raise StateError(f"{owner} expects hx to hold tensors, got {type(part).__name__}")
    return tuple(hx)


def state_tensor(name: str, value: Tensor, expected: tuple[int, ...], like: Tensor) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ShapeError(f"expected {name} of shape {tuple(expected)}, got {tuple(value.shape)}")
    if value.dtype != like.dtype and not autocast_allows(value.dtype, like.dtype, like.device.type):
        raise DTypeError(f"{name} has dtype {value.dtype} but the input is {like.dtype}; convert it")
    if value.device != like.device:
        raise ShapeError(f"{name} is on {value.device} but the input is on {like.device}; move it")


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
        raise ShapeError(f"lengths must be 1-D with one entry per sequence, got shape {tuple(lengths.shape)}")
    if lengths.numel() != batch:
        raise ShapeError(f"lengths has {lengths.numel()} entries but the batch holds {batch} sequences")
    lengths = lengths.to(device="cpu", dtype=torch.int64).contiguous()  # kernels read the raw buffer
    if batch and int(lengths.min()) <= 0:
        raise ShapeError(f"every length must be >= 1, got minimum {int(lengths.min())}; drop empty sequences")
    if batch and int(lengths.max()) > steps:
        raise ShapeError(
            f"lengths must be <= the sequence length {steps}, got maximum {int(lengths.max())}"
        )
    return lengths
