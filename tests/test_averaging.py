"""The moving average of the weights (``TrainConfig.ema_decay``): its formula, what is evaluated and saved,
and that it neither changes training nor breaks resuming."""

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from rnnkit.data import StreamBatches
from rnnkit.train import CheckpointError, TrainConfig, Trainer, find_checkpoint
from rnnkit.train.averaging import ema_weight

from train_support import TinyLM, token_stream


def regression(n, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 0.3 * torch.randn(
        n, 1, generator=generator, dtype=torch.float64)
    return TensorDataset(x, y)


def test_the_first_update_copies_and_later_ones_approach_the_decay():
    assert ema_weight(0.999, 1) == 1.0
    assert ema_weight(0.5, 2) == pytest.approx(0.5 / 0.75)
    assert ema_weight(0.9, 10_000) == pytest.approx(0.1)


def test_the_average_follows_its_formula_and_training_is_untouched():
    decay, steps = 0.9, 30
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).double()
    live = []

    def loss_fn(output, batch):
        if model.training:  # the weights a training step starts from: W_0, ..., W_{steps-1}
            live.append(model.weight.detach().clone())
        return F.mse_loss(output, batch["targets"])

    config = TrainConfig(max_steps=steps, batch_size=8, optimizer="sgd", lr=0.1, ema_decay=decay, eval_every=1000,
                         tensorboard=False)
    trainer = Trainer(model, regression(64, 0), config=config, loss_fn=loss_fn, progress=False)
    trainer.fit()
    weights = live[1:] + [model.weight.detach().clone()]  # W_1 ... W_steps, one per update of the average
    assert len(weights) == steps
    # the definition, not the recursion the trainer runs: step k weighs decay^(steps - k), normalised
    ages = [decay ** (steps - k) for k in range(1, steps + 1)]
    average = sum(a * w for a, w in zip(ages, weights)) / sum(ages)
    torch.testing.assert_close(trainer.averaged.module.weight, average, rtol=1e-12, atol=1e-12)
    assert not torch.equal(trainer.averaged.module.weight, model.weight)

    torch.manual_seed(0)
    plain = torch.nn.Linear(3, 1).double()
    config.ema_decay = None
    Trainer(plain, regression(64, 0), config=config, loss_fn=lambda o, b: F.mse_loss(o, b["targets"]),
            progress=False).fit()
    assert torch.equal(plain.weight, model.weight) and torch.equal(plain.bias, model.bias)


def test_validation_and_checkpoints_hold_the_average_and_the_live_weights_for_resuming(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).double()
    val = regression(32, 1)
    config = TrainConfig(max_steps=20, batch_size=8, optimizer="sgd", lr=0.1, ema_decay=0.8, eval_every=20,
                         checkpoint_every=20, tensorboard=False)
    trainer = Trainer(model, regression(64, 0), config=config, val_data=val,
                      loss_fn=lambda o, b: F.mse_loss(o, b["targets"]), run_dir=tmp_path, progress=False)
    result = trainer.fit()
    average = trainer.averaged.module
    x, y = val.tensors
    with torch.no_grad():
        # (the trainer sums per-batch losses in float32, hence the tolerance)
        assert result["best"] == pytest.approx(F.mse_loss(average(x), y).item(), rel=1e-6)
        assert abs(result["best"] - F.mse_loss(model(x), y).item()) > 1e-3
    saved = find_checkpoint(tmp_path / "checkpoints", "best")
    weights, state = load_file(saved / "model.safetensors"), load_file(saved / "state.safetensors")
    assert torch.equal(weights["weight"], average.weight) and torch.equal(weights["bias"], average.bias)
    assert torch.equal(state["training_weights.weight"], model.weight)


def _stream_run(out, max_steps, *, resume=False, ema_decay=0.9):
    torch.manual_seed(0)
    model = TinyLM(dropout=0.3, layers=2)
    data = StreamBatches([token_stream(1500), token_stream(700, seed=1)], batch_size=4, chunk_length=12)
    val = StreamBatches([token_stream(300, seed=2)], batch_size=2, chunk_length=12)
    config = TrainConfig(max_steps=max_steps, checkpoint_every=5, eval_every=5, lr=1e-2, seed=3,
                         ema_decay=ema_decay, tensorboard=False)
    trainer = Trainer(model, data, config=config, val_data=val, run_dir=out, progress=False)
    trainer.fit(resume=resume)
    return trainer


def test_a_run_stopped_and_resumed_ends_with_the_same_average(tmp_path):
    full = _stream_run(tmp_path / "full", 17)
    _stream_run(tmp_path / "part", 8)
    resumed = _stream_run(tmp_path / "part", 17, resume=True)
    for mine, theirs in ((full.model, resumed.model), (full.averaged.module, resumed.averaged.module)):
        for (name, a), (_, b) in zip(mine.state_dict().items(), theirs.state_dict().items()):
            assert torch.equal(a, b), name
    assert int(resumed.averaged.n_averaged) == 17
    assert [r for r in full.history if "val_loss" in r][-1] == [r for r in resumed.history if "val_loss" in r][-1]


def test_resuming_with_another_ema_setting_is_refused(tmp_path):
    _stream_run(tmp_path, 5)
    with pytest.raises(CheckpointError, match="trained with ema_decay 0.9; resume with the same setting"):
        _stream_run(tmp_path, 10, resume=True, ema_decay=None)
    with pytest.raises(CheckpointError, match="ema_decay 0.9; .*an average with that decay"):  # was accepted
        _stream_run(tmp_path, 10, resume=True, ema_decay=0.99)


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5, -0.1])
def test_a_decay_outside_0_1_is_refused(decay):
    with pytest.raises(ValueError, match="ema_decay must be between 0 and 1"):
        TrainConfig(ema_decay=decay)
