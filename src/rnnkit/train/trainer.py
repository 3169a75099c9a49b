"""The training loop: one readable loop for every rnnkit model, from Python and from the command line.

    for each batch:   carry the recurrent state (truncated BPTT) -> forward -> loss -> backward
                      -> pre-clip global norm -> clip -> skip the step if anything is non-finite
                      -> optimizer step -> schedule -> log; every so often evaluate and checkpoint

Truncated BPTT: batches from :class:`rnnkit.data.StreamBatches` carry a ``reset`` flag per row. The
trainer then passes the previous batch's final state (detached, so gradients stop at the chunk
boundary; zeroed where a new document starts) into the model: k1 = k2 = the chunk length, what
Keras calls a stateful RNN. With ``ema_decay`` an exponential moving average of the weights
(``rnnkit.train.averaging``) is what is evaluated, kept as best and saved. Everything needed to
continue exactly — weights (and their average), optimizer, schedule, random generators, data position,
the carried state — is checkpointed, so a killed run resumes and ends with the same weights as one
that was never interrupted.
"""

from __future__ import annotations

import json
import math
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from rnnkit.train.batches import (
    as_batch, count_targets, count_tokens, detach_state, model_kwargs, to_device,
)
from rnnkit.train import checkpoint, distributed
from rnnkit.train.averaging import exponential_average
from rnnkit.train.board import ScalarBoard
from rnnkit.train import state as saved_state
from rnnkit.train.config import OPTIMIZER_SETTINGS, TrainConfig, native_bfloat16
from rnnkit.train.evaluate import forward_loss, loss_totals
from rnnkit.train.optim import Schedule, build_optimizer
from rnnkit.train.progress import MetricsLog, Progress, plot_curves


#: Prefix of the live weights in a checkpoint's state.safetensors when model.safetensors holds their average.
TRAINING_WEIGHTS = "training_weights."
#: Checkpoint tensors of the random generators as the current epoch began (see ``Trainer._epoch_iterator``).
EPOCH_GENERATORS = "epoch_generators."


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


