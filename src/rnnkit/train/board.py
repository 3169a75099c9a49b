"""TensorBoard scalars next to ``metrics.jsonl``: the same records, readable by ``tensorboard --logdir``.

Every training step writes ``train/loss``, ``train/grad_norm``, ``train/lr`` and ``train/tokens_per_second``;
every evaluation writes its metrics under ``val/`` (``val/loss``, ``val/accuracy``, ...). The event
files go into the run directory itself (``events.out.tfevents.*``), so ``tensorboard --logdir runs/``
shows every run below ``runs/``. Writing goes through ``torch.utils.tensorboard``, which needs the
``tensorboard`` package (``pip install 'rnnkit[tensorboard]'``); without it training goes on and says
once how to get the logs. ``TrainConfig(tensorboard=False)`` (``--no-tensorboard``) turns it off.
"""

from __future__ import annotations

import math
from pathlib import Path


class ScalarBoard:
    """Writes training and validation scalars as TensorBoard events (a no-op when disabled).

    Args:
        directory: where the event files go (the run directory); ``None`` disables the board.
        enabled: ``False`` writes nothing (other ranks, ``tensorboard=False``).
        resumed_at: the checkpoint step a resumed run continues from: events a killed run wrote past it
            are purged in TensorBoard's view (``purge_step``), as ``metrics.jsonl`` drops its records.
        notify: called with one line when the tensorboard package is missing.
    """

    def __init__(self, directory: str | Path | None, *, enabled: bool = True, resumed_at: int | None = None,
                 notify=None) -> None:
        self._writer = None
        if directory is None or not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if notify is not None:
                notify("TensorBoard logs are off: the tensorboard package is missing "
                       "(pip install 'rnnkit[tensorboard]'; --no-tensorboard silences this)")
            return
        purge = None if resumed_at is None else resumed_at + 1
        self._writer = SummaryWriter(log_dir=str(directory), purge_step=purge)

    @property
    def active(self) -> bool:
        return self._writer is not None

    def train_step(self, record: dict, tokens: int) -> None:
        """One training step's record (``step``, ``loss``, ``grad_norm``, ``lr``, ``seconds``)."""
        if self._writer is None:
            return
        step = record["step"]
        for key in ("loss", "grad_norm", "lr"):
            if key in record and math.isfinite(record[key]):
                self._writer.add_scalar(f"train/{key}", record[key], step)
        seconds = record.get("seconds", 0.0)
        if seconds > 0:
            self._writer.add_scalar("train/tokens_per_second", tokens / seconds, step)

    def evaluation(self, step: int, values: dict) -> None:
        """Validation metrics (``val_loss``, ``val_accuracy``, ...) as ``val/loss``, ``val/accuracy``, ..."""
        if self._writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                name = "val/" + key[len("val_"):] if key.startswith("val_") else f"val/{key}"
                self._writer.add_scalar(name, value, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
