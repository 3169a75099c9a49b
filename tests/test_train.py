"""The trainer: truncated BPTT, clipping, schedules, non-finite steps, checkpoints, resume, progress."""

import json
import math
import os
import pickle
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from rnnkit.data import StreamBatches
from rnnkit.train import CheckpointError, TrainConfig, Trainer, TrainingDiverged, find_checkpoint, load_checkpoint
from rnnkit.train.optim import lr_factor

from train_support import TinyLM, stream_run, token_stream

HERE = Path(__file__).parent
TINY = 1e-30  # an SGD step this small leaves float32 weights bit-for-bit unchanged


def regression_data(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator)
    return TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]))


def mse(output, batch):
    return F.mse_loss(output, batch["targets"])


class Recorder(TinyLM):
    """TinyLM that remembers the state it was given for each chunk."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def forward(self, inputs, targets=None, *, lengths=None, state=None):
        self.seen.append(None if state is None else tuple(s.clone() for s in state))
        return super().forward(inputs, targets, lengths=lengths, state=state)


def test_truncated_bptt_carries_the_state_of_one_long_forward_pass():
    torch.manual_seed(0)
    text = token_stream(4 * 30 + 1)
    model = Recorder(cell="lstm")
    batches = StreamBatches(text, batch_size=4, chunk_length=6)
    config = TrainConfig(optimizer="sgd", momentum=0.0, lr=TINY, max_steps=len(batches), clip_norm=None)
    Trainer(model, batches, config=config, progress=False).fit()
    lanes = text[:-1].view(4, 30)
    with torch.no_grad():
        full, _ = model.rnn(model.embed(lanes))  # one long forward pass over each lane
        for chunk, state in enumerate(model.seen[1:], start=1):
            h_carried = state[0][0]
            assert torch.allclose(h_carried, full[:, chunk * 6 - 1], atol=1e-6), chunk
            assert not state[0].requires_grad
    assert model.seen[0] is None or all(s.abs().sum() == 0 for s in model.seen[0])


def test_validation_over_streams_equals_one_long_pass():
    torch.manual_seed(0)
    model = TinyLM(cell="gru")
    text = token_stream(2 * 40 + 1)
    trainer = Trainer(model, [], config=TrainConfig(), progress=False)
    carried = trainer.evaluate(StreamBatches(text, batch_size=2, chunk_length=7))["val_loss"]
    with torch.no_grad():
        out = model(text[:-1].view(2, 40), text[1:].view(2, 40))
    assert carried == pytest.approx(float(out.loss), rel=1e-5)


def test_state_resets_at_document_boundaries():
    model = Recorder(cell="gru")
    documents = [token_stream(13, seed=1), token_stream(9, seed=2)]
    batches = StreamBatches(documents, batch_size=1, chunk_length=4)
    assert [bool(b["reset"][0]) for b in batches] == [True, False, False, True, False]
    config = TrainConfig(optimizer="sgd", momentum=0.0, lr=TINY, max_steps=5, clip_norm=None)
    Trainer(model, batches, config=config, progress=False).fit()
    assert model.seen[3][0].abs().sum() == 0 and model.seen[2][0].abs().sum() > 0


def test_clip_norm_bounds_the_update_and_the_pre_clip_norm_is_logged():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    data = regression_data()
    big = lambda output, batch: 100 * mse(output, batch)
    expected = torch.nn.utils.get_total_norm(torch.autograd.grad(
        big(model(data.tensors[0][:16]), {"targets": data.tensors[1][:16]}), list(model.parameters())))
    config = TrainConfig(optimizer="sgd", momentum=0.0, lr=1.0, max_steps=1, clip_norm=0.5, batch_size=64)
    trainer = Trainer(model, [(data.tensors[0][:16], data.tensors[1][:16])], config=config, loss_fn=big,
                      progress=False)
    trainer.fit()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float(expected) > 10
    assert trainer.history[0]["grad_norm"] == pytest.approx(float(expected), rel=1e-5)
    assert float((after - before).norm()) == pytest.approx(0.5, rel=1e-4)


def test_clip_value_bounds_every_element():
    model = torch.nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    data = regression_data()
    config = TrainConfig(optimizer="sgd", momentum=0.0, lr=1.0, max_steps=1, clip_norm=None, clip_value=0.01)
    Trainer(model, [(data.tensors[0], 50 * data.tensors[1])], config=config, loss_fn=mse, progress=False).fit()
    changes = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert changes.abs().max() == pytest.approx(0.01, rel=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_each_optimizer_reduces_the_loss(optimizer):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    lr = {"sgd": 0.05, "adam": 0.05, "adamw": 0.05, "rmsprop": 0.01, "adagrad": 0.3}[optimizer]
    config = TrainConfig(optimizer=optimizer, lr=lr, max_steps=60, batch_size=16, weight_decay=1e-4)
    trainer = Trainer(model, regression_data(), config=config, val_data=regression_data(seed=1), loss_fn=mse,
                      progress=False)
    initial = trainer.evaluate()["val_loss"]
    result = trainer.fit()
    assert result["val_loss"] < 0.2 * initial


def test_warmup_and_schedules_set_the_logged_learning_rate():
    model = torch.nn.Linear(3, 1)
    config = TrainConfig(lr=0.1, warmup_steps=5, schedule="step", step_size=10, lr_decay=0.5, max_steps=30,
                         batch_size=16)
    trainer = Trainer(model, regression_data(), config=config, loss_fn=mse, progress=False)
    trainer.fit()
    lrs = [r["lr"] for r in trainer.history if "lr" in r]
    assert lrs[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert lrs[14] == pytest.approx(0.1) and lrs[15] == pytest.approx(0.05) and lrs[25] == pytest.approx(0.025)
    cosine = TrainConfig(lr=1.0, schedule="cosine", max_steps=10, min_lr=0.1)
    assert lr_factor(0, cosine) == 1.0 and lr_factor(10, cosine) == pytest.approx(0.1)


def test_plateau_decays_and_early_stopping_stops():
    model = torch.nn.Linear(3, 1)
    # Validation targets are pure noise: the metric cannot improve for long.
    noise = TensorDataset(torch.randn(32, 3), torch.randn(32, 1))
    config = TrainConfig(lr=0.01, schedule="plateau", plateau_patience=0, lr_decay=0.5, eval_every=2,
                         max_steps=200, early_stopping_patience=3, batch_size=16)
    trainer = Trainer(model, regression_data(), config=config, val_data=noise, loss_fn=mse, progress=False)
    result = trainer.fit()
    assert result["stopped"].startswith("early stopping") and result["step"] < 200
    assert trainer.optimizer.param_groups[0]["lr"] < 0.01


def test_a_run_that_stopped_early_stays_stopped_when_resumed(tmp_path):
    noise = TensorDataset(torch.randn(32, 3), torch.randn(32, 1))
    config = TrainConfig(lr=0.01, eval_every=2, max_steps=200, early_stopping_patience=3, batch_size=16)

    def run():
        torch.manual_seed(0)
        trainer = Trainer(torch.nn.Linear(3, 1), regression_data(), config=config, val_data=noise, loss_fn=mse,
                          run_dir=tmp_path, progress=False)
        return trainer, trainer.fit(resume=True)

    stopped, first = run()
    assert first["stopped"].startswith("early stopping") and first["step"] < 200
    weights = {k: v.clone() for k, v in stopped.model.state_dict().items()}
    records = (tmp_path / "metrics.jsonl").read_text()
    resumed, second = run()
    # Before the fix the resumed run trained eval_every more steps and stopped at the next evaluation.
    assert second["stopped"] == first["stopped"] and resumed.step == first["step"]
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in weights.items())
    assert (tmp_path / "metrics.jsonl").read_text() == records
    longer = TrainConfig(**{**config.to_dict(), "early_stopping_patience": 100, "max_steps": first["step"] + 4})
    trainer = Trainer(torch.nn.Linear(3, 1), regression_data(), config=longer, val_data=noise, loss_fn=mse,
                      run_dir=tmp_path, progress=False)
    assert trainer.fit(resume=True)["step"] == first["step"] + 4  # more patience trains on


def _plateau_run(run_dir, *, interrupt_at=None, max_steps=24):
    """A run whose plateau schedule halves the lr at every evaluation without improvement, so an extra
    evaluation would show in the weights; ``interrupt_at`` presses Ctrl-C during that step."""
    noise = TensorDataset(torch.randn(32, 3, generator=torch.Generator().manual_seed(1)),
                          torch.randn(32, 1, generator=torch.Generator().manual_seed(2)))
    config = TrainConfig(lr=0.05, optimizer="sgd", schedule="plateau", plateau_patience=0, lr_decay=0.5,
                         eval_every=5, checkpoint_every=5, max_steps=max_steps, batch_size=16, warmup_steps=0)
    steps = {"n": 0}

    def loss(output, batch):
        steps["n"] += output.requires_grad  # training steps only, not validation batches
        if output.requires_grad and steps["n"] == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return mse(output, batch)

    torch.manual_seed(0)
    trainer = Trainer(torch.nn.Linear(3, 1), regression_data(), config=config, val_data=noise, loss_fn=loss,
                      run_dir=run_dir, progress=False)
    return trainer, trainer.fit(resume=True)


def _records(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("interrupt_at", [7, 10])
def test_ctrl_c_then_resume_equals_the_uninterrupted_run(tmp_path, interrupt_at):
    straight, _ = _plateau_run(tmp_path / "straight")
    stopped, result = _plateau_run(tmp_path / "cut", interrupt_at=interrupt_at)
    assert result["stopped"] == "interrupted" and stopped.step == interrupt_at
    # no evaluation at the interrupted step: the uninterrupted run makes none there (step 7), or makes it
    # in the loop (step 10)
    assert [r["step"] for r in _records(tmp_path / "cut") if "val_loss" in r] == [5, 10][: interrupt_at // 5]
    resumed, _ = _plateau_run(tmp_path / "cut")
    assert resumed.step == straight.step == 24
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    for name, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert _records(tmp_path / "cut") == _records(tmp_path / "straight")


def test_a_run_killed_after_its_last_evaluation_does_not_evaluate_again(tmp_path):
    """max_steps 24 is not a multiple of eval_every 5: fit ends with an evaluation and a checkpoint at step
    24. A kill after that (say while the app writes its report) resumes to a run with nothing left to do."""
    _plateau_run(tmp_path)
    records = _records(tmp_path)
    assert records[-1]["step"] == 24 and "val_loss" in records[-1]
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    resumed, result = _plateau_run(tmp_path)
    assert _records(tmp_path) == records  # before the fix: a second step-24 evaluation,
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == checkpoints  # and a step-24.2 checkpoint
    assert result["step"] == 24


def test_non_finite_steps_are_skipped_then_the_run_stops(tmp_path):
    model = torch.nn.Linear(3, 1)
    data = regression_data()
    calls = {"n": 0}

    def sometimes_nan(output, batch):
        calls["n"] += 1
        loss = mse(output, batch)
        return loss * math.nan if calls["n"] == 3 or calls["n"] > 6 else loss

    config = TrainConfig(max_steps=50, batch_size=16, checkpoint_every=2, max_nonfinite_steps=4)
    trainer = Trainer(model, data, config=config, loss_fn=sometimes_nan, run_dir=tmp_path, progress=False)
    with pytest.raises(TrainingDiverged, match="4 consecutive steps had a non-finite loss"):
        trainer.fit()
    skipped = [r["step"] for r in trainer.history if r.get("skipped")]
    assert skipped == [3, 7, 8, 9, 10]
    latest = find_checkpoint(tmp_path / "checkpoints")
    weights, _, info = load_checkpoint(latest)
    # a skipped step still counts: its checkpoint (step 8) is written, with the unchanged, finite weights
    assert info["step"] == 8 and info["nonfinite_in_a_row"] == 2 and all(torch.isfinite(w).all() for w in weights.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # skipped steps never touched them
    # the skipped steps' losses are JSON's null in the log (Python's bare NaN is refused by jq and JSON.parse) ...
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    strict = [json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in metrics.jsonl")) for line in lines]
    assert [r["step"] for r in strict if r.get("skipped")] == skipped
    assert all(r["loss"] is None for r in strict if r.get("skipped"))
    # ... and NaN again when rnnkit reads it back (the curves, a resume)
    from rnnkit.train.progress import MetricsLog

    assert all(math.isnan(r["loss"]) for r in MetricsLog(tmp_path / "metrics.jsonl").read() if r.get("skipped"))


def test_run_directory_holds_config_metrics_curves_and_log_lines(tmp_path, capsys):
    torch.manual_seed(0)
    model = TinyLM()
    train = StreamBatches(token_stream(600), batch_size=4, chunk_length=10)
    val = StreamBatches(token_stream(200, seed=5), batch_size=2, chunk_length=10)
    config = TrainConfig(max_steps=20, eval_every=10, log_every=5, lr=1e-2, grad_flow_every=10, seed=7)
    Trainer(model, train, config=config, val_data=val, run_dir=tmp_path, model_config={"name": "tiny"}).fit()
    err = capsys.readouterr().err
    assert "step 5/20 loss" in err and "tok/s" in err and "eta" in err and "val_loss" in err
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["seed"] == 7 and saved["model"] == {"name": "tiny"} and "torch" in saved["versions"]
    assert saved["versions"]["cpu_threads"] == str(torch.get_num_threads())
    assert saved["versions"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # e.g. AVX2, AVX512
    assert saved["versions"]["native_bfloat16"] in ("True", "False")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 21)) and all("grad_norm" in r for r in steps)
    assert [r["step"] for r in records if "val_loss" in r] == [10, 20]
    for png in ("curves.png", "gradient_flow.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    flows = [json.loads(line) for line in (tmp_path / "gradient_flow.jsonl").read_text().splitlines()]
    assert [f["step"] for f in flows] == [10, 20] and len(flows[0]["steps"]["rnn.l0"]) == 10
    assert find_checkpoint(tmp_path / "checkpoints", "best") is not None


def _cpu_runs_bf16_lstm() -> bool:
    """oneDNN's bfloat16 LSTM needs CPU support (AVX-512 BF16 / AMX); torch.nn itself fails without it."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(2, 3)(torch.randn(2, 1, 2))
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists() or platform.machine() not in ("x86_64", "AMD64"),
                    reason="reads the x86 CPU flags from /proc/cpuinfo")
