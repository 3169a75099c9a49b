"""Speed of the cell variants on their default path, against torch.nn.LSTM and against the same variant on
the reference loop, both measured in the same run.

Each variant has the constructor of ``rk.LSTM``; rows are the layer-normalised LSTM and GRU, the peephole
LSTM, an LSTM with ``proj_size = hidden / 2`` (and torch.nn.LSTM with the same projection), LSTMs and
GRUs with recurrent dropout and with zoneout (the fused engine runs them while training), and
minGRU/minLSTM (a parallel scan over time). Tokens/s = batch x seq per second for a training step
(forward, backward of ``output.sum()``, SGD step) and for inference (forward under ``no_grad``), the
best over interleaved rounds (see bench_layers.py for the method). "x ref" is the ratio to the same
variant built with ``backend="reference"`` (rnnkit's readable loop over the cell), "path" the backend
that ``backend="auto"`` picks in training. Usage::

    python benchmarks/bench_variants.py            # the configurations of bench_layers.py at hidden 64 and 256
    python benchmarks/bench_variants.py --targets  # issue 13's: batch 32 x seq 100 at hidden 256 and 512, batch 1 x seq 200
    python benchmarks/bench_variants.py --only zoneout --only dropout   # rows whose name contains a word
    python benchmarks/bench_variants.py --quick    # one configuration, fewer rounds
    python benchmarks/bench_variants.py --memory   # MiB autograd saves per training step, default path vs reference
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_layers import Config, seconds, train_step  # noqa: E402  (the same timing as the layer table)

import rnnkit as rk  # noqa: E402

#: torch.nn baselines (no reference twin).
BASELINES = {
    "torch.nn.LSTM": lambda i, h: torch.nn.LSTM(i, h),
    "torch.nn.LSTM proj_size=h/2": lambda i, h: torch.nn.LSTM(i, h, proj_size=h // 2),
}
#: rnnkit variants: each is also built with backend="reference" for the "x ref" column.
VARIANTS = {
    "rk.LSTM": lambda i, h, **kw: rk.LSTM(i, h, **kw),
    "LayerNormLSTM": lambda i, h, **kw: rk.LayerNormLSTM(i, h, **kw),
    "LayerNormGRU": lambda i, h, **kw: rk.LayerNormGRU(i, h, **kw),
    "PeepholeLSTM": lambda i, h, **kw: rk.PeepholeLSTM(i, h, **kw),
    "LSTM proj_size=h/2": lambda i, h, **kw: rk.LSTM(i, h, proj_size=h // 2, **kw),
    "LSTM recurrent_dropout=0.25": lambda i, h, **kw: rk.LSTM(i, h, recurrent_dropout=0.25, **kw),
    "LSTM zoneout=0.1": lambda i, h, **kw: rk.LSTM(i, h, zoneout=0.1, **kw),
    "GRU recurrent_dropout=0.25": lambda i, h, **kw: rk.GRU(i, h, recurrent_dropout=0.25, **kw),
    "GRU zoneout=0.1": lambda i, h, **kw: rk.GRU(i, h, zoneout=0.1, **kw),
    "MinGRU": lambda i, h, **kw: rk.MinGRU(i, h, **kw),
    "MinLSTM": lambda i, h, **kw: rk.MinLSTM(i, h, **kw),
}
CONFIGS = [Config(64, 32, 100, 64), Config(64, 32, 100, 256), Config(64, 16, 1000, 128)]
TARGET_CONFIGS = [Config(64, 32, 100, 256), Config(64, 32, 100, 512), Config(64, 1, 200, 128)]
REFERENCE = " [reference]"


def build(config: Config, only: list[str]) -> dict[str, torch.nn.Module]:
    """The baselines and the chosen variants, each variant also on the reference loop."""
    modules = {name: make(config.input_size, config.hidden) for name, make in BASELINES.items()}
    for name, make in VARIANTS.items():
        if only and not any(word in name for word in only):
            continue
        modules[name] = make(config.input_size, config.hidden)
        modules[name + REFERENCE] = make(config.input_size, config.hidden, backend="reference")
    return modules


def measure(config: Config, rounds: int, min_time: float, only: list[str]) -> dict[str, tuple[float, float]]:
    """``{variant: (train tokens/s, inference tokens/s)}``, the best over ``rounds`` interleaved rounds."""
    x = torch.randn(config.steps, config.batch, config.input_size)
    modules = build(config, only)
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


def saved_mib(module: torch.nn.Module, x: torch.Tensor) -> float:
    """MiB that autograd keeps for backward in one training forward (parameters and input excluded)."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(x)
    kept = {p.untyped_storage().data_ptr() for p in module.parameters()} | {x.untyped_storage().data_ptr()}
    return sum(n for ptr, n in storages.items() if ptr not in kept) / 2**20


def memory_table(config: Config, only: list[str]) -> None:
    x = torch.randn(config.steps, config.batch, config.input_size)
    print(f"| variant ({config}) | path | saved MiB, default path | saved MiB, reference |")
    print("|---|---|---|---|")
    for name, make in VARIANTS.items():
        if only and not any(word in name for word in only):
            continue
        default, reference = make(config.input_size, config.hidden), make(config.input_size, config.hidden,
                                                                          backend="reference")
        path = rk.backends.select(default.train()).name
        torch.manual_seed(0)
        ours = saved_mib(default, x)
        torch.manual_seed(0)
        theirs = saved_mib(reference.train(), x)
        print(f"| {name} | {path} | {ours:.1f} | {theirs:.1f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timing")
    parser.add_argument("--quick", action="store_true", help="one configuration, 2 rounds, 0.2 s per timing")
    parser.add_argument("--targets", action="store_true", help="issue 13's configurations instead of the default ones")
    parser.add_argument("--only", action="append", default=[], help="only variants whose name contains this word")
    parser.add_argument("--memory", action="store_true", help="saved-for-backward MiB instead of speed (hidden 256)")
    args = parser.parse_args(argv)
    if args.memory:
        memory_table(Config(64, 32, 100, 256), args.only)
        return
    configs = TARGET_CONFIGS if args.targets else CONFIGS
    configs = configs[:1] if args.quick else configs
    rounds, min_time = (2, 0.2) if args.quick else (args.rounds, args.min_time)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ratios against torch.nn.LSTM and against the "
          "same variant on the reference loop, in the same run\n")
    print("| variant | configuration | path | train tok/s | x nn.LSTM | x ref | infer tok/s | x nn.LSTM | x ref |")
    print("|---|---|---|---|---|---|---|---|---|")
    for config in configs:
        results = measure(config, rounds, min_time, args.only)
        modules = build(config, args.only)
        base_train, base_infer = results["torch.nn.LSTM"]
        for name, (train, infer) in results.items():
            if name.endswith(REFERENCE):
                continue
            module = modules[name].train()
            path = rk.backends.select(module).name if isinstance(module, rk.nn.RecurrentLayer) else "torch"
            ref_train, ref_infer = results.get(name + REFERENCE, (float("nan"), float("nan")))
            print(f"| {name} | {config} | {path} | {train:,.0f} | {train / base_train:.2f} | {train / ref_train:.2f} | "
                  f"{infer:,.0f} | {infer / base_infer:.2f} | {infer / ref_infer:.2f} |", flush=True)


if __name__ == "__main__":
    main()
