"""TensorBoard scalars: every training writes them next to metrics.jsonl; tensorboard's own reader gets
back exactly the values metrics.jsonl holds; ``tensorboard=False`` / ``--no-tensorboard`` writes none."""

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from rnnkit.train import TrainConfig, Trainer

pytest.importorskip("tensorboard", reason="needs the tensorboard package (pip install 'rnnkit[tensorboard]')")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _data(n=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator)
    return TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]))


def _mse(output, batch):
    return F.mse_loss(output, batch["targets"])


def _train(run: Path, **options) -> list[dict]:
    config = TrainConfig(max_steps=12, batch_size=8, eval_every=4, lr=1e-2, schedule="cosine", **options)
    Trainer(torch.nn.Linear(3, 1), _data(), val_data=_data(16, 1), config=config, run_dir=run, loss_fn=_mse,
            progress=False).fit()
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _scalars(run: Path) -> dict[str, dict[int, float]]:
    board = EventAccumulator(str(run), size_guidance={"scalars": 0})
    board.Reload()
    return {tag: {e.step: e.value for e in board.Scalars(tag)} for tag in board.Tags()["scalars"]}


def test_event_files_hold_the_logged_scalars(tmp_path):
    records = _train(tmp_path)
    assert list(tmp_path.glob("events.out.tfevents.*")), "no event file in the run directory"
    scalars = _scalars(tmp_path)
    assert set(scalars) == {"train/loss", "train/grad_norm", "train/lr", "train/tokens_per_second", "val/loss"}
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in train] == list(range(1, 13)) and [r["step"] for r in evals] == [4, 8, 12]
    for key in ("loss", "grad_norm", "lr"):  # event files store float32: the jsonl value rounded once
        assert scalars[f"train/{key}"] == {r["step"]: pytest.approx(r[key], rel=1e-6, abs=1e-12) for r in train}
    assert scalars["val/loss"] == {r["step"]: pytest.approx(r["val_loss"], rel=1e-6) for r in evals}
    # cosine schedule from 1e-2: the learning rate really moves, so the lr scalars are not a constant
    assert scalars["train/lr"][12] < scalars["train/lr"][1]
    # tokens/s = the batch's input elements (8 rows x 3 features, what the progress line counts) / the
    # step's wall time recorded in metrics.jsonl
    for r in train:
        assert scalars["train/tokens_per_second"][r["step"]] == pytest.approx(24 / r["seconds"], rel=1e-5)


def test_tensorboard_false_writes_no_events(tmp_path):
    _train(tmp_path, tensorboard=False)
    assert (tmp_path / "metrics.jsonl").exists()
    assert not list(tmp_path.glob("events.out.tfevents.*"))


def test_cli_has_no_tensorboard_flag():
    from rnnkit.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["classify", "train", "--out", "x", "--no-tensorboard"])
    assert args.tensorboard is False
    assert parser.parse_args(["classify", "train", "--out", "x"]).tensorboard is True
