"""Distributed data parallel: two CPU processes under torchrun train exactly like one on the whole batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent


def _run(out: Path, kind: str, processes: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    subprocess.run([*launcher, str(HERE / "ddp_support.py"), str(out), kind], check=True, env=env,
                   timeout=60 if kind.endswith("rank-metrics") else 240)
    return load_file(out / "weights.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dataset", "streams", "streams-ema", "dataset-uneven", "streams-documents"])
def test_two_processes_match_one_on_the_combined_batch(tmp_path, kind):
    """With unequal target counts per process ("-uneven": ignored targets; "-documents": lanes that end at other
    places) the gradient was the mean of the processes' means, 0.025 off after 6 steps."""
    single = _run(tmp_path / "single", kind, 1)
    double = _run(tmp_path / "double", kind, 2)
    assert any(name.startswith("average.") for name in single) == kind.endswith("-ema")
    for name in single:  # the weights and, with --ema-decay, their average
        torch.testing.assert_close(double[name], single[name], rtol=1e-4, atol=1e-5, msg=name)
    moved = load_file(tmp_path / "single" / "run" / "checkpoints" / "step-00000003" / "model.safetensors")
    assert any(not torch.equal(moved[n], single[n]) for n in moved)  # training did change the weights
    info = json.loads((tmp_path / "double" / "run" / "checkpoints" / "step-00000006" / "trainer.json").read_text())
    assert info["world_size"] == 2 and len(info["random"]) == 2
    lines = (tmp_path / "double" / "run" / "metrics.jsonl").read_text().splitlines()
    assert len([line for line in lines if '"loss"' in line]) == 6  # rank 0 alone writes the metrics
    if kind == "dataset-uneven":  # 21 validation rows: each counted once (the sampler repeated row 0 for rank 1)
        val = [[json.loads(line)["val_loss"] for line in (tmp_path / run / "run" / "metrics.jsonl").read_text()
                .splitlines() if "val_loss" in line] for run in ("single", "double")]
        assert len(val[0]) == 2 and val[1] == pytest.approx(val[0], rel=1e-5)


@pytest.mark.slow
def test_processes_that_measure_different_metrics_stop_together(tmp_path):
    """Each process's metrics_fn sees its own share of the validation data; every process takes rank 0's
    values, so the run reaches max_steps everywhere instead of rank 1 stopping alone (a hang)."""
    _run(tmp_path / "double", "dataset-rank-metrics", 2)
    records = [json.loads(line) for line in (tmp_path / "double" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_score"] for r in records if "val_score" in r] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def _val_metrics(out: Path, processes: int) -> dict:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    launcher = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                                   if processes > 1 else [])
    subprocess.run([*launcher, str(HERE / "ddp_support.py"), str(out), "classify-val-metrics"], check=True, env=env,
                   timeout=120)
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_classify_validation_metrics_count_every_process_share(tmp_path):
    single, double = _val_metrics(tmp_path / "single", 1), _val_metrics(tmp_path / "double", 2)
    assert double == single  # accuracy and macro-F1 of all 30 examples, not of rank 0's 15


@pytest.mark.slow
def test_a_cli_command_trains_under_torchrun(tmp_path):
    (tmp_path / "text.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 200)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "rnnkit.cli.main", "textgen", "train", "--data", str(tmp_path / "text.txt"),
               "--out", str(tmp_path / "run"), "--max-steps", "12", "--hidden-size", "16", "--batch-size", "4",
               "--chunk-length", "16", "--eval-every", "6", "--sample-length", "20", "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("val_nats_per_char") == 1  # rank 0 alone reports
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def _cli(args: list[str], processes: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                                   if processes > 1 else [])
    return subprocess.run([*launcher, "-m", "rnnkit.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=240)


@pytest.mark.slow
def test_a_short_validation_text_gets_lanes_for_every_process(tmp_path):
    """240 validation characters give 3 lanes of 65: with 2 processes the run failed at its first evaluation
    ('batch_size 3 is not divisible by the 2 processes') although --batch-size 4 was given."""
    (tmp_path / "text.txt").write_text(("the quick brown fox jumps over the lazy dog. " * 150)[:6000])
    done = _cli(["textgen", "train", "--data", str(tmp_path / "text.txt"), "--out", str(tmp_path / "run"),
                 "--max-steps", "4", "--hidden-size", "16", "--batch-size", "4", "--chunk-length", "64",
                 "--eval-every", "2", "--val-fraction", "0.04", "--sample-length", "5", "--quiet"], 2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "app.json").read_text())["facts"]["val_batch_size"] % 2 == 0


@pytest.mark.slow
def test_the_gradient_lab_trains_under_torchrun_like_one_process(tmp_path):
    """The lab's generated batches had no shard(), so `rnnkit lab` under torchrun stopped at once."""
    args = ["lab", "adding", "--cell", "gru", "--T", "12", "--hidden-size", "8", "--max-steps", "6", "--batch-size",
            "16", "--eval-every", "3", "--test-size", "100", "--quiet"]
    for processes in (1, 2):
        done = _cli([*args, "--out", str(tmp_path / str(processes))], processes)
        assert done.returncode == 0, done.stderr[-2000:]
    single, double = (json.loads((tmp_path / str(n) / "result.json").read_text()) for n in (1, 2))
    assert double["value"] == pytest.approx(single["value"], rel=1e-4)
    assert [v for _, v in double["curve"]] == pytest.approx([v for _, v in single["curve"]], rel=1e-4)
