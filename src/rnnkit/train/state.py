"""What a checkpoint needs besides weights and optimizer to continue a run exactly: every random
generator's state and the recurrent state carried between truncated-BPTT chunks.

:func:`snapshot` splits them into tensors (saved with safetensors) and plain JSON values (the Python
and numpy generators, and the nesting of the carried state); :func:`restore` puts them back. Nothing
is pickled, so loading a checkpoint cannot execute code.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.train.batches import flatten_state


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _structure(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, Tensor):
        return "tensor"
    return [_structure(s) for s in state]


def snapshot(carried: Any, device: torch.device) -> tuple[dict[str, Tensor], dict]:
    """``(tensors, plain)``: the generators of this process and the carried state."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda" and torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    for index, tensor in enumerate(flatten_state(carried)):
        tensors[f"carry.{index}"] = tensor.detach().cpu().contiguous()
    legacy = np.random.get_state()
    python_state = random.getstate()
    plain = {"python": [python_state[0], list(python_state[1]), python_state[2]],
             "numpy": [legacy[0], legacy[1].tolist(), int(legacy[2]), int(legacy[3]), float(legacy[4])],
             "carry_structure": _structure(carried)}
    return tensors, plain


def restore(tensors: dict[str, Tensor], plain: dict, device: torch.device) -> Any:
    """Set the generators from a :func:`snapshot`; returns the carried state (on ``device``)."""
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    version, values, gauss = plain["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    count = sum(1 for key in tensors if key.startswith("carry."))
    carried = iter(tensors[f"carry.{i}"].to(device) for i in range(count))

    def rebuild(structure):
        if structure is None:
            return None
        if structure == "tensor":
            return next(carried)
        return tuple(rebuild(s) for s in structure)

    return rebuild(plain["carry_structure"])
