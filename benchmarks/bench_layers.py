"""Speed and memory of rnnkit's layers against torch.nn, measured interleaved in the same run.

For RNN (tanh), LSTM and GRU and each configuration, three implementations run on the same weights:
``torch.nn`` (the reference for every ratio), rnnkit's default path (``backend="auto"``) and rnnkit's
readable reference loop (``backend="reference"``). Reported per implementation:

* train: tokens/s of one training step (forward, backward of ``output.sum()``, SGD step);
* infer: tokens/s of a forward pass under ``torch.no_grad()``;
* saved MiB: bytes autograd keeps for backward during a training step (unique storages, parameters
  and input excluded) -- the part of peak training memory that depends on the implementation.

Each timing is the median over rounds; within a round the implementations alternate, in an order
that rotates from round to round, so background load and allocator state hit all of them alike. Usage::

    python benchmarks/bench_layers.py            # full table (about 5 minutes on 2 cores)
    python benchmarks/bench_layers.py --quick    # fewer rounds, for a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

import torch

import rnnkit as rk

CELLS = {"RNN": (torch.nn.RNN, rk.RNN), "LSTM": (torch.nn.LSTM, rk.LSTM), "GRU": (torch.nn.GRU, rk.GRU)}
IMPLEMENTATIONS = ("torch.nn", "rnnkit", "reference")


@dataclass(frozen=True)
class Config:
    input_size: int
    batch: int
    steps: int
    hidden: int

    def __str__(self) -> str:
        return f"in {self.input_size}, batch {self.batch}, seq {self.steps}, hidden {self.hidden}"


CONFIGS = [
    Config(64, 32, 100, 64),
    Config(64, 32, 100, 256),
    Config(64, 32, 100, 512),
    Config(64, 1, 200, 128),
    Config(64, 16, 1000, 128),
]


def build(cell: str, config: Config) -> dict[str, torch.nn.Module]:
    torch_cls, ours_cls = CELLS[cell]
    oracle = torch_cls(config.input_size, config.hidden)
    modules = {"torch.nn": oracle}
    for name, backend in (("rnnkit", "auto"), ("reference", "reference")):
        module = ours_cls(config.input_size, config.hidden, backend=backend)
        module.load_state_dict(oracle.state_dict())
        modules[name] = module
    return modules


def train_step(module: torch.nn.Module, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    output, _ = module(x)
    output.sum().backward()
    optimizer.step()


def seconds(fn, min_time: float) -> float:
    """Mean seconds per call of ``fn`` over at least ``min_time`` seconds."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def saved_mib(module: torch.nn.Module, x: torch.Tensor) -> float:
    """MiB that autograd saves for backward in one forward pass (parameters and input excluded)."""
    excluded = {p.untyped_storage().data_ptr() for p in module.parameters()} | {x.untyped_storage().data_ptr()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output, _ = module(x)
    del output
    return sum(storages.values()) / 2**20


def measure(cell: str, config: Config, rounds: int, min_time: float) -> dict[str, dict[str, float]]:
    modules = build(cell, config)
    x = torch.randn(config.steps, config.batch, config.input_size)
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=1e-4) for name, m in modules.items()}
    tokens = config.batch * config.steps
    train = {name: [] for name in modules}
    infer = {name: [] for name in modules}
    for name, module in modules.items():  # warm-up: first-call allocations and kernel selection
        train_step(module, x, optimizers[name])
    names = list(modules)
    for round_index in range(rounds):
        # Rotate the order each round so no implementation always runs first (or right after another).
        for name in names[round_index % 3 :] + names[: round_index % 3]:
            module = modules[name]
            train[name].append(seconds(lambda: train_step(module, x, optimizers[name]), min_time))
            with torch.no_grad():
                infer[name].append(seconds(lambda: module(x), min_time / 2))
    return {
        name: {
            "train": tokens / statistics.median(train[name]),
            "infer": tokens / statistics.median(infer[name]),
            "saved": saved_mib(modules[name], x),
        }
        for name in modules
    }


def format_table(rows: list[tuple[str, Config, dict]]) -> str:
    header = (
        "| cell | configuration | torch.nn train tok/s | rnnkit train | reference train "
        "| torch.nn infer tok/s | rnnkit infer | reference infer | saved MiB torch.nn / rnnkit / reference |"
    )
    lines = [header, "|" + "---|" * 9]
    for cell, config, result in rows:
        base = result["torch.nn"]
        cells = [cell, str(config)]
        for metric in ("train", "infer"):
            cells.append(f"{base[metric]:,.0f}")
            for name in ("rnnkit", "reference"):
                cells.append(f"{result[name][metric]:,.0f} ({result[name][metric] / base[metric]:.2f}x)")
        cells.append(" / ".join(f"{result[name]['saved']:.1f}" for name in IMPLEMENTATIONS))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round of short timings")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per configuration")
    parser.add_argument("--min-time", type=float, default=0.25, help="seconds per timing")
    args = parser.parse_args(argv)
    rounds, min_time = (1, 0.05) if args.quick else (args.rounds, args.min_time)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU; "
          f"ratios are against torch.nn in the same run", file=sys.stderr)
    rows = []
    for cell in args.cells:
        for config in CONFIGS:
            result = measure(cell, config, rounds, min_time)
            rows.append((cell, config, result))
            print(f"  {cell} {config}: rnnkit train {result['rnnkit']['train'] / result['torch.nn']['train']:.2f}x, "
                  f"reference {result['reference']['train'] / result['torch.nn']['train']:.2f}x", file=sys.stderr)
    print(format_table(rows))


if __name__ == "__main__":
    main()