def test_native_bfloat16_agrees_with_the_cpu_flags():
    from rnnkit.train.config import native_bfloat16

    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    assert native_bfloat16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
    if native_bfloat16():  # where the hardware has it, oneDNN's bfloat16 LSTM runs
        assert _cpu_runs_bf16_lstm()


@pytest.mark.skipif(not _cpu_runs_bf16_lstm(), reason="this CPU cannot run torch.nn.LSTM under bfloat16 autocast")
def test_bf16_autocast_trains():
    torch.manual_seed(0)
    for cell in ("gru", "lstm"):
        model = TinyLM(cell=cell, hidden=32)
        data = StreamBatches(token_stream(2000), batch_size=8, chunk_length=20)
        trainer = Trainer(model, data, config=TrainConfig(max_steps=60, lr=2e-2, bf16=True), progress=False)
        trainer.fit()
        losses = [r["loss"] for r in trainer.history]
        assert sum(losses[-5:]) / 5 < 0.8 * losses[0], cell
        assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.skipif(_cpu_runs_bf16_lstm(), reason="this CPU runs torch.nn.LSTM under bfloat16 autocast")
def test_bf16_lstm_on_a_cpu_without_the_kernel_is_one_clear_line():
    """oneDNN without a bfloat16 LSTM failed deep in torch ('could not create a primitive descriptor')."""
    from rnnkit.errors import InputError

    data = StreamBatches(token_stream(200), batch_size=4, chunk_length=10)
    trainer = Trainer(TinyLM(cell="lstm"), data, config=TrainConfig(max_steps=2, bf16=True), progress=False)
    with pytest.raises(InputError, match="no bfloat16 LSTM kernel.*without --bf16"):
        trainer.fit()


