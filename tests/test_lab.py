"""The gradient lab: task baselines, a fast configuration that learns, the sweep's outputs, the CLI."""

import dataclasses
import json
import math

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.datasets.synthetic import (
    ADDING_BASELINE_MSE, ORDER_BASELINE_ACCURACY, adding_problem, copy_memory, copy_memory_baseline, temporal_order,
)
from rnnkit.apps.lab import LabConfig, run_lab, run_sweep
from rnnkit.train import TrainConfig


def test_adding_baseline_is_the_variance_of_the_target():
    _, y = adding_problem(40_000, 30, generator=torch.Generator().manual_seed(0))
    assert float(((y - 1.0) ** 2).mean()) == pytest.approx(ADDING_BASELINE_MSE, rel=0.03)


@pytest.mark.parametrize("steps", [10, 100])
def test_copy_baseline_equals_the_best_memoryless_predictor(steps):
    generator = torch.Generator().manual_seed(0)
    x, y = copy_memory(4000, steps, generator=generator)
    assert x.shape == (4000, steps + 20) and bool((x[:, steps + 9] == 9).all())
    assert bool((y[:, -10:] == x[:, :10]).all()) and bool((y[:, :-10] == 0).all())
    # Per-position target frequencies: the best a model without memory can do; scored on fresh data.
    counts = torch.stack([torch.bincount(y[:, t], minlength=9) for t in range(y.shape[1])]).double() + 1e-9
    log_probs = (counts / counts.sum(1, keepdim=True)).log()
    _, fresh = copy_memory(4000, steps, generator=generator)
    empirical = -log_probs.gather(1, fresh.T).mean()
    assert float(empirical) == pytest.approx(copy_memory_baseline(steps), rel=0.02)
    assert copy_memory_baseline(100) == pytest.approx(10 * math.log(8) / 120)


def test_temporal_order_classes_and_positions():
    x, y = temporal_order(8000, 100, generator=torch.Generator().manual_seed(0))
    symbols = x.argmax(-1)
    relevant = symbols >= 4
    assert bool((relevant.sum(1) == 2).all())
    first = relevant[:, :50].float().argmax(1)
    second = relevant[:, 50:].float().argmax(1) + 50
    assert bool(((first >= 10) & (first < 20)).all()) and bool(((second >= 50) & (second < 60)).all())
    rows = torch.arange(8000)
    assert torch.equal(y, 2 * (symbols[rows, first] - 4) + (symbols[rows, second] - 4))
    assert float(torch.bincount(y).max()) / 8000 == pytest.approx(ORDER_BASELINE_ACCURACY, abs=0.02)


@pytest.mark.slow
def test_lstm_beats_the_adding_baseline_by_a_wide_margin(tmp_path):
    torch.manual_seed(0)
    config = LabConfig(task="adding", cell="lstm", T=20, hidden_size=32, test_size=500)
    train = TrainConfig(max_steps=500, batch_size=64, lr=1e-2, eval_every=250, checkpoint_every=500)
    result = run_lab(config, train, tmp_path, progress=False)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert {"task", "cell", "T", "metric", "value", "baseline"} <= saved.keys()
    assert saved["metric"] == "mse" and saved["value"] < 0.1 * ADDING_BASELINE_MSE
    assert result["verdict"] == "far below the baseline"
    flow = saved["gradient_flow"]
    assert len(flow["init"]["steps"]["encoder.rnn.l0"]) == 20 and flow["trained"] is not None
    assert (tmp_path / "gradient_flow.png").exists() and (tmp_path / "curves.png").exists()


