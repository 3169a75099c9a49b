"""The demo really learns: a short run on the adding problem ends far below the memoryless baseline."""

import pytest
import torch

from rnnkit.datasets import ADDING_BASELINE_MSE, adding_problem
from rnnkit.demo import main


def test_adding_problem_targets_are_the_sum_of_the_two_marked_values():
    x, y = adding_problem(64, 12, generator=torch.Generator().manual_seed(3))
    assert torch.all(x[..., 1].sum(dim=1) == 2)
    assert torch.all(x[:, :6, 1].sum(dim=1) == 1)  # one marker in each half
    torch.testing.assert_close(y[:, 0], (x[..., 0] * x[..., 1]).sum(dim=1))


@pytest.mark.slow
def test_demo_loss_falls_below_the_baseline(capsys):
    final = main(["--steps", "10", "--hidden", "32", "--iterations", "300"])
    assert final < 0.2 * ADDING_BASELINE_MSE
    assert "below the baseline" in capsys.readouterr().out