# ------------------------------------------------------------------------------ checkpoints


def _script(*args):
    return [sys.executable, str(HERE / "train_support.py"), *map(str, args)]


@pytest.mark.slow
def test_resume_after_sigkill_ends_with_the_same_weights(tmp_path):
    subprocess.run(_script(tmp_path / "whole", "--max-steps", 30), check=True, timeout=120)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_script(killed, "--max-steps", 30, "--sleep", 0.03))
    pointer = killed / "checkpoints" / "latest.json"
    deadline = time.time() + 60
    while not (pointer.exists() and json.loads(pointer.read_text())["step"] >= 10):
        assert time.time() < deadline and process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.005)
    time.sleep(0.05)  # land somewhere inside a later step
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert json.loads(pointer.read_text())["step"] < 30
    subprocess.run(_script(killed, "--max-steps", 30, "--resume"), check=True, timeout=120)
    whole = load_file(tmp_path / "whole" / "checkpoints" / "step-00000030" / "model.safetensors")
    resumed = load_file(killed / "checkpoints" / "step-00000030" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name  # bitwise
    metrics = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert metrics == list(range(1, 31))


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """A finished short run with its checkpoint folder."""
    directory = tmp_path_factory.mktemp("run")
    from train_support import stream_run

    stream_run(str(directory), max_steps=6, checkpoint_every=3)
    return directory / "checkpoints" / "step-00000006"


def _corrupt(tmp_path, checkpoint, name, content):
    copy = tmp_path / "ckpt"
    copy.mkdir()
    for file in checkpoint.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    (copy / name).write_bytes(content(copy / name))
    return copy


def test_truncated_checkpoint_is_refused(tmp_path, checkpointed):
    broken = _corrupt(tmp_path, checkpointed, "model.safetensors", lambda p: p.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="model.safetensors is not a valid safetensors file"):
        load_checkpoint(broken)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_pickle_in_place_of_weights_is_refused_without_running_it(tmp_path, checkpointed):
    _Exploit.marker = tmp_path / "pwned"
    evil = _corrupt(tmp_path, checkpointed, "model.safetensors", lambda p: pickle.dumps(_Exploit()))
    with pytest.raises(CheckpointError, match="never loads pickles"):
        load_checkpoint(evil)
    assert not _Exploit.marker.exists()


def test_damaged_or_foreign_json_is_refused(tmp_path, checkpointed):
    broken = _corrupt(tmp_path, checkpointed, "trainer.json", lambda p: b'{"step": 3')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(broken)
    (broken / "trainer.json").write_text('{"step": 3}')
    with pytest.raises(CheckpointError, match="not an rnnkit checkpoint"):
        load_checkpoint(broken)
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_checkpoint(tmp_path / "nowhere")


def _edit_json(path, edit):
    value = json.loads(path.read_text())
    edit(value)
    path.write_text(json.dumps(value))


def _edit_tensors(path, edit):
    from safetensors.torch import save_file

    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


@pytest.mark.parametrize("file, edit", [
    ("trainer.json", lambda info: info.update(version="2")),
    ("trainer.json", lambda info: info.pop("random")),
    ("trainer.json", lambda info: info.update(step="6")),
    ("trainer.json", lambda info: info.update(schedule="x")),
    ("trainer.json", lambda info: info["optimizer"].update(param_groups=[])),
    ("state.safetensors", lambda tensors: tensors.pop("rank0.rng.torch")),
    ("state.safetensors", lambda tensors: tensors.update({"rank0.rng.torch": torch.zeros(3)})),
    ("state.safetensors", lambda tensors: tensors.update(
        {next(k for k in tensors if k.endswith("exp_avg")): torch.zeros(1)})),
    ("latest.json", lambda pointer: pointer.clear() or pointer.update(checkpoint=None)),
])
def test_a_checkpoint_with_the_wrong_structure_is_refused_in_one_line(tmp_path, checkpointed, file, edit):
    """Valid JSON and safetensors, edited: a CheckpointError naming the checkpoint, never a traceback from
    deep inside the restore (or, for an optimizer moment of the wrong shape, from the first Adam step)."""
    run = tmp_path / "run"
    target = run / "checkpoints" / checkpointed.name
    target.mkdir(parents=True)
    for part in checkpointed.iterdir():
        (target / part.name).write_bytes(part.read_bytes())
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": checkpointed.name}))
    path = run / "checkpoints" / file if file == "latest.json" else target / file
    (_edit_tensors if file.endswith(".safetensors") else _edit_json)(path, edit)
    with pytest.raises(CheckpointError, match="damaged|points at") as error:
        stream_run(str(run), max_steps=8, checkpoint_every=3, resume=True)
    assert "\n" not in str(error.value)


def test_checkpoint_of_another_model_is_refused(tmp_path, checkpointed):
    run = tmp_path / "other"
    (run / "checkpoints").mkdir(parents=True)
    target = run / "checkpoints" / checkpointed.name
    target.mkdir()
    for file in checkpointed.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": checkpointed.name}))
    wider = TinyLM(hidden=24, layers=2)
    data = StreamBatches(token_stream(300), batch_size=2, chunk_length=5)
    trainer = Trainer(wider, data, config=TrainConfig(max_steps=8), run_dir=run, progress=False)
    with pytest.raises(CheckpointError, match=r"different model \(.*shape mismatch .*rnn.weight_hh_l0"):
        trainer.fit(resume=True)


def test_time_limit_stops_cleanly_with_a_checkpoint(tmp_path):
    def slow_mse(output, batch):
        time.sleep(0.02)
        return mse(output, batch)

    config = TrainConfig(max_steps=10_000, max_minutes=0.2 / 60, batch_size=16, checkpoint_every=10_000)
    trainer = Trainer(torch.nn.Linear(3, 1), regression_data(), config=config, loss_fn=slow_mse, run_dir=tmp_path,
                      progress=False)
    result = trainer.fit()
    assert result["stopped"].startswith("time limit") and 3 <= result["step"] < 100
    assert load_checkpoint(find_checkpoint(tmp_path / "checkpoints"))[2]["step"] == result["step"]


def test_a_time_limit_that_will_cut_the_cosine_schedule_short_is_announced_early(capsys):
    def slow_mse(output, batch):
        time.sleep(0.01)
        return mse(output, batch)

    def run(max_steps: int, seconds: float) -> tuple[dict, str]:
        config = TrainConfig(max_steps=max_steps, max_minutes=seconds / 60, batch_size=16, schedule="cosine",
                             log_every=10_000)
        result = Trainer(torch.nn.Linear(3, 1), regression_data(), config=config, loss_fn=slow_mse).fit()
        return result, capsys.readouterr().err

    result, err = run(10_000, 2.0)
    assert result["stopped"].startswith("time limit")
    [note] = [line for line in err.splitlines() if line.startswith("note:")]
    suggested = int(re.search(r"--max-steps (\d+) fits the schedule", note).group(1))
    assert "will stop this run near step" in note and "of 10,000" in note
    assert 0.5 * result["step"] <= suggested <= 1.5 * result["step"]  # the pace measured at 1 s, held to the end

    result, err = run(100, 10.0)  # fits in the time: nothing to say
    assert result["stopped"] == "max_steps" and "note:" not in err


def test_resuming_a_finished_run_keeps_a_valid_checkpoint(tmp_path):
    config = TrainConfig(max_steps=4, batch_size=16, checkpoint_every=2)
    for _ in range(3):
        Trainer(torch.nn.Linear(3, 1), regression_data(), config=config, loss_fn=mse, run_dir=tmp_path,
                progress=False).fit(resume=True)
    latest = find_checkpoint(tmp_path / "checkpoints")
    assert latest.name == "step-00000004" and load_checkpoint(latest)[2]["step"] == 4
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-00000002", "step-00000004"]


def test_progress_eta_respects_the_time_limit():
    from rnnkit.train.progress import Progress, format_duration

    progress = Progress(100_000, enabled=False, time_limit=180)
    progress._start_time -= 10
    progress.step = 10
    assert 165 <= progress.eta() <= 170  # not 100,000 steps at 1 s each
    assert format_duration(3725) == "1h02m" and format_duration(65) == "1m05s"


def test_reading_shows_how_far_it_has_got_and_changes_nothing():
    import io

    from rnnkit.train.progress import reading

    log = io.StringIO()
    assert list(reading(list("abcd"), "evaluating", stream=log, every=0.0)) == list("abcd")
    lines = log.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [f"evaluating: {k}/4 batches" for k in range(1, 5)]
    assert lines[-1].endswith("0s left")
    quiet = io.StringIO()
    assert list(reading(iter("ab"), "evaluating", stream=quiet)) == ["a", "b"] and quiet.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    bar = Terminal()
    assert list(reading(list("abc"), "evaluating", stream=bar)) == list("abc") and "evaluating" in bar.getvalue()


def test_resuming_with_another_batch_size_is_refused(tmp_path):
    data = StreamBatches(token_stream(400), batch_size=4, chunk_length=5)
    Trainer(TinyLM(), data, config=TrainConfig(max_steps=2, batch_size=4), run_dir=tmp_path, progress=False).fit()
    other = StreamBatches(token_stream(400), batch_size=8, chunk_length=5)
    trainer = Trainer(TinyLM(), other, config=TrainConfig(max_steps=4, batch_size=8), run_dir=tmp_path,
                      progress=False)
    with pytest.raises(CheckpointError, match="trained with batch_size 4; resume with the same batch size"):
        trainer.fit(resume=True)


def test_monitor_mode_follows_the_metric_unless_given():
    from rnnkit.cli.common import train_config
    from rnnkit.cli.main import build_parser

    assert TrainConfig().monitor_direction == "min"
    for metric, mode in [("val_accuracy", "max"), ("val_macro_f1", "max"), ("val_bleu", "max"),
                         ("val_line_accuracy", "max"), ("val_wer", "min"), ("val_nats_per_char", "min")]:
        assert TrainConfig(monitor=metric).monitor_direction == mode, metric
    assert TrainConfig(monitor="val_accuracy", monitor_mode="min").monitor_direction == "min"
    # an app whose default monitor is larger-is-better still minimises a loss the user asks for
    parser = build_parser()
    args = parser.parse_args(["classify", "train", "--out", "x", "--monitor", "val_loss"])
    assert train_config(args).monitor_direction == "min"
    args = parser.parse_args(["classify", "train", "--out", "x"])
    assert (train_config(args).monitor, train_config(args).monitor_direction) == ("val_macro_f1", "max")


def test_validation_loss_of_variable_length_float_targets_is_the_mean_over_valid_steps():
    from rnnkit.train.batches import count_targets
    from rnnkit.types import ModelOutput
    from rnnkit.train.evaluate import evaluate_loss

    class FrameLoss(torch.nn.Module):  # squared error per valid frame, averaged over the batch's valid frames
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, inputs, targets, *, lengths):
            mask = torch.arange(inputs.shape[1])[None, :] < lengths[:, None]
            per_frame = ((inputs + self.w - targets) ** 2).sum(-1)
            return ModelOutput(output=per_frame, loss=(per_frame * mask).sum() / mask.sum())

    torch.manual_seed(0)
    batches, frames = [], []
    for lengths in ([5, 1], [1, 1, 1]):
        lengths = torch.tensor(lengths)
        inputs, targets = torch.randn(len(lengths), 5, 3), torch.randn(len(lengths), 5, 3)
        batches.append({"inputs": inputs, "targets": targets, "lengths": lengths})
        frames += [((inputs[i, :n] - targets[i, :n]) ** 2).sum(-1) for i, n in enumerate(lengths.tolist())]
    assert [count_targets(b) for b in batches] == [6, 3]  # frames, not rows (2 and 3)
    expected = float(torch.cat(frames).mean())
    assert evaluate_loss(FrameLoss(), batches) == pytest.approx(expected, rel=1e-6)