def versions() -> dict[str, str]:
    """Library versions and the CPU's threads and vector instructions (on which speed and the last bits depend)
    of every run directory."""
    import rnnkit

    return {"rnnkit": rnnkit.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "cpu_threads": str(torch.get_num_threads()), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bfloat16": str(native_bfloat16())}


class Trainer:
    """Trains a model with a :class:`TrainConfig`; the same loop serves Python users and the CLI.

    The model is called as ``model(inputs, targets, **rest_of_batch)`` and returns a
    :class:`rnnkit.models.ModelOutput` whose ``loss`` is minimised. For any other ``torch.nn.Module``
    give ``loss_fn(output, batch) -> loss``; the model is then called as ``model(inputs, **rest)``.

    Args:
        model: the model to train (moved to ``config.device``).
        train_data: a ``torch.utils.data.Dataset`` (batched here with ``config.batch_size``, shuffled
            with ``config.seed`` and sharded under torchrun), or an iterable of batches such as
            :class:`rnnkit.data.StreamBatches` (truncated BPTT) or a DataLoader. A batch is a dict with
            ``inputs`` and ``targets`` (plus e.g. ``lengths``), or a tuple ``(inputs, targets)``.
        config: training options (default ``TrainConfig()``).
        val_data: validation data of the same kind; ``val_loss`` is the count-weighted mean loss.
        run_dir: where config.json, metrics.jsonl, checkpoints and plots go (``None``: keep nothing).
        collate_fn: batches Dataset items (default: torch's ``default_collate``).
        loss_fn: ``loss_fn(output, batch) -> scalar`` for models that do not return a ModelOutput.
        metrics_fn: ``metrics_fn(model, val_batches) -> dict`` of extra validation metrics.
        model_config: JSON-able description of the model, saved in config.json and checkpoints.
        progress: show progress on stderr.

    >>> model = torch.nn.Linear(3, 1)
    >>> data = [(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(4)]
    >>> mse = lambda output, batch: torch.nn.functional.mse_loss(output, batch["targets"])
    >>> result = Trainer(model, data, config=TrainConfig(max_steps=8), loss_fn=mse, progress=False).fit()
    >>> result["step"]
    8
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_data: Dataset | Iterable,
        *,
        config: TrainConfig | None = None,
        val_data: Dataset | Iterable | None = None,
        run_dir: str | Path | None = None,
        collate_fn: Callable | None = None,
        loss_fn: Callable[[Any, dict], Tensor] | None = None,
        metrics_fn: Callable[[torch.nn.Module, Iterable], dict] | None = None,
        model_config: dict | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config or TrainConfig()
        self.process, self.device = distributed.setup(self.config.device)
        self.model = model.to(self.device)
        self.train_data, self.val_data = train_data, val_data
        self.collate_fn, self.loss_fn, self.metrics_fn = collate_fn, loss_fn, metrics_fn
        self.model_config = model_config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.show_progress = progress and self.process.is_main
        self.optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], self.config)
        self.schedule = Schedule(self.optimizer, self.config)
        self.wrapped = distributed.wrap(self.model, self.process, self.device)
        self.averaged = (exponential_average(self.model, self.config.ema_decay)
                         if self.config.ema_decay is not None else None)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.best: float | None = None
        self.best_step: int | None = None
        self.evals_without_improvement = self.nonfinite_in_a_row = 0
        self.state: Any = None
        self._epoch_generators: tuple[dict, dict] | None = None  # the random generators as this epoch began
        self.saved_step: int | None = None
        self.evaluated_step: int | None = None  # a resumed run must not evaluate the same step twice
        self.last_evaluation: dict = {}
        self.stop_reason = ""
        self.pace_checked = False
        self.history: list[dict] = []
        self.board = ScalarBoard(None)

    # ----------------------------------------------------------------------------------- data
    def _batches(self, data: Dataset | Iterable, epoch: int, *, shuffle: bool) -> Iterable:
        if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
            world = self.process.world_size
            if self.config.batch_size % world:
                raise ValueError(f"batch_size {self.config.batch_size} is not divisible by the {world} "
                                 f"processes; choose a multiple of {world}")
            if shuffle:
                # One sampler for one process or many: the union of the processes' batches at a step is the
                # single-process batch (but for an epoch's last batch, where the sampler repeats a few examples
                # to even out the shares), and the order depends only on the seed and the epoch.
                sampler = DistributedSampler(data, num_replicas=world, rank=self.process.rank, shuffle=True,
                                             seed=self.config.seed)
                sampler.set_epoch(epoch)
            else:  # evaluation counts each example once: DistributedSampler's repeats would be counted twice
                sampler = range(self.process.rank, len(data), world)
            return DataLoader(data, batch_size=self.config.batch_size // world, sampler=sampler,
                              collate_fn=self.collate_fn,
                              generator=torch.Generator().manual_seed(self.config.seed + epoch))
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        if self.process.distributed:
            if not hasattr(data, "shard"):
                raise TypeError("under torchrun pass a Dataset or data with shard(rank, world_size) "
                                "(e.g. StreamBatches), so each process gets its own part of every batch")
            data = data.shard(self.process.rank, self.process.world_size)
        return data

    def _epoch_iterator(self) -> Iterator[dict]:
        while True:
            # A DataLoader (or any data that shuffles with the global generators) draws its order and its workers'
            # seeds when its iterator is made. A run resumed within an epoch makes it from the generators as they
            # were when the epoch began, skips the batches already trained on, and then takes up the checkpoint's.
            resumed = None
            if self.batch_in_epoch and self._epoch_generators is not None:
                resumed = saved_state.snapshot(None, self.device)
                saved_state.restore(*self._epoch_generators, self.device)
            else:
                self._epoch_generators = saved_state.snapshot(None, self.device)
            batches = iter(self._batches(self.train_data, self.epoch, shuffle=True))
            for _ in islice(batches, self.batch_in_epoch):
                pass
            if resumed is not None:
                saved_state.restore(*resumed, self.device)
            count = 0
            for batch in batches:
                count += 1
                self.batch_in_epoch += 1
                yield as_batch(batch)
            if count == 0 and self.batch_in_epoch == 0:
                raise ValueError(f"the training data yielded no batches in epoch {self.epoch}; it may be smaller "
                                 "than one batch, or a one-shot iterator (pass a list, a Dataset or StreamBatches)")
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def _forward(self, model: torch.nn.Module, batch: dict, state: Any) -> tuple[Tensor, Any]:
        return forward_loss(model, batch, state, loss_fn=self.loss_fn, bf16=self.config.bf16)

    # ----------------------------------------------------------------------------------- step
    def _train_step(self, batch: dict) -> dict:
        self.wrapped.train()
        batch = to_device(batch, self.device)
        loss, state = self._forward(self.wrapped, batch, self.state)
        counted = count_targets(batch)
        if self.process.distributed:
            # DDP averages the processes' gradients of their own mean losses. Weighted by each process's share of
            # the counted targets (padding and document ends make them differ), that average is the gradient of
            # the whole batch's mean loss, as one process computes it.
            (total,) = distributed.all_sum([counted], self.process, self.device)
            (loss * (self.process.world_size * counted / total if total else 0.0)).backward()
        else:
            loss.backward()
        parameters = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.clip_norm or math.inf)
        if self.config.clip_value is not None:
            torch.nn.utils.clip_grad_value_(parameters, self.config.clip_value)
        loss_value, norm_value = float(loss.detach()), float(norm)
        loss_sum, count, bad = distributed.all_sum(
            [loss_value * counted, counted,
             float(not (math.isfinite(loss_value) and math.isfinite(norm_value)))], self.process, self.device)
        record = {"step": self.step + 1, "loss": loss_sum / max(count, 1), "grad_norm": norm_value,
                  "lr": self.optimizer.param_groups[0]["lr"]}
        if bad:
            self.nonfinite_in_a_row += 1
            self.state = None  # a state computed from non-finite values would poison the next chunk
            record["skipped"] = True
        else:
            self.nonfinite_in_a_row = 0
            self.optimizer.step()
            if self.averaged is not None:
                self.averaged.update_parameters(self.model)
            self.state = detach_state(state)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.schedule.step(self.step)
        return record

    # ------------------------------------------------------------------------------- evaluate
    @property
    def evaluation_model(self) -> torch.nn.Module:
        """The weights that are evaluated and saved: the moving average with ``ema_decay``, else the model."""
        return self.model if self.averaged is None else self.averaged.module

    @torch.no_grad()
    def evaluate(self, data: Dataset | Iterable | None = None, max_batches: int | None = None) -> dict:
        """Count-weighted mean loss over ``data`` (default: the validation data) as ``val_loss``."""
        data = self.val_data if data is None else data
        if data is None:
            return {}
        self.wrapped.eval()
        model = self.evaluation_model.eval()
        total, count = loss_totals(model, islice(self._batches(data, 0, shuffle=False), max_batches),
                                   self.device, loss_fn=self.loss_fn, bf16=self.config.bf16)
        total, count = distributed.all_sum([total, count], self.process, self.device)
        if count == 0:
            raise ValueError("the validation data yields no batches")
        metrics = {"val_loss": total / count}
        if self.metrics_fn is not None:
            # --eval-batches limits these metrics exactly as it limits val_loss
            extra = self.metrics_fn(model, islice(self._batches(data, 0, shuffle=False), max_batches))
            # Under torchrun a metrics_fn that does not sum its counts over processes sees this process's share
            # of the validation data; every process takes rank 0's values, so that checkpoint choice and early
            # stopping agree everywhere (a process that stopped alone would leave the others waiting).
            extra = distributed.gather_objects(extra, self.process)[0]
            metrics.update({k if k.startswith("val_") else f"val_{k}": float(v) for k, v in extra.items()})
        return metrics

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.config.monitor_direction == "min" else value > self.best

    # ---------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"

    def save(self, *, best: bool = False) -> None:
        """Write a checkpoint of everything needed to continue (rank 0 writes; all ranks take part)."""
        if self.checkpoint_dir is None:
            return
        own_tensors, own_plain = saved_state.snapshot(self.state, self.device)
        if self._epoch_generators is not None:
            epoch_tensors, epoch_plain = self._epoch_generators
            own_tensors |= {f"{EPOCH_GENERATORS}{k}": v for k, v in epoch_tensors.items()}
            own_plain["epoch_generators"] = epoch_plain
        snapshots = distributed.gather_objects((own_tensors, own_plain), self.process)
        if self.process.is_main:
            tensors, optimizer_rest = checkpoint.split_optimizer_state(self.optimizer.state_dict())
            if self.averaged is not None:  # model.safetensors holds the average; training goes on from these
                tensors.update({f"{TRAINING_WEIGHTS}{k}": v.detach().contiguous().cpu()
                                for k, v in self.model.state_dict().items()})
            per_rank = []
            for rank, (rank_tensors, plain) in enumerate(snapshots):
                tensors.update({f"rank{rank}.{k}": v for k, v in rank_tensors.items()})
                per_rank.append(plain)
            info = {
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.process.world_size, "train_config": self.config.to_dict(),
                "model_config": self.model_config, "optimizer": optimizer_rest,
                "schedule": self.schedule.state_dict(), "best": self.best, "best_step": self.best_step,
                "evals_without_improvement": self.evals_without_improvement,
                "nonfinite_in_a_row": self.nonfinite_in_a_row, "evaluated_step": self.evaluated_step,
                "random": per_rank, "versions": versions(),
                "ema_updates": None if self.averaged is None else int(self.averaged.n_averaged),
            }
            checkpoint.save_checkpoint(self.checkpoint_dir, self.step, self.evaluation_model.state_dict(), tensors,
                                       info, best=best)
        self.saved_step = self.step
        distributed.barrier(self.process)

    def restore(self, path: str | Path) -> None:
        """Continue from a checkpoint folder: weights, optimizer, schedule, data position, generators."""
        model_state, tensors, info = checkpoint.load_checkpoint(path)
        try:
            self._restore(path, model_state, tensors, info)
        except checkpoint.CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
            # Valid JSON and safetensors with the wrong structure: edited or written by something else.
            raise checkpoint.CheckpointError(
                f"{path} is damaged ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                "resume from an earlier checkpoint (point latest.json at it) or start the run again") from None

    def _restore(self, path, model_state: dict, tensors: dict, info: dict) -> None:
        for name in ("step", "epoch", "batch_in_epoch", "evals_without_improvement", "nonfinite_in_a_row"):
            if isinstance(info[name], bool) or not isinstance(info[name], int) or info[name] < 0:
                raise ValueError(f"{name} {info[name]!r} is not a count")
        if info.get("world_size", 1) != self.process.world_size:
            raise checkpoint.CheckpointError(
                f"{path} was written by a run with {info.get('world_size')} processes; resume it with the same "
                f"number (this run has {self.process.world_size})")
        saved_config = info.get("train_config", {})
        saved_batch = saved_config.get("batch_size", self.config.batch_size)
        if saved_batch != self.config.batch_size:
            raise checkpoint.CheckpointError(
                f"{path} was trained with batch_size {saved_batch}; resume with the same batch size (this run "
                f"has {self.config.batch_size}): data order and carried states depend on it")
        if self.model_config is not None and info.get("model_config") not in (None, self.model_config):
            raise checkpoint.CheckpointError(f"{path} belongs to a different model configuration: "
                                             f"{info.get('model_config')} vs {self.model_config}")
        saved_decay = saved_config.get("ema_decay", self.config.ema_decay)
        if saved_decay != self.config.ema_decay:
            raise checkpoint.CheckpointError(
                f"{path} was trained with ema_decay {saved_decay}; resume with the same setting (this run has "
                f"{self.config.ema_decay}): the saved weights are {'an average' if saved_decay else 'the live ones'}"
                f"{' with that decay' if saved_decay and self.config.ema_decay else ''}")
        model_state = {k: v.to(self.device) for k, v in model_state.items()}
        if self.averaged is not None:
            checkpoint.load_model_state(self.averaged.module, model_state, path)
            self.averaged.n_averaged.fill_(info["ema_updates"])
            model_state = {k[len(TRAINING_WEIGHTS):]: v.to(self.device) for k, v in tensors.items()
                           if k.startswith(TRAINING_WEIGHTS)}
        checkpoint.load_model_state(self.model, model_state, path)
        changed = [f"{name} {saved_config[name]!r} (this run: {getattr(self.config, name)!r})"
                   for name in OPTIMIZER_SETTINGS
                   if name in saved_config and saved_config[name] != getattr(self.config, name)]
        if changed:  # loading the optimizer's state would quietly bring the old values back
            raise checkpoint.CheckpointError(
                f"{path} was trained with {', '.join(changed)}; resume with the same optimizer and schedule, or "
                "start a new run with the new ones")
        optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
        self.optimizer.load_state_dict(checkpoint.join_optimizer_state(optimizer_tensors, info["optimizer"]))
        for group in self.optimizer.param_groups:  # Adam's moments, SGD's momentum: one value per weight
            for parameter in group["params"]:
                for name, value in self.optimizer.state.get(parameter, {}).items():
                    if isinstance(value, torch.Tensor) and value.dim() and value.shape != parameter.shape:
                        raise ValueError(f"optimizer {name} of shape {tuple(value.shape)} for a weight of shape "
                                         f"{tuple(parameter.shape)}")
        self.schedule.load_state_dict(info["schedule"])
        self.step, self.epoch, self.batch_in_epoch = info["step"], info["epoch"], info["batch_in_epoch"]
        self.saved_step = self.step
        self.best, self.best_step = info["best"], info["best_step"]
        self.evals_without_improvement = info["evals_without_improvement"]
        self.nonfinite_in_a_row = info["nonfinite_in_a_row"]
        self.evaluated_step = info.get("evaluated_step")
        prefix = f"rank{self.process.rank}."
        mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        plain = info["random"][self.process.rank]
        self.state = saved_state.restore(mine, plain, self.device)
        epoch_tensors = {k[len(EPOCH_GENERATORS):]: v for k, v in mine.items() if k.startswith(EPOCH_GENERATORS)}
        self._epoch_generators = (epoch_tensors, plain["epoch_generators"]) if epoch_tensors else None

    # ------------------------------------------------------------------------------------ fit
    def _write_run_config(self) -> None:
        if self.run_dir is None or not self.process.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.write_json_atomic(self.run_dir / "config.json", {
            "train": self.config.to_dict(), "model": self.model_config, "seed": self.config.seed,
            "world_size": self.process.world_size, "versions": versions()})

    def fit(self, *, resume: bool = False) -> dict:
        """Train until ``config.max_steps`` (or early stopping); returns the final metrics.

        With ``resume=True`` the run continues from the latest checkpoint in ``run_dir`` (if any).
        """
        metrics, progress = self._start(resume)
        batches = self._epoch_iterator()
        last: dict = {}
        previous_handler = self._catch_interrupt(progress)
        clock, first_step = time.perf_counter(), self.step
        try:
            while self.step < self.config.max_steps and not self.stop_reason:
                started = time.perf_counter()
                batch = next(batches)
                last = self._train_step(batch)
                last["seconds"] = time.perf_counter() - started
                metrics.append(last)
                self.history.append(last)
                tokens = count_tokens(batch) * self.process.world_size
                self.board.train_step(last, tokens)
                progress.update(self.step, tokens, {"loss": last["loss"], "lr": last["lr"]})
                if last.get("skipped"):  # the step still counts: its evaluation and checkpoint are due as usual
                    self._skipped(last, progress)
                elif self.config.grad_flow_every and self.step % self.config.grad_flow_every == 0:
                    self._log_gradient_flow(batch)
                self._check_time_limit(clock, first_step, progress)
                evaluated = self._maybe_evaluate(metrics, progress)
                if self.step % self.config.checkpoint_every == 0 and not evaluated.get("saved"):
                    self.save()
                metrics.flush()
                self.board.flush()
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            progress.close()
            metrics.flush()
            self.board.flush()
        return self._finish(metrics, progress, last)

    def _start(self, resume: bool) -> tuple[MetricsLog, Progress]:
        """Restore the latest checkpoint (resume) or seed afresh; open the metrics log and the progress."""
        resumed_from = None
        if resume and self.checkpoint_dir is not None:
            resumed_from = checkpoint.find_checkpoint(self.checkpoint_dir)
        if resumed_from is not None:
            self.restore(resumed_from)
        else:
            # Seed the loop's randomness (dropout, sampling); each process its own stream.
            saved_state.seed_everything(self.config.seed + self.process.rank)
            self._write_run_config()
        metrics = MetricsLog(self.run_dir / "metrics.jsonl" if self.run_dir else Path("."),
                             enabled=self.run_dir is not None and self.process.is_main)
        # Records past the checkpoint were written by a run that was killed (before its first checkpoint:
        # all of them); the steps are trained again, and each must appear once.
        metrics.truncate_after(self.step)
        minutes = self.config.max_minutes
        progress = Progress(self.config.max_steps, self.step, log_every=self.config.log_every,
                            enabled=self.show_progress, time_limit=60 * minutes if minutes else None)
        self.board = ScalarBoard(self.run_dir, enabled=self.config.tensorboard and self.process.is_main,
                                 resumed_at=self.step if resumed_from is not None else None,
                                 notify=progress.message)
        if resumed_from is not None:
            progress.message(f"resuming from {resumed_from} (step {self.step})")
            # A run that had stopped early stays stopped: resuming must not train past its decision.
            if self._patience_spent():
                progress.message(f"{self.stop_reason} before the checkpoint; nothing left to train "
                                 "(a larger --early-stopping-patience trains on)")
        return metrics, progress

    def _skipped(self, record: dict, progress: Progress) -> None:
        """A step with a non-finite loss or gradient was skipped; too many in a row stop the run."""
        progress.message(f"step {self.step}: non-finite loss or gradient (loss {record['loss']}, "
                         f"norm {record['grad_norm']}); step skipped")
        if self.nonfinite_in_a_row >= self.config.max_nonfinite_steps:
            where = f" ({self.checkpoint_dir})" if self.checkpoint_dir else ""
            raise TrainingDiverged(
                f"stopped at step {self.step}: {self.nonfinite_in_a_row} consecutive steps had a non-finite loss "
                f"or gradient. The last good checkpoint is intact{where}. Lower the learning rate, enable "
                f"clip_norm, or check the data for NaN/inf")

    def _check_time_limit(self, clock: float, first_step: int, progress: Progress) -> None:
        minutes = self.config.max_minutes
        if minutes is None or self.stop_reason:
            return
        elapsed = time.perf_counter() - clock
        if not self.pace_checked and self.process.is_main:
            self._check_pace(elapsed, self.step - first_step, progress)
        # Rank 0's clock decides for everyone, so all processes stop at the same step.
        over = elapsed > 60 * minutes if self.process.is_main else False
        if distributed.all_sum([float(over)], self.process, self.device)[0]:
            self.stop_reason = f"time limit of {minutes:g} minutes"
            progress.message(f"step {self.step}: {self.stop_reason} reached")

    def _check_pace(self, elapsed: float, steps: int, progress: Progress) -> None:
        """Say once, early, when the time limit will cut a cosine schedule short.

        The schedule is sized in steps so that a seed gives the same run on every machine; a machine too slow
        for them stops while the learning rate is still high, which costs more than the missing steps.
        """
        budget = 60 * self.config.max_minutes
        if self.config.schedule != "cosine" or steps < 20 or elapsed < max(0.02 * budget, 1.0):
            return
        self.pace_checked = True
        fitting = self.step + int(steps / elapsed * (budget - elapsed))
        if fitting < 0.9 * self.config.max_steps:
            suggested = fitting // 100 * 100 if fitting >= 1000 else fitting
            progress.message(
                f"note: at {elapsed / steps:.3g} s per step the {self.config.max_minutes:g}-minute limit will stop "
                f"this run near step {fitting:,} of {self.config.max_steps:,}, before the cosine schedule has "
                f"decayed; --max-steps {suggested} fits the schedule to this machine")

    def _finish(self, metrics: MetricsLog, progress: Progress, last: dict) -> dict:
        """The last evaluation and checkpoint, the plots, and the result of :meth:`fit`.

        An interrupted run only writes its checkpoint: an evaluation here, which the uninterrupted run never
        makes, would step the plateau schedule and the early-stopping count and so change the resumed run.
        """
        final = {}
        if self.val_data is not None and self.stop_reason != "interrupted" and self.evaluated_step != self.step:
            final = self._maybe_evaluate(metrics, progress, force=True)
        elif self.evaluated_step == self.step:  # evaluated in the loop at the last step: report it too
            final = dict(self.last_evaluation)
        if self.saved_step != self.step:
            self.save()
        metrics.close()
        self.board.close()
        if self.run_dir is not None and self.process.is_main:
            plot_curves(metrics.read(), self.run_dir / "curves.png", title=type(self.model).__name__)
            self._plot_gradient_flow()
        result = {"step": self.step, "loss": last.get("loss", math.nan), "best": self.best,
                  "best_step": self.best_step, "stopped": self.stop_reason or "max_steps"}
        result.update({k: v for k, v in final.items() if k != "saved"})
        return result

    def _catch_interrupt(self, progress: Progress):
        """First Ctrl-C: finish the current step, checkpoint and stop cleanly; a second one aborts."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self.stop_reason == "interrupted":
                raise KeyboardInterrupt
            self.stop_reason = "interrupted"
            progress.message("interrupted: finishing this step and writing a checkpoint (Ctrl-C again to abort)")

        return signal.signal(signal.SIGINT, handler)

    def _maybe_evaluate(self, metrics: MetricsLog, progress: Progress, *, force: bool = False) -> dict:
        if self.val_data is None or not (force or self.step % self.config.eval_every == 0):
            return {}
        values = self.evaluate(max_batches=self.config.eval_batches)
        self.evaluated_step, self.last_evaluation = self.step, values
        metrics.append({"step": self.step, **values})
        self.board.evaluation(self.step, values)
        self.history.append({"step": self.step, **values})
        if self.config.monitor not in values:
            raise KeyError(f"monitor {self.config.monitor!r} is not among the validation metrics "
                           f"{sorted(values)}; set TrainConfig.monitor to one of them")
        value = values[self.config.monitor]
        self.schedule.evaluated(value, self.step)
        improved = self._improved(value)
        if improved:
            self.best, self.best_step, self.evals_without_improvement = value, self.step, 0
        else:
            self.evals_without_improvement += 1
        shown = " ".join(f"{k} {v:.4f}" for k, v in values.items())
        progress.message(f"step {self.step}: {shown}{' (best)' if improved else ''}")
        if self._patience_spent():
            progress.message(self.stop_reason)
        self.save(best=improved)
        return {**values, "saved": True}

    def _patience_spent(self) -> bool:
        """Early stopping: set the stop reason once ``early_stopping_patience`` evaluations brought nothing."""
        patience = self.config.early_stopping_patience
        if patience is None or self.evals_without_improvement < patience:
            return False
        self.stop_reason = f"early stopping: no improvement in {patience} evaluations"
        return True

    def _log_gradient_flow(self, batch: dict) -> None:
        from rnnkit.diagnostics import gradient_flow

        if not self.process.is_main or self.run_dir is None:
            return
        batch = to_device(batch, self.device)
        extra = model_kwargs(batch)
        if self.loss_fn is not None:
            flow = gradient_flow(self.model, batch["inputs"], loss_fn=lambda out: self.loss_fn(out, batch), **extra)
        else:
            flow = gradient_flow(self.model, batch["inputs"], batch.get("targets"), **extra)
        with open(self.run_dir / "gradient_flow.jsonl", "a") as file:
            file.write(json.dumps({"step": self.step, **flow.to_dict()}) + "\n")

    def _plot_gradient_flow(self) -> None:
        path = self.run_dir / "gradient_flow.jsonl"
        if not path.exists():
            return
        from rnnkit.diagnostics import GradientFlow, plot_gradient_flow

        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        records = [r for r in records if r["step"] <= self.step]
        if not records:
            return
        chosen = {f"step {r['step']}": GradientFlow(steps=r["steps"]) for r in (records[0], records[-1])}
        plot_gradient_flow(chosen, self.run_dir / "gradient_flow.png", title="gradient flow during training")
