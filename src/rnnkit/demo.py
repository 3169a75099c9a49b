"""Demo: an LSTM learns the adding problem, printing its loss as it falls below the memoryless baseline.

Run with ``python -m rnnkit.demo`` (``make demo``). Takes about 10 s of training on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import rnnkit as rk
from rnnkit.datasets import ADDING_BASELINE_MSE, adding_problem


class AddingModel(nn.Module):
    """Many-to-one: an rnnkit LSTM reads the sequence, a linear head reads its last hidden state."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.rnn = rk.LSTM(2, hidden_size, batch_first=True, forget_bias=1.0)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.rnn(x)
        return self.head(h_n[-1])


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50, help="sequence length T")
    parser.add_argument("--hidden", type=int, default=64, help="LSTM hidden size")
    parser.add_argument("--iterations", type=int, default=1500, help="training steps")
    parser.add_argument("--batch", type=int, default=64, help="sequences per step")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0, help="controls data and weights")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    data = torch.Generator().manual_seed(args.seed)
    model = AddingModel(args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    test_x, test_y = adding_problem(1000, args.steps, generator=data)
    print(f"adding problem, T={args.steps}: LSTM({args.hidden}); memoryless baseline MSE {ADDING_BASELINE_MSE:.3f}")
    start, test_mse = time.perf_counter(), float("nan")
    for iteration in range(1, args.iterations + 1):
        x, y = adding_problem(args.batch, args.steps, generator=data)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if iteration % 100 == 0 or iteration == 1:
            with torch.no_grad():
                test_mse = nn.functional.mse_loss(model(test_x), test_y).item()
            print(f"step {iteration:5d}  train MSE {loss.item():.4f}  test MSE {test_mse:.4f}"
                  f"  ({time.perf_counter() - start:5.1f} s)", flush=True)
    verdict = "below" if test_mse < ADDING_BASELINE_MSE else "not yet below"
    print(f"final test MSE {test_mse:.4f}, {verdict} the baseline {ADDING_BASELINE_MSE:.3f}")
    return test_mse


if __name__ == "__main__":
    main()