def test_plateau_decays_at_its_patience_and_counts_any_gain_as_improvement():
    """The oracle: the rule as documented, written out. Decay at the 2nd evaluation in a row without a strict
    gain (torch's own patience=2 waited for the 3rd), and a gain of 1e-6 relative is a gain (torch's default
    threshold of 1e-4 ignored it, while the trainer marked it best)."""
    for values, expected in [
        ([5.0] * 8, [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]),  # first evaluation is the best so far
        ([5.0 * (1 - 1e-6) ** k for k in range(8)], [1.0] * 8),
    ]:
        feed = iter(values)
        config = TrainConfig(lr=1.0, optimizer="sgd", momentum=0.0, schedule="plateau", plateau_patience=2,
                             lr_decay=0.5, eval_every=1, max_steps=8, batch_size=16, clip_norm=None,
                             monitor="val_score", monitor_mode="min")
        trainer = Trainer(torch.nn.Linear(3, 1), regression_data(), config=config, val_data=regression_data(),
                          loss_fn=mse, metrics_fn=lambda model, data: {"score": next(feed)}, progress=False)
        trainer.fit()
        lrs = [r["lr"] for r in trainer.history if "loss" in r]
        # the lr logged at step k+1 is the one set after the evaluation at step k
        assert lrs[1:] == pytest.approx(expected[:-1]), lrs


