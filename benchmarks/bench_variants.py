"""Speed of the cell variants on their default path, against torch.nn.LSTM measured in the same run.

Each variant has the constructor of ``rk.LSTM``; rows are the layer-normalised LSTM and GRU, the peephole
LSTM, an LSTM with ``proj_size = hidden / 2``, LSTMs with recurrent dropout and with zoneout (both run
on the reference loop while training), and minGRU/minLSTM (a parallel scan over time). Tokens/s =
batch x seq per second for a training step (forward, backward of ``output.sum()``, SGD step) and for
inference (forward under ``no_grad``), the best over interleaved rounds (see bench_layers.py for the
method). Usage::

    python benchmarks/bench_variants.py            # the configurations of bench_layers.py at hidden 64 and 256
    python benchmarks/bench_variants.py --quick    # one configuration, fewer rounds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_layers import Config, seconds, train_step  # noqa: E402  (the same timing as the layer table)

import rnnkit as rk  # noqa: E402

VARIANTS = {
    "torch.nn.LSTM": lambda i, h: torch.nn.LSTM(i, h),
    "rk.LSTM": lambda i, h: rk.LSTM(i, h),
    "LayerNormLSTM": lambda i, h: rk.LayerNormLSTM(i, h),
    "LayerNormGRU": lambda i, h: rk.LayerNormGRU(i, h),
    "PeepholeLSTM": lambda i, h: rk.PeepholeLSTM(i, h),
    "LSTM proj_size=h/2": lambda i, h: rk.LSTM(i, h, proj_size=h // 2),
    "LSTM recurrent_dropout=0.25": lambda i, h: rk.LSTM(i, h, recurrent_dropout=0.25),
    "LSTM zoneout=0.1": lambda i, h: rk.LSTM(i, h, zoneout=0.1),
    "MinGRU": lambda i, h: rk.MinGRU(i, h),
    "MinLSTM": lambda i, h: rk.MinLSTM(i, h),
}
CONFIGS = [Config(64, 32, 100, 64), Config(64, 32, 100, 256), Config(64, 16, 1000, 128)]


def measure(config: Config, rounds: int, min_time: float) -> dict[str, tuple[float, float]]:
    """``{variant: (train tokens/s, inference tokens/s)}``, the best over ``rounds`` interleaved rounds."""
    x = torch.randn(config.steps, config.batch, config.input_size)
    modules = {name: make(config.input_size, config.hidden) for name, make in VARIANTS.items()}
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=1e-4) for name, m in modules.items()}
    best = {name: [0.0, 0.0] for name in modules}
    tokens = config.steps * config.batch
    names = list(modules)
    for round_index in range(rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            module = modules[name].train()
            train = seconds(lambda: train_step(module, x, optimizers[name]), min_time)
            module.eval()
            with torch.no_grad():
                infer = seconds(lambda: module(x), min_time)
            best[name] = [max(best[name][0], tokens / train), max(best[name][1], tokens / infer)]
    return {name: (train, infer) for name, (train, infer) in best.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timing")
    parser.add_argument("--quick", action="store_true", help="one configuration, 2 rounds, 0.2 s per timing")
    args = parser.parse_args(argv)
    configs = CONFIGS[:1] if args.quick else CONFIGS
    rounds, min_time = (2, 0.2) if args.quick else (args.rounds, args.min_time)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ratios against torch.nn.LSTM in the same run\n")
    print("| variant | configuration | train tok/s | infer tok/s |")
    print("|---|---|---|---|")
    for config in configs:
        results = measure(config, rounds, min_time)
        base_train, base_infer = results["torch.nn.LSTM"]
        for name, (train, infer) in results.items():
            print(f"| {name} | {config} | {train:,.0f} ({train / base_train:.2f}x) | "
                  f"{infer:,.0f} ({infer / base_infer:.2f}x) |", flush=True)


if __name__ == "__main__":
    main()