@pytest.mark.slow
def test_sweep_writes_its_table_and_plots_and_resumes(tmp_path, capsys):
    grid = [(LabConfig(task="adding", cell=cell, T=12, hidden_size=8, test_size=100), clip)
            for cell in ("rnn", "gru") for clip in (1.0, None)]
    grid.append((LabConfig(task="order", cell="irnn", T=12, hidden_size=8, test_size=100), 1.0))
    train = TrainConfig(max_steps=6, batch_size=16, eval_every=3, checkpoint_every=6)
    results = run_sweep(grid, train, tmp_path, progress=False)
    assert len(results) == 5
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("task,cell,T,clip_norm")
    table = (tmp_path / "results.md").read_text()
    assert "| adding | gru | 12 | off |" in table and "| order | irnn | 12 | 1 | identity |" in table
    for png in ("curves-adding-T12.png", "gradient-flow-adding-T12.png", "curves-order-T12.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    stamp = (tmp_path / "adding-rnn-T12-clip1" / "result.json").stat().st_mtime_ns
    run_sweep(grid, train, tmp_path, resume=True, progress=False)
    assert (tmp_path / "adding-rnn-T12-clip1" / "result.json").stat().st_mtime_ns == stamp
    # another sweep into the same folder reused these runs under its own settings, without a word
    from rnnkit.errors import InputError

    with pytest.raises(InputError, match="already holds a sweep; pass --resume"):
        run_sweep(grid, train, tmp_path, progress=False)
    with pytest.raises(InputError, match="with its own training settings max_steps"):
        run_sweep(grid, dataclasses.replace(train, max_steps=12), tmp_path, resume=True, progress=False)
    with pytest.raises(InputError, match="with its own grid"):
        run_sweep(grid[:2], train, tmp_path, resume=True, progress=False)


@pytest.mark.slow
def test_cli_runs_one_configuration_and_rejects_bad_input(tmp_path, capsys):
    code = main(["lab", "order", "--cell", "gru", "--T", "12", "--hidden-size", "8", "--max-steps", "5",
                 "--test-size", "50", "--out", str(tmp_path / "run"), "--quiet", "--clip", "none"])
    out = capsys.readouterr().out
    assert code == 0 and "gru on order T=12: accuracy" in out and "baseline 0.25" in out
    assert json.loads((tmp_path / "run" / "result.json").read_text())["clip_norm"] is None
    code = main(["lab", "order", "--T", "5", "--out", str(tmp_path / "bad"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "rnnkit lab: error: --T must be >= 10 for the order task, got 5"


@pytest.mark.slow
def test_cli_protects_runs_and_refuses_resume_from_nothing(tmp_path, capsys):
    args = ["lab", "order", "--T", "12", "--hidden-size", "8", "--max-steps", "3", "--test-size", "20", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "holds no lab run to continue" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "run"), "--resume", "--max-steps", "5"]) == 0


@pytest.mark.slow
def test_the_sweep_compares_any_registered_cells(tmp_path, capsys):
    code = main(["lab", "sweep", "--out", str(tmp_path), "--lengths", "10", "--hidden-size", "4", "--cells", "gru",
                 "ln_lstm", "min_gru", "--max-steps", "2", "--eval-every", "2", "--quiet"])
    assert code == 0
    table = (tmp_path / "results.md").read_text()
    for cell in ("gru", "ln_lstm", "min_gru"):
        assert f"| adding | {cell} | 10 |" in table
    assert "| adding | lstm |" not in table


@pytest.mark.parametrize("value, lower_is_better, base, expected", [
    (0.0100, True, 0.1667, "far below the baseline"), (0.10, True, 0.1667, "below the baseline"),
    (0.17, True, 0.1667, "at the baseline"), (0.97, True, 0.1667, "above the baseline (worse than knowing nothing)"),
    (1.0, False, 0.25, "solved (>= 99% correct)"), (0.5, False, 0.25, "above chance"),
    (0.26, False, 0.25, "at chance"), (0.10, False, 0.25, "below chance"),
])
def test_verdicts_cover_worse_than_the_baseline(value, lower_is_better, base, expected):
    """An MSE 5.8 times the memoryless baseline was called 'at the baseline'."""
    from rnnkit.apps.lab import verdict

    assert verdict({"value": value, "baseline": base, "lower_is_better": lower_is_better,
                    "diverged": False}) == expected


def test_a_diverged_result_reads_back_as_diverged_from_strict_json(tmp_path):
    """result.json holds null where a diverged run has NaN (strict JSON); a resumed sweep reads it back as NaN,
    so its table still says "diverged", not "off" (the word for a missing clip)."""
    import math

    from rnnkit._files import write_json_atomic
    from rnnkit.apps.lab import _read_result, write_table

    result = {"task": "adding", "cell": "rnn", "T": 12, "clip_norm": None, "init": "default", "recurrent_scale": 4.0,
              "metric": "mse", "value": math.nan, "baseline": 0.167, "verdict": "diverged",
              "max_grad_norm": math.inf, "skipped_steps": 2, "steps": 6, "seconds": 1.0, "diverged": 5,
              "curve": [[3, 0.5], [6, math.nan]], "grad_norms": [[1, 2.0], [5, math.inf]],
              "gradient_flow": {"init": {"steps": {"l0": [1.0, math.inf]}}, "trained": None}}
    write_json_atomic(tmp_path / "result.json", result, strict=True)
    assert "NaN" not in (tmp_path / "result.json").read_text() and "Infinity" not in (tmp_path / "result.json").read_text()
    back = _read_result(tmp_path / "result.json")
    assert math.isnan(back["value"]) and math.isnan(back["max_grad_norm"]) and back["clip_norm"] is None
    assert math.isnan(back["curve"][1][1]) and math.isnan(back["grad_norms"][1][1]) and back["diverged"] == 5
    assert math.isnan(back["gradient_flow"]["init"]["steps"]["l0"][1]) and back["gradient_flow"]["trained"] is None
    write_table([back], tmp_path)
    assert "| adding | rnn | 12 | off | default | 4 | mse | diverged |" in (tmp_path / "results.md").read_text()


def test_a_folder_holding_a_trainer_run_is_not_trained_into(tmp_path):
    """A plain Trainer run has no app.json; an app trained into its folder mixed the two runs' checkpoints and
    replaced its metrics.jsonl."""
    from rnnkit.errors import InputError

    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(InputError, match="holds another training run's checkpoints; choose another --out"):
        run_lab(LabConfig(task="adding", cell="gru", T=12, hidden_size=8, test_size=20),
                TrainConfig(max_steps=2, batch_size=8), tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]