@pytest.mark.parametrize("change", [{"lr": 1e-2}, {"weight_decay": 0.5}, {"optimizer": "sgd"}, {"schedule": "step"}])
def test_resuming_with_another_optimizer_or_schedule_is_refused(tmp_path, change):
    """The optimizer's saved state carried the old lr and weight decay back in (while trainer.json recorded
    the new ones), and another optimizer failed at its first step with a bare KeyError."""
    def run(**overrides):
        config = TrainConfig(**{**dict(optimizer="adamw", lr=1e-3, max_steps=4, batch_size=16,
                                       checkpoint_every=2), **overrides})
        torch.manual_seed(0)
        return Trainer(torch.nn.Linear(3, 1), regression_data(), config=config, loss_fn=mse, run_dir=tmp_path,
                       progress=False).fit(resume=True)

    run()
    name = next(iter(change))
    with pytest.raises(CheckpointError, match=f"was trained with {name} .*resume with the same optimizer"):
        run(max_steps=8, **change)
    assert run(max_steps=8)["step"] == 8  # more steps, same optimizer: resumes


def test_a_skipped_last_step_is_still_evaluated_at_the_end(tmp_path):
    """max_steps 4 and eval_every 2, the 4th step non-finite: the final weights were never evaluated."""
    calls = {"n": 0}

    def nan_at_four(output, batch):
        calls["n"] += output.requires_grad
        loss = mse(output, batch)
        return loss * math.nan if output.requires_grad and calls["n"] == 4 else loss

    config = TrainConfig(max_steps=4, eval_every=2, batch_size=16, checkpoint_every=2)
    trainer = Trainer(torch.nn.Linear(3, 1), regression_data(), config=config, val_data=regression_data(),
                      loss_fn=nan_at_four, run_dir=tmp_path, progress=False)
    result = trainer.fit()
    assert [r["step"] for r in _records(tmp_path) if "val_loss" in r] == [2, 4] and "val_loss" in result


