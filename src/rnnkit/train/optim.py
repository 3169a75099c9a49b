"""Optimisers from ``torch.optim`` and learning-rate schedules with linear warmup, built from a TrainConfig."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from rnnkit.train.config import TrainConfig


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` with its learning rate, momentum and weight decay."""
    lr, decay = config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=config.momentum, weight_decay=decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, momentum=config.momentum, weight_decay=decay)
    return torch.optim.Adagrad(parameters, lr=lr, weight_decay=decay)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of ``config.lr`` for the optimizer step ``step`` (0-based): warmup, then the schedule.

    >>> config = TrainConfig(lr=1.0, warmup_steps=4, schedule="cosine", max_steps=12)
    >>> [round(lr_factor(s, config), 3) for s in (0, 3, 4, 8, 11)]
    [0.25, 1.0, 1.0, 0.5, 0.038]
    """
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    after = step - config.warmup_steps
    if config.schedule == "step":
        return config.lr_decay ** (after // config.step_size)
    if config.schedule == "cosine":
        span = max(config.max_steps - config.warmup_steps, 1)
        floor = config.min_lr / config.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(after / span, 1.0)))
    return 1.0


class Schedule:
    """Warmup + step/cosine through ``LambdaLR``; ``plateau`` adds ``ReduceLROnPlateau`` after warmup."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig) -> None:
        self.config = config
        self.per_step = LambdaLR(optimizer, lambda step: lr_factor(step, config))
        self.plateau = None
        if config.schedule == "plateau":
            # Decay at the plateau_patience-th evaluation without improvement (torch's patience counts the ones
            # it tolerates), and judge improvement as the trainer does: any strict gain (torch's default is 1e-4).
            self.plateau = ReduceLROnPlateau(optimizer, mode=config.monitor_direction, factor=config.lr_decay,
                                             patience=max(config.plateau_patience - 1, 0), threshold=0.0,
                                             min_lr=config.min_lr)

    def step(self, completed_steps: int) -> None:
        """Advance after an optimizer step; under ``plateau`` only warmup moves the rate per step."""
        if self.plateau is None or completed_steps <= self.config.warmup_steps:
            self.per_step.step()

    def evaluated(self, metric: float, completed_steps: int) -> None:
        if self.plateau is not None and completed_steps >= self.config.warmup_steps:
            self.plateau.step(metric)

    def state_dict(self) -> dict:
        state = {"per_step": self.per_step.state_dict()}
        if self.plateau is not None:
            state["plateau"] = self.plateau.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None and "plateau" in state:
            self.plateau.load_state_dict(state["plateau"])
