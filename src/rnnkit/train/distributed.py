"""torch.distributed glue: the same training code runs alone or under ``torchrun --nproc_per_node=N``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; when ``WORLD_SIZE`` is above 1 the
trainer joins the process group (gloo on CPU, nccl on CUDA), wraps the model in
``DistributedDataParallel`` (gradients are averaged across processes after every backward pass), gives
each process its share of every batch, and lets only rank 0 print, log and write checkpoints.
"""

from __future__ import annotations

import atexit

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Process:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun); needs no process group."""
    return int(os.environ.get("RANK", "0"))


def _launched() -> Process:
    """This process as torchrun's environment describes it (one process outside torchrun)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Process()
    return Process(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def current() -> Process:
    """This process in the job that has been set up (one process when none has, or outside torchrun)."""
    return _launched() if dist.is_initialized() else Process()


def setup(device: str) -> tuple[Process, torch.device]:
    """Join the process group if launched by torchrun; return this process and its device."""
    process = _launched()
    if not process.distributed:
        return process, torch.device(device)
    target = torch.device(device)
    if target.type == "cuda":
        target = torch.device("cuda", process.local_rank)
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
        # Left to the interpreter's teardown, gloo's threads can still be running when the process ends, and
        # the C++ runtime aborts it ("terminate called without an active exception"): leave the group first.
        atexit.register(_leave)
    return process, target


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, process: Process, device: torch.device) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel when distributed, else unchanged."""
    if not process.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_sum(values: list[float], process: Process, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all processes (identity when not distributed)."""
    if not process.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(process: Process) -> None:
    if process.distributed:
        dist.barrier()


def gather_objects(value, process: Process) -> list:
    """Every process's ``value``, in rank order (``[value]`` when not distributed)."""
    if not process.distributed:
        return [value]
    values = [None] * process.world_size
    dist.all_gather_object(values, value)
    return values