def test_a_loss_fn_model_carries_its_state_across_streamed_chunks():
    """With loss_fn the carried state was dropped: every chunk started from zeros. Now the output's .state is
    carried (the oracle: Recorder's inputs equal the states it returned), and an output without one warns."""
    torch.manual_seed(0)
    model = Recorder(cell="gru")
    batches = StreamBatches(token_stream(4 * 30 + 1), batch_size=4, chunk_length=6)
    config = TrainConfig(optimizer="sgd", momentum=0.0, lr=TINY, max_steps=3, clip_norm=None)
    loss = lambda output, batch: F.cross_entropy(output.output.flatten(0, 1), batch["targets"].flatten())  # noqa: E731
    Trainer(model, batches, config=config, loss_fn=loss, progress=False).fit()
    assert model.seen[0] is None and all(s is not None for s in model.seen[1:3])

    class Plain(torch.nn.Module):  # returns bare logits: nothing to carry
        def __init__(self):
            super().__init__()
            self.inner = TinyLM(cell="gru")

        def forward(self, inputs, state=None):
            return self.inner(inputs).output

    plain = lambda output, batch: F.cross_entropy(output.flatten(0, 1), batch["targets"].flatten())  # noqa: E731
    with pytest.warns(UserWarning, match="no .state, so streamed batches start from a zero state"):
        Trainer(Plain(), batches, config=config, loss_fn=plain, progress=False).fit()


