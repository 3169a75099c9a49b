"""Checkpoints that survive a kill at any moment and never execute code when loaded.

A checkpoint is a directory ``checkpoints/step-NNNNNNNN/`` holding
    ``model.safetensors``  the model's weights (loadable on their own with ``safetensors``);
    ``state.safetensors``  optimizer tensors and the random-generator states;
    ``trainer.json``       the step, configurations, schedules and every other non-tensor value.
It is written under a temporary name, every file and the directory are fsync'ed, and only then is it
renamed into place (a rename is atomic) and the ``latest.json`` / ``best.json`` pointers are replaced
the same way. A kill therefore leaves either the old checkpoint or the new one, never half of one.
Loading reads JSON and safetensors only: neither format can carry code (unlike pickle/``torch.load``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from rnnkit._files import fsync_path, plain_permissions, write_json_atomic

FORMAT = "rnnkit-checkpoint"
VERSION = 1
_POINTERS = ("latest", "best")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not belong to the model it is loaded into."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: not a complete rnnkit checkpoint") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}): the checkpoint is damaged") from None


def _load_tensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: not a complete rnnkit checkpoint")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a valid safetensors file ({error}); it may be truncated, or a pickle "
            "(rnnkit never loads pickles)"
        ) from None


def split_optimizer_state(state: dict) -> tuple[dict[str, Tensor], dict]:
    """Separate an optimizer ``state_dict`` into named tensors and a JSON-able remainder."""
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def join_optimizer_state(tensors: dict[str, Tensor], rest: dict) -> dict:
    """Inverse of :func:`split_optimizer_state`."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in rest["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def save_checkpoint(
    directory: Path, step: int, model_state: dict[str, Tensor], tensors: dict[str, Tensor], info: dict,
    *, best: bool = False, keep: int = 1,
) -> Path:
    """Write one checkpoint under ``directory`` atomically and point ``latest`` (and ``best``) at it.

    Args:
        directory: the run's ``checkpoints`` folder.
        step: the training step the checkpoint holds; it names the folder.
        model_state: the model's ``state_dict``.
        tensors: other tensors (optimizer state, random-generator states).
        info: JSON-able training state; ``format`` and ``version`` are added.
        best: also point ``best.json`` at this checkpoint.
        keep: how many older, unpointed checkpoints to keep besides ``latest`` and ``best``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    for suffix in range(1, 1000):  # the same step again (a resumed, finished run): a new name, never a gap
        if not (directory / name).exists():
            break
        name = f"step-{step:08d}.{suffix}"
    final, temporary = directory / name, directory / f".{name}.tmp"
    try:
        _write_folder(temporary, model_state, tensors, info)
        os.replace(temporary, final)
        fsync_path(directory)
        write_json_atomic(directory / "latest.json", {"checkpoint": name, "step": step})
        if best:
            write_json_atomic(directory / "best.json", {"checkpoint": name, "step": step})
    except OSError as error:  # a full disk, a lost mount: the pointers still name the last complete checkpoint
        shutil.rmtree(temporary, ignore_errors=True)
        raise CheckpointError(
            f"could not write the checkpoint of step {step} into {directory} ({error.strerror or error}); nothing "
            f"is lost: the last complete checkpoint is intact. Free space there and continue with --resume") from error
    _prune(directory, keep)
    return final


def _write_folder(folder: Path, model_state: dict[str, Tensor], tensors: dict[str, Tensor], info: dict) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, folder / "model.safetensors")
    save_file(tensors, folder / "state.safetensors")
    (folder / "trainer.json").write_text(json.dumps({"format": FORMAT, "version": VERSION, **info}, indent=1))
    for file in folder.iterdir():
        plain_permissions(file)
        fsync_path(file)
    fsync_path(folder)


def _prune(directory: Path, keep: int) -> None:
    pointed = set()
    for pointer in _POINTERS:
        try:
            pointed.add(json.loads((directory / f"{pointer}.json").read_text())["checkpoint"])
        except (OSError, ValueError, KeyError):
            pass
    unpointed = sorted(p for p in directory.glob("step-*") if p.name not in pointed)
    for old in unpointed[: max(len(unpointed) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in directory.glob(".step-*.tmp"):  # left by a kill during a write
        shutil.rmtree(stale, ignore_errors=True)


def find_checkpoint(directory: Path, which: str = "latest") -> Path | None:
    """The checkpoint ``latest.json`` or ``best.json`` points at, or ``None`` if there is none yet."""
    directory = Path(directory)
    if which not in _POINTERS:
        raise ValueError(f"which must be one of {_POINTERS}, got {which!r}")
    pointer = directory / f"{which}.json"
    if not pointer.exists():
        return None
    content = _read_json(pointer)
    name = content.get("checkpoint") if isinstance(content, dict) else None
    if not isinstance(name, str) or not (directory / name).is_dir():
        raise CheckpointError(f"{pointer} points at {name!r}, which is not a checkpoint folder in {directory}")
    return directory / name


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Tensor], dict]:
    """Read a checkpoint folder: ``(model_state, tensors, info)``. Raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint folder (expected model.safetensors, "
                              "state.safetensors and trainer.json inside)")
    info = _read_json(path / "trainer.json")
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'trainer.json'} is not an rnnkit checkpoint (format field missing)")
    version = info.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path / 'trainer.json'} is damaged (version {version!r} is not a number)")
    if version > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer rnnkit (checkpoint version {info['version']}, this one reads "
            f"up to {VERSION}); upgrade rnnkit"
        )
    return _load_tensors(path / "model.safetensors"), _load_tensors(path / "state.safetensors"), info


def load_model_state(model: torch.nn.Module, state: dict[str, Tensor], source: Path | str) -> None:
    """``model.load_state_dict(state)`` with an error that says what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        details = "; ".join(filter(None, [
            f"missing {', '.join(missing[:5])}" if missing else "",
            f"unexpected {', '.join(unexpected[:5])}" if unexpected else "",
            f"shape mismatch {', '.join(wrong[:5])}" if wrong else "",
        ]))
        raise CheckpointError(f"{source} holds weights for a different model ({details}); build the model "
                              "with the configuration the checkpoint was trained with")
    model.load_state_dict(state)
