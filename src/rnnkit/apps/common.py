"""What every application shares: run directories, reading the user's files (:mod:`rnnkit.data.tables`,
re-exported here), finishing a training run.

A run directory holds ``app.json`` (which application made it, with which rnnkit, and the app's
settings), the trainer's ``config.json``, ``metrics.jsonl``, ``checkpoints/`` and plots, and
``model/`` (the trained model with its vocabulary, see :func:`rnnkit.models.save_model`), which the
``sample`` / ``predict`` / ``translate`` / ``evaluate`` verbs load. Every problem with the user's input
raises :class:`rnnkit.errors.InputError` with one line that says what is wrong and how to fix it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

# Re-exported: the apps read the user's files through here; the readers live in the data layer.
from rnnkit.data.tables import read_table, read_text, require_columns  # noqa: F401
from rnnkit.errors import InputError
from rnnkit.train import checkpoint
from rnnkit.train.distributed import launched_rank

RUN_FORMAT = 1
APP_FILE = "app.json"


def write_app(run_dir: Path, app: str, settings: dict) -> None:
    """Record which application owns ``run_dir`` and with which settings (rank 0 writes under torchrun)."""
    import rnnkit

    if launched_rank() != 0:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json_atomic(run_dir / APP_FILE, {"app": app, "format": RUN_FORMAT,
                                                     "rnnkit_version": rnnkit.__version__, "settings": settings})


def read_app(run_dir: str | Path, app: str) -> dict:
    """The settings of a run made by ``app``; a clear error for anything else."""
    run_dir = Path(run_dir)
    path = run_dir / APP_FILE
    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} does not exist; train first with `rnnkit {app} train --out {run_dir}`")
    if not path.exists():
        raise InputError(f"{run_dir} is not an rnnkit run directory (no {APP_FILE}); pass the --out of a "
                       f"`rnnkit {app} train` run")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path} is damaged (not valid JSON)") from None
    if info.get("app") != app:
        raise InputError(f"{run_dir} was made by `rnnkit {info.get('app')}`, not `rnnkit {app}`; "
                       f"use `rnnkit {info.get('app')}` with it, or pick a {app} run")
    if info.get("format", 0) > RUN_FORMAT:
        raise InputError(f"{run_dir} was written by a newer rnnkit ({info.get('rnnkit_version')}); upgrade rnnkit")
    return info["settings"]


def load_trained(run_dir: str | Path, app: str, device: str = "cpu"):
    """``(model, vocabulary, settings)`` of a finished run made by ``app``: the model in evaluation mode on
    ``device``, its vocabulary (``None``, one, or a dict by name) and the app's settings."""
    from rnnkit.models import load_model, load_vocab

    settings = read_app(run_dir, app)
    model_dir = Path(run_dir) / "model"
    if not (model_dir / "config.json").exists():
        raise InputError(f"{run_dir} has no trained model yet (model/ is missing): the run did not finish; "
                       f"continue it with `rnnkit {app} train --out {run_dir} --resume`")
    return load_model(model_dir).to(device).eval(), load_vocab(model_dir), settings


def check_resume(run_dir: Path, app: str, resume: bool) -> None:
    """Refuse to overwrite a finished or foreign run unless resuming it.

    Under torchrun only rank 0 checks (the others would race with its writes); if it refuses, torchrun
    stops the other processes.
    """
    if launched_rank() != 0:
        return
    if (run_dir / APP_FILE).exists():
        read_app(run_dir, app)  # foreign or incompatible runs fail here
        if not resume:
            raise InputError(f"{run_dir} already holds a {app} run; pass --resume to continue it or choose another --out")
    elif resume:
        raise InputError(f"--resume: {run_dir} holds no {app} run to continue")


def finish_training(trainer, model: torch.nn.Module, run_dir: Path, vocab=None) -> dict:
    """After ``fit``: load the best checkpoint's weights (when validation chose one) and save ``model/``."""
    from rnnkit.models import save_model

    best = checkpoint.find_checkpoint(run_dir / "checkpoints", "best")
    if best is not None:
        weights, _, _ = checkpoint.load_checkpoint(best)
        checkpoint.load_model_state(model, weights, best)
    if trainer.process.is_main:
        save_model(model, run_dir / "model", vocab)
    return {"best_checkpoint": str(best) if best else None}


def format_metrics(values: dict[str, Any]) -> str:
    def show(v):
        return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)

    return "  ".join(f"{k} {show(v)}" for k, v in values.items())
