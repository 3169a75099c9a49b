"""Training: the loop, its configuration, checkpoints, progress and distributed data parallel."""

from rnnkit.train.checkpoint import CheckpointError, find_checkpoint, load_checkpoint
from rnnkit.train.config import TrainConfig
from rnnkit.train.trainer import Trainer, TrainingDiverged, detach_state, reset_state

__all__ = ["Trainer", "TrainConfig", "TrainingDiverged", "CheckpointError", "find_checkpoint",
           "load_checkpoint", "detach_state", "reset_state"]
