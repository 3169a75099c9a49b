"""Helpers for the application tests: run directories written by hand, comparing two runs to the bit, and
killing a training mid-run to check that resuming it gives the same bits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rnnkit.apps.lifecycle import APP_FILE, RUN_FORMAT


def train_text_with_an_unseen_phrase(directory: Path) -> Path:
    """A small character-level textgen run whose validation text is a phrase its training part never had (the
    evaluations that read the text as they go, dynamic and cached, must beat fixed weights on it)."""
    from rnnkit.cli.main import main

    text = directory / "text.txt"
    text.write_text("the cat sat on the mat. " * 150 + "zebra quokka xylophone. " * 40)
    out = directory / "run"
    assert main(["textgen", "train", "--data", str(text), "--out", str(out), "--max-steps", "40", "--hidden-size",
                 "32", "--batch-size", "4", "--chunk-length", "16", "--eval-every", "40", "--quiet",
                 "--sample-length", "0"]) == 0
    return out


def write_run_marker(run: Path, app: str, *, format: int = RUN_FORMAT) -> None:
    """An ``app.json`` claiming ``run`` for ``app`` (for the tests of foreign and newer runs)."""
    run.mkdir(parents=True, exist_ok=True)
    (run / APP_FILE).write_text(json.dumps({"app": app, "format": format, "settings": {}}))


def training_losses(run: Path) -> list[tuple[int, float]]:
    """``(step, loss)`` of every training step in the run's metrics.jsonl, in order."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def assert_same_run(first: Path, second: Path) -> None:
    """Identical training losses (every step, once each) and identical final weights, to the bit."""
    losses = training_losses(first)
    assert losses == training_losses(second)
    steps = [step for step, _ in losses]
    assert steps == sorted(set(steps)), "a step was logged twice"
    a, b = load_file(first / "model" / "model.safetensors"), load_file(second / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equal(b[name]), name


class Killed(Exception):
    """Stands in for SIGKILL: raised from inside the training loop, never caught by rnnkit."""


def kill_at_step(monkeypatch, step: int) -> None:
    """Make the next training die right after its optimizer step ``step`` was logged."""
    from rnnkit.train import Trainer

    original = Trainer._train_step

    def train_step(self, batch):
        if self.step == step:
            raise Killed
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", train_step)


def assert_reproducible_and_resumable(train: Callable[..., int], tmp_path: Path, monkeypatch, *, steps: int = 12,
                                      kills: tuple[int, ...] = (3, 8)) -> Path:
    """Same seed, same bits; a killed run resumed equals the uninterrupted one.

    ``train(out, *extra)`` runs one training of ``steps`` steps into ``out`` (exit status); ``extra`` is
    ``--resume`` for the resumed half. With checkpoints every 5 steps, a kill at 3 comes before the first
    checkpoint and one at 8 after it. Returns the first run.
    """
    first, second = tmp_path / "same-seed-1", tmp_path / "same-seed-2"
    assert train(first) == 0 and train(second) == 0
    assert len(training_losses(first)) == steps
    assert_same_run(first, second)
    for kill in kills:
        killed = tmp_path / f"killed-at-{kill}"
        with monkeypatch.context() as patch:
            kill_at_step(patch, kill)
            with pytest.raises(Killed):
                train(killed)
        assert [step for step, _ in training_losses(killed)] == list(range(1, kill + 1))
        assert train(killed, "--resume") == 0
        assert_same_run(first, killed)
    return first