def test_saved_files_get_the_permissions_of_plainly_created_ones(tmp_path, checkpointed):
    """safetensors creates its files 0600; a model or checkpoint meant for a colleague must follow the umask."""
    import os
    import stat

    from rnnkit.models import SequenceTagger, SequenceTaggerConfig, save_model

    expected = 0o666 & ~_current_umask()
    for file in checkpointed.iterdir():
        assert stat.S_IMODE(os.stat(file).st_mode) == expected, file.name
    save_model(SequenceTagger(SequenceTaggerConfig(vocab_size=5, output_size=0, hidden_size=4)), tmp_path / "m")
    for file in (tmp_path / "m").iterdir():
        assert stat.S_IMODE(os.stat(file).st_mode) == expected, file.name


def _current_umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_dataloader_resumed_within_an_epoch_gives_the_uninterrupted_batches_and_weights(tmp_path):
    """A DataLoader draws its order (and its workers' seeds) from the global generator when its iterator is made;
    the resumed run made it from the checkpoint's generators, so epoch 0 saw some examples twice and others never,
    and even without shuffling the weights differed (dropout drew other masks)."""
    from torch.utils.data import DataLoader, TensorDataset

    seen: list[list[int]] = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.dropout = torch.nn.Linear(1, 1), torch.nn.Dropout(0.5)

        def forward(self, inputs):
            seen.append(inputs[:, 0].long().tolist())
            return self.linear(self.dropout(inputs))

    def run(directory, steps, resume=False):
        torch.manual_seed(0)
        model = Recorder()
        data = DataLoader(TensorDataset(torch.arange(12.0).view(12, 1), torch.zeros(12, 1)), batch_size=3,
                          shuffle=True)
        config = TrainConfig(max_steps=steps, checkpoint_every=3, eval_every=1000, seed=1, batch_size=3)
        Trainer(model, data, config=config, run_dir=directory, loss_fn=lambda out, b: mse(out, b),
                progress=False).fit(resume=resume)
        return model

    whole = run(tmp_path / "whole", 8)
    uninterrupted, seen[:] = seen[:], []
    run(tmp_path / "split", 3)
    resumed = run(tmp_path / "split", 8, resume=True)
    assert seen == uninterrupted  # 3 + 5 batches: epoch 0's last batch, then epoch 1 and the start of epoch 2
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
