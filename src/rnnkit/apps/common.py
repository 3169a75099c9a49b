"""Small helpers the applications and their command-line verbs share (the lifecycle itself is
:mod:`rnnkit.apps.lifecycle`; reading the user's files is :mod:`rnnkit.data.tables`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable


def format_metrics(values: dict[str, Any]) -> str:
    def show(v):
        return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)

    return "  ".join(f"{k} {show(v)}" for k, v in values.items())


def describe_evaluation(where: str, result: dict[str, Any]) -> str:
    """One line for an ``evaluate`` verb: where it was measured, then every number of ``result``."""
    numbers = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return f"{where}: {format_metrics(numbers)}"


def check_output_file(flag: str, path: str | Path) -> Path:
    """``path`` if a file can be written there, else one line naming ``flag`` and the fix; called before the work
    whose result goes there, so a missing folder is not found out after minutes of decoding."""
    from rnnkit.errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder; name a file (for example {path / 'out'}{path.suffix})")
    if not path.parent.is_dir():
        raise InputError(f"{flag} {path}: the folder {path.parent} does not exist; create it first")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise InputError(f"{flag} {path}: not writable here; choose another place")
    return path


def exact_match_fn(decode_batch: Callable, process, device) -> Callable:
    """``metrics_fn`` for the trainer: the share of validation targets that greedy decoding gets exactly right.

    ``decode_batch(model, batch)`` returns what :func:`rnnkit.models.decoding.greedy_decode` does; the batch
    holds ``targets`` and ``target_lengths``. Counts are summed over processes under torchrun.
    """
    from rnnkit.train import distributed

    def metrics(model, batches) -> dict:
        was_training = model.training
        model.eval()
        correct = total = 0
        for batch in batches:
            decoded = decode_batch(model, batch)
            for row in range(len(decoded.tokens)):
                produced = decoded.tokens[row, :int(decoded.lengths[row])].tolist()
                correct += produced == batch["targets"][row, :int(batch["target_lengths"][row])].tolist()
            total += len(decoded.tokens)
        model.train(was_training)
        correct, total = distributed.all_sum([correct, total], process, device)
        return {"exact_match": correct / max(total, 1)}

    return metrics
