"""Training: the loop, its configuration, checkpoints, progress and distributed data parallel."""

from rnnkit.train.checkpoint import CheckpointError, find_checkpoint, load_checkpoint
from rnnkit.train.config import TrainConfig, native_bfloat16
from rnnkit.train.batches import detach_state, reset_state
from rnnkit.train.evaluate import cache_evaluation_loss, dynamic_evaluation_loss, evaluate_loss
from rnnkit.train.trainer import Trainer, TrainingDiverged

__all__ = ["Trainer", "TrainConfig", "TrainingDiverged", "CheckpointError", "find_checkpoint",
           "load_checkpoint", "detach_state", "reset_state", "evaluate_loss",
           "dynamic_evaluation_loss", "cache_evaluation_loss", "native_bfloat16"]
