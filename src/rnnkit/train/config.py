"""``TrainConfig``: every training option, its default and its help text (the CLI derives flags from it)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from rnnkit.options import option

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "cosine", "plateau")
#: What the optimizer's and the schedule's saved state belong to: a run resumes only with the same values.
OPTIMIZER_SETTINGS = ("optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup_steps", "step_size",
                      "lr_decay", "min_lr", "plateau_patience")
#: Words in a metric's name that mean larger is better; every other metric (losses, error rates, nats,
#: bits, perplexity) is better smaller.
LARGER_IS_BETTER = ("accuracy", "f1", "bleu", "exact_match", "auc", "r2", "precision", "recall")


def better_direction(metric: str) -> str:
    """``'max'`` when a larger ``metric`` is better (accuracy, F1, BLEU, ...), else ``'min'``.

    >>> better_direction("val_macro_f1"), better_direction("val_wer"), better_direction("val_loss")
    ('max', 'min', 'min')
    """
    name = metric.lower()
    return "max" if any(word in name for word in LARGER_IS_BETTER) else "min"


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX), so that ``bf16=True`` pays off.

    Without it autocast emulates bfloat16 and runs slower than float32 (docs/training.md). The checks are
    torch's own CPU-feature probes (private, so a torch without them answers ``False``).
    """
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


@dataclass
class TrainConfig:
    """How to train: optimisation, truncated BPTT, clipping, evaluation, checkpoints and logging.

    >>> TrainConfig(optimizer="adam", lr=3e-3, clip_norm=1.0).schedule
    'constant'
    """

    max_steps: int = option(1000, "optimizer steps to train for")
    max_minutes: float | None = option(None, "also stop (with a checkpoint) after this much training time")
    batch_size: int = option(32, "examples per step over all processes (a dataset is batched with it)")
    optimizer: str = option("adam", "one of " + ", ".join(OPTIMIZERS), choices=OPTIMIZERS)
    lr: float = option(2e-3, "peak learning rate")
    momentum: float = option(0.9, "momentum for sgd and rmsprop")
    weight_decay: float = option(0.0, "weight decay (decoupled for adamw, L2 for the others)")
    schedule: str = option("constant", "learning-rate schedule after warmup: " + ", ".join(SCHEDULES),
                         choices=SCHEDULES)
    warmup_steps: int = option(0, "linear warmup from lr/warmup_steps to lr over this many steps")
    step_size: int = option(1000, "'step' schedule: multiply the lr by lr_decay every this many steps")
    lr_decay: float = option(0.5, "'step' and 'plateau' schedules: factor applied to the lr")
    min_lr: float = option(0.0, "'cosine' and 'plateau' schedules: the lr never goes below this")
    plateau_patience: int = option(2, "'plateau' schedule: decay at this many evaluations in a row without "
                                      "improvement (any strict gain of the monitored metric counts)")
    clip_norm: float | None = option(1.0, "clip the global gradient norm to this (None: no norm clipping)")
    clip_value: float | None = option(None, "clip every gradient element to [-v, v] (None: off)")
    eval_every: int = option(200, "evaluate on the validation data every this many steps (and at the end)")
    eval_batches: int | None = option(None, "evaluate on at most this many validation batches (None: all)")
    monitor: str = option("val_loss", "validation metric for best checkpoints, early stopping and plateau")
    monitor_mode: str = option("auto", "'min' or 'max': which direction of the monitored metric is better "
                                       "('auto': max for accuracy, F1, BLEU and the like, min for the rest)",
                               choices=("auto", "min", "max"))
    early_stopping_patience: int | None = option(None, "stop after this many evaluations without "
                                                     "improvement (None: never)")
    checkpoint_every: int = option(200, "write the 'latest' checkpoint every this many steps (and at the end)")
    max_nonfinite_steps: int = option(10, "stop after this many consecutive steps with a non-finite loss or "
                                        "gradient (each is skipped)")
    ema_decay: float | None = option(None, "keep an exponential moving average of the weights with this decay "
                                           "(e.g. 0.999) and evaluate, keep as best and save the average "
                                           "(None: off)")
    bf16: bool = option(False, "run the forward pass under bfloat16 autocast (see docs/training.md)")
    seed: int = option(0, "seed for weights, data order and dropout")
    log_every: int = option(50, "print a progress line every this many steps when not on a terminal")
    grad_flow_every: int | None = option(None, "record gradient flow over time steps every this many steps")
    device: str = option("cpu", "torch device, e.g. cpu or cuda (under torchrun: cuda uses the local rank)")
    tensorboard: bool = option(True, "also write the logged scalars as TensorBoard events into the run directory "
                                     "(needs the tensorboard package: rnnkit[tensorboard])")

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "eval_every", "checkpoint_every", "log_every",
                     "max_nonfinite_steps", "step_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("monitor_mode", ("auto", "min", "max"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value}")
        for name in ("warmup_steps", "momentum", "weight_decay", "min_lr"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0 or None, got {self.max_minutes}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be between 0 and 1 (e.g. 0.999) or None (off), got {self.ema_decay}")
        for name in ("clip_norm", "clip_value"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None (off), got {value}")

    @property
    def monitor_direction(self) -> str:
        """``'min'`` or ``'max'``: ``monitor_mode``, with ``'auto'`` resolved by the metric's name."""
        return better_direction(self.monitor) if self.monitor_mode == "auto" else self.monitor_mode

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**values)
