"""What a run shows while it works and leaves behind: a live bar or log lines, metrics.jsonl, curves.

On a terminal a tqdm bar shows loss, tokens/s and the ETA; elsewhere (CI, ``nohup``, a pipe) a plain
line is printed every ``log_every`` steps. Every step's record is appended to ``metrics.jsonl`` in
the run directory, and ``plot_curves`` turns that file into ``curves.png`` at the end.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rnnkit._files import finite_or_null, null_as_nan, replace_atomically

_SHOWN = contextvars.ContextVar("rnnkit_progress_shown", default=True)


@contextlib.contextmanager
def shown(enabled: bool) -> Iterator[None]:
    """Within the block, :func:`is_shown` says ``enabled``: an application's run (``--quiet`` or not) tells
    the steps it calls deep down (rendering a data set, fitting a baseline) whether to report progress."""
    token = _SHOWN.set(enabled)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def is_shown() -> bool:
    """Whether the enclosing :func:`shown` block (by default: yes) wants progress reported."""
    return _SHOWN.get()


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1h02m'``, ``65`` -> ``'1m05s'``, ``4.2`` -> ``'4s'``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Shows training progress on stderr: a tqdm bar on a terminal, log lines otherwise."""

    def __init__(self, total: int, start: int = 0, *, log_every: int = 50, enabled: bool = True,
                 stream=None, time_limit: float | None = None) -> None:
        self.total, self.step, self.log_every, self.enabled = total, start, log_every, enabled
        self.time_limit = time_limit  # seconds; the run also stops there
        self.stream = stream or sys.stderr
        self._start_step, self._start_time = start, time.perf_counter()
        self._tokens, self._bar = 0, None
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, file=self.stream, dynamic_ncols=True, unit="step")

    def tokens_per_second(self) -> float:
        elapsed = time.perf_counter() - self._start_time
        return self._tokens / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float:
        elapsed = time.perf_counter() - self._start_time
        done = self.step - self._start_step
        by_steps = elapsed / done * (self.total - self.step) if done > 0 else math.inf
        by_time = self.time_limit - elapsed if self.time_limit is not None else math.inf
        return max(min(by_steps, by_time), 0.0)

    def update(self, step: int, tokens: int, values: dict[str, float]) -> None:
        self.step = step
        self._tokens += tokens
        if not self.enabled:
            return
        shown = {k: f"{v:.4g}" for k, v in values.items()}
        shown["tok/s"] = f"{self.tokens_per_second():,.0f}"
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(step - self._bar.n)
        elif step % self.log_every == 0 or step == self.total:
            items = " ".join(f"{k} {v}" for k, v in shown.items())
            print(f"step {step}/{self.total} {items} eta {format_duration(self.eta())}", file=self.stream,
                  flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def reading(batches, what: str, *, stream=None, every: float = 30.0) -> Iterator:
    """``batches``, unchanged, while stderr shows how far the reading has got: a tqdm bar on a terminal, otherwise
    a line every ``every`` seconds (so a read shorter than that prints nothing).

    >>> import io
    >>> list(reading([1, 2], "evaluating", stream=io.StringIO()))
    [1, 2]
    """
    stream = stream or sys.stderr
    total = len(batches) if hasattr(batches, "__len__") else None
    if stream.isatty():
        from tqdm import tqdm

        yield from tqdm(batches, total=total, desc=what, file=stream, unit="batch", leave=False, dynamic_ncols=True)
        return
    start = last = time.perf_counter()
    for done, batch in enumerate(batches, 1):
        yield batch  # the caller's work on it happens before the next line runs
        now = time.perf_counter()
        if now - last >= every:
            last = now
            left = f", {format_duration((now - start) / done * (total - done))} left" if total else ""
            print(f"{what}: {done:,}/{total:,} batches{left}" if total else f"{what}: {done:,} batches",
                  file=stream, flush=True)


class MetricsLog:
    """Appends one JSON record per line to ``metrics.jsonl``; resuming drops records past the checkpoint.

    A non-finite number (the loss of a skipped step) is written as ``null``, which strict JSON readers take, and
    read back as NaN."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path, self.enabled = Path(path), enabled
        self._file = None

    def truncate_after(self, step: int) -> None:
        """Drop records newer than ``step`` (written by a run that was killed after its last checkpoint)."""
        if not self.enabled or not self.path.exists():
            return
        kept = "".join(_line(record) for record in self.read() if record.get("step", 0) <= step)
        replace_atomically(self.path, lambda temporary: temporary.write_text(kept))  # a kill keeps the old log

    def read(self) -> list[dict]:
        records = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                records.append(null_as_nan(record))
        return records

    def append(self, record: dict) -> None:
        if not self.enabled:
            return
        if self._file is None:
            self._file = open(self.path, "a")
        self._file.write(_line(record))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _line(record: dict) -> str:
    return json.dumps(finite_or_null(record), allow_nan=False) + "\n"


def _smooth(values: list[float], window: int) -> list[float]:
    out, total, queue = [], 0.0, []
    for value in values:
        queue.append(value)
        total += value
        if len(queue) > window:
            total -= queue.pop(0)
        out.append(total / len(queue))
    return out


def plot_curves(records: list[dict], path: Path, title: str = "") -> Path | None:
    """Save training/validation loss, gradient norm and learning rate against step as a PNG."""
    train = [r for r in records if "loss" in r and math.isfinite(r["loss"])]
    evals = [r for r in records if any(k.startswith("val_") for k in r)]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in train]
    if train:
        losses = [r["loss"] for r in train]
        axes[0].plot(steps, losses, alpha=0.3, color="C0", label="train (per step)")
        axes[0].plot(steps, _smooth(losses, max(len(losses) // 50, 1)), color="C0", label="train (smoothed)")
    for key in sorted({k for r in evals for k in r if k.startswith("val_")}):
        points = [(r["step"], r[key]) for r in evals if key in r and math.isfinite(r[key])]
        if points and key == "val_loss":
            axes[0].plot(*zip(*points), "o-", color="C1", label="validation")
    axes[0].set(xlabel="step", ylabel="loss", title="loss")
    axes[0].legend()
    norms = [(r["step"], r["grad_norm"]) for r in train if math.isfinite(r.get("grad_norm", math.nan))]
    if norms:
        axes[1].semilogy(*zip(*norms), color="C2")
    axes[1].set(xlabel="step", ylabel="global norm before clipping", title="gradient norm")
    if train and "lr" in train[0]:
        axes[2].plot(steps, [r["lr"] for r in train], color="C3")
    axes[2].set(xlabel="step", ylabel="learning rate", title="learning rate")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
