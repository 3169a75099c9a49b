"""Same seed, same bits: for every application and the lab, two runs with the same --seed give identical
losses and weights, and a run killed before or after its first checkpoint and then resumed equals the
run that was never interrupted.

A kill is simulated in-process by failing the training step after a given number of steps, which leaves
the run directory exactly as a killed process does (app.json, the steps logged so far, the checkpoints
written so far); one real SIGKILL of a subprocess is in test_train.py.
"""

from __future__ import annotations

import random

import pytest

from app_support import assert_reproducible_and_resumable, training_losses
from rnnkit.cli.main import main

pytestmark = pytest.mark.slow

STEPS = 12  # checkpoints every 5 steps: a kill at 3 is before the first, at 8 after it


def _text(path):
    rng = random.Random(1)
    words = "the cat sat on a mat and the dog ran to the park".split()
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(80)))
    return str(path)


def _labelled(path):
    rng = random.Random(2)
    lines = ["text,label"] + [f"{' '.join(rng.choices('a b c d e f g'.split(), k=5))} {label},{label}"
                              for label in rng.choices(["good", "bad"], k=80)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _series(path):
    rng = random.Random(3)
    lines = ["t,value,other"] + [f"{t},{t % 12 + rng.gauss(0, 0.3):.4f},{rng.gauss(0, 1):.4f}" for t in range(120)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _pairs(path):
    rng = random.Random(4)
    lines = []
    for _ in range(120):
        word = "".join(rng.choices("abcd", k=rng.randint(2, 4)))
        lines.append(f"{word}\t{word[::-1]}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


#: app -> (data writer or None, the train arguments besides --out); dropout > 0 wherever the app has it,
#: so the random stream inside training is exercised too.
APPS = {
    "textgen": (_text, ["--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--chunk-length", "16",
                        "--dropout", "0.2", "--sample-length", "0"]),
    "classify": (_labelled, ["--hidden-size", "8", "--embedding-dim", "8", "--batch-size", "8", "--min-freq", "1"]),
    "forecast": (_series, ["--hidden-size", "8", "--lookback", "12", "--batch-size", "8", "--dropout", "0.1",
                           "--num-layers", "2"]),
    "translate": (_pairs, ["--hidden-size", "8", "--embedding-dim", "8", "--attention-size", "8",
                           "--batch-size", "8", "--dropout", "0.1"]),
    "lab": (None, ["adding", "--T", "12", "--hidden-size", "8", "--test-size", "50", "--batch-size", "8"]),
}


def _argv(app: str, tmp_path, out, *extra) -> list[str]:
    writer, options = APPS[app]
    data = ["--data", writer(tmp_path / f"{app}.data")] if writer else []
    verb = [] if app == "lab" else ["train"]
    return [app, *verb, *options, *data, "--out", str(out), "--seed", "7", "--max-steps", str(STEPS),
            "--eval-every", "5", "--checkpoint-every", "5", "--quiet", *extra]


@pytest.mark.parametrize("app", sorted(APPS))
def test_same_seed_same_run_and_a_killed_run_resumes_to_the_same_bits(app, tmp_path, monkeypatch, one_thread):
    assert_reproducible_and_resumable(lambda out, *extra: main(_argv(app, tmp_path, out, *extra)), tmp_path,
                                      monkeypatch, steps=STEPS)


def test_another_seed_gives_another_run(tmp_path):
    first, other = tmp_path / "first", tmp_path / "other"
    assert main(_argv("textgen", tmp_path, first)) == 0
    assert main([*_argv("textgen", tmp_path, other), "--seed", "8"]) == 0
    assert training_losses(first) != training_losses(other)  # the test above could not pass by ignoring the seed
