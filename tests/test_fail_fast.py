"""Fail before training, not after: options whose validity is known up front are checked before any data
is read or any file is written, each with one line; and a full disk during a checkpoint loses nothing."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from rnnkit.apps import lifecycle
from rnnkit.cli.main import main
from rnnkit.train import TrainConfig, Trainer
from rnnkit.train import checkpoint


@pytest.fixture
def no_data_reading(monkeypatch):
    """Fail the test if any app starts reading its data."""

    def prepare(self, *args, **kwargs):
        raise AssertionError(f"{self.name} read its data before refusing the options")

    monkeypatch.setattr(lifecycle.App, "prepare", prepare)
    for module in ("textgen", "classify", "forecast", "translate", "lab"):
        app = __import__(f"rnnkit.apps.{module}", fromlist=["APP"]).APP
        monkeypatch.setattr(type(app), "prepare", prepare)


TRAIN = {
    "textgen": ["textgen", "train"],
    "classify": ["classify", "train"],
    "forecast": ["forecast", "train"],
    "translate": ["translate", "train"],
    "lab": ["lab", "adding"],
}


@pytest.mark.parametrize("app", sorted(TRAIN))
def test_an_unknown_monitor_metric_is_refused_before_any_work(app, tmp_path, cli_error, no_data_reading):
    err = cli_error([*TRAIN[app], "--out", str(tmp_path / "run"), "--monitor", "val_acuracy"])
    assert "unknown --monitor 'val_acuracy'" in err and "val_loss" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device, message", [
    ("nonsense", "unknown --device 'nonsense'"),
    pytest.param("cuda", "no CUDA GPU", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")),
])
def test_a_device_this_machine_lacks_is_refused_and_leaves_no_run_directory(device, message, tmp_path, cli_error,
                                                                          no_data_reading):
    err = cli_error(["textgen", "train", "--out", str(tmp_path / "run"), "--device", device])
    assert message in err
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file_is_refused(tmp_path, cli_error, no_data_reading):
    (tmp_path / "taken").write_text("mine")
    assert "is a file" in cli_error(["classify", "train", "--out", str(tmp_path / "taken")])
    assert (tmp_path / "taken").read_text() == "mine"


def test_model_options_reach_every_app_with_one_name(capsys):
    for argv in TRAIN.values():
        if argv[0] == "lab":
            continue
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = capsys.readouterr().out
        for flag in ("--cell", "--hidden-size", "--num-layers", "--backend", "--bidirectional", "--dropout"):
            assert flag in text, (argv[0], flag)


def test_an_unregistered_cell_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["forecast", "train", "--out", str(tmp_path / "run"), "--cell", "lstn"])
    assert exit.value.code == 2 and "invalid choice: 'lstn'" in capsys.readouterr().err


def test_a_bidirectional_language_model_is_refused(tmp_path, cli_error):
    assert "drop --bidirectional" in cli_error(["textgen", "train", "--out", str(tmp_path / "r"), "--bidirectional"])


@pytest.mark.parametrize("temperature", ["nan", "-1", "inf"])
def test_a_temperature_that_is_not_a_number_at_least_zero_is_refused(temperature, tmp_path, cli_error):
    lifecycle_run = tmp_path / "run"
    err = cli_error(["textgen", "sample", "--run", str(lifecycle_run), "--temperature", temperature])
    assert "--temperature must be a number >= 0" in err


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    data = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(3)]
    mse = lambda output, batch: torch.nn.functional.mse_loss(output, batch["targets"])  # noqa: E731
    config = TrainConfig(max_steps=4, checkpoint_every=2, eval_every=100)
    trainer = Trainer(torch.nn.Linear(3, 1), data, config=config, loss_fn=mse, run_dir=tmp_path, progress=False)
    real_save = checkpoint.save_file

    def save_file(tensors, path, *args, **kwargs):
        if "step-00000004" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    with pytest.raises(checkpoint.CheckpointError, match="nothing is lost.*--resume"):
        trainer.fit()
    latest = json.loads((tmp_path / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 2 and checkpoint.load_checkpoint(tmp_path / "checkpoints" / latest["checkpoint"])
    assert not any(p.name.startswith(".") for p in (tmp_path / "checkpoints").iterdir())  # no half-written folder


def test_eval_batches_limits_the_extra_validation_metrics_as_it_limits_val_loss():
    seen = []

    def metrics(model, batches):
        seen.append(len(list(batches)))
        return {"batches": float(seen[-1])}

    data = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(5)]
    mse = lambda output, batch: torch.nn.functional.mse_loss(output, batch["targets"])  # noqa: E731
    trainer = Trainer(torch.nn.Linear(3, 1), data, config=TrainConfig(max_steps=1, eval_batches=2), val_data=data,
                      loss_fn=mse, metrics_fn=metrics, progress=False)
    assert trainer.evaluate(max_batches=2)["val_batches"] == 2.0 and seen == [2]


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """`rnnkit ... | head`: the closed pipe is no error worth a traceback; the shell's SIGPIPE status comes back."""
    import subprocess
    import sys

    script = ("import rnnkit.cli.datasets as d; from rnnkit.cli.main import main\n"
              "d.run_list = lambda args: print('x' * 100 + '\\n') or [print('y' * 100) for _ in range(20000)]\n"
              "raise SystemExit(main(['datasets']))\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().startswith(b"x")
    process.stdout.close()
    assert process.wait(timeout=60) == 141
    assert process.stderr.read() == b""
