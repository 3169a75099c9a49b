"""Helpers for the application tests: run directories written by hand, and comparing two runs to the bit."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from rnnkit.apps.lifecycle import APP_FILE, RUN_FORMAT


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
