"""Speed and memory of rnnkit's layers against torch.nn, measured interleaved in the same run.

For RNN (tanh), LSTM and GRU and each configuration, three implementations run on the same weights:
``torch.nn`` (the reference for every ratio), rnnkit's default path (``backend="auto"``: the fused
engine for GRU and RNN on CPU, torch's kernels otherwise) and rnnkit's readable reference loop
(``backend="reference"``). Reported per implementation:

* train: tokens/s of one training step (forward, backward of ``output.sum()``, SGD step);
* infer: tokens/s of a forward pass under ``torch.no_grad()``;
* floor: rnnkit's speed relative to the GEMM-only floor of the same cell, i.e. only the matrix
  multiplies its math needs (input projection, one recurrent GEMM per step; for training also one
  per step backwards and the weight and input gradient GEMMs), called from Python;
* saved MiB: bytes autograd keeps for backward during a training step (unique storages, parameters
  and input excluded);
* peak MiB: the rise of the process's peak resident memory over its first training step, each
  implementation in a fresh subprocess, so no memory is reused from earlier steps (Linux only;
  ``--no-peak`` skips it).

Each timing is the best (minimum) over rounds, the least noisy estimate on a shared machine; within a
round the implementations alternate, in an order that rotates from round to round, so background
load and allocator state hit all of them alike. Usage::

    python benchmarks/bench_layers.py            # full table (about 5 minutes on 2 cores)
    python benchmarks/bench_layers.py --quick    # fewer rounds, for a smoke run
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import rnnkit as rk

CELLS = {"RNN": (torch.nn.RNN, rk.RNN), "LSTM": (torch.nn.LSTM, rk.LSTM), "GRU": (torch.nn.GRU, rk.GRU)}
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
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


def build(cell: str, config: Config, only: str | None = None) -> dict[str, torch.nn.Module]:
    torch_cls, ours_cls = CELLS[cell]
    oracle = torch_cls(config.input_size, config.hidden)
    modules = {"torch.nn": oracle}
    for name, backend in (("rnnkit", "auto"), ("reference", "reference")):
        module = ours_cls(config.input_size, config.hidden, backend=backend)
        module.load_state_dict(oracle.state_dict())
        modules[name] = module
    return modules if only is None else {only: modules[only]}


def gemm_floor(cell: str, config: Config) -> dict[str, callable]:
    """Only the GEMMs of a cell's forward (and backward) pass, each called from Python."""
    T, B, I, H = config.steps, config.batch, config.input_size, config.hidden
    G = GATES[cell] * H
    x, w_ih, w_hh, bias = torch.randn(T * B, I), torch.randn(G, I), torch.randn(G, H), torch.randn(G)
    h, gates, dh = torch.randn(B, H), torch.empty(B, G), torch.empty(B, H)
    d_gates, outputs = torch.randn(T, B, G), torch.randn(T * B, H)

    def infer():
        torch.addmm(bias, x, w_ih.t())
        for _ in range(T):
            torch.addmm(bias, h, w_hh.t(), out=gates)

    def train():
        infer()
        for t in range(T):
            torch.addmm(h, d_gates[t], w_hh, out=dh)
        flat = d_gates.view(T * B, G)
        torch.mm(flat.t(), outputs), torch.mm(flat, w_ih), torch.mm(flat.t(), x)

    return {"train": train, "infer": infer}


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
    floor = gemm_floor(cell, config)
    tokens = config.batch * config.steps
    train = {name: [] for name in (*modules, "floor")}
    infer = {name: [] for name in (*modules, "floor")}
    for name, module in modules.items():  # warm-up: first-call allocations, kernel selection, engine build
        train_step(module, x, optimizers[name])
    names = [*modules, "floor"]
    for round_index in range(rounds):
        # Rotate the order each round so no implementation always runs first (or right after another).
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            if name == "floor":
                train[name].append(seconds(floor["train"], min_time))
                infer[name].append(seconds(floor["infer"], min_time / 2))
                continue
            module = modules[name]
            train[name].append(seconds(lambda: train_step(module, x, optimizers[name]), min_time))
            with torch.no_grad():
                infer[name].append(seconds(lambda: module(x), min_time / 2))
    result = {
        name: {"train": tokens / min(train[name]), "infer": tokens / min(infer[name])}
        for name in names
    }
    for name, module in modules.items():
        result[name]["saved"] = saved_mib(module, x)
    return result


def peak_child(cell: str, name: str, config: Config) -> None:
    """Run in a fresh process: print the rise of peak RSS (MiB) over the first training step."""
    from rnnkit import engine

    engine.implementation()  # load (or build) the compiled engine before measuring
    module = build(cell, config, only=name)[name]
    x = torch.randn(config.steps, config.batch, config.input_size)
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-4)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark
    before = _status_kib("VmRSS")
    train_step(module, x, optimizer)
    print((_status_kib("VmHWM") - before) / 1024)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_mib(cell: str, name: str, config: Config) -> float:
    args = [sys.executable, __file__, "--peak-child", cell, name,
            *map(str, (config.input_size, config.batch, config.steps, config.hidden))]
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600)
        return float(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return float("nan")


def format_table(rows: list[tuple[str, Config, dict]]) -> str:
    header = (
        "| cell | configuration | torch.nn train tok/s | rnnkit train | reference train | rnnkit / floor "
        "| torch.nn infer tok/s | rnnkit infer | reference infer | rnnkit / floor "
        "| saved MiB torch.nn / rnnkit / reference | peak MiB torch.nn / rnnkit / reference |"
    )
    lines = [header, "|" + "---|" * 12]
    for cell, config, result in rows:
        base = result["torch.nn"]
        cells = [cell, str(config)]
        for metric in ("train", "infer"):
            cells.append(f"{base[metric]:,.0f}")
            for name in ("rnnkit", "reference"):
                cells.append(f"{result[name][metric]:,.0f} ({result[name][metric] / base[metric]:.2f}x)")
            cells.append(f"{result['rnnkit'][metric] / result['floor'][metric]:.2f}")
        for key in ("saved", "peak"):
            cells.append(" / ".join(f"{result[name].get(key, float('nan')):.1f}" for name in IMPLEMENTATIONS))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round of short timings")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per configuration")
    parser.add_argument("--min-time", type=float, default=0.25, help="seconds per timing")
    parser.add_argument("--no-peak", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--peak-child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        cell, name, *sizes = args.peak_child
        peak_child(cell, name, Config(*map(int, sizes)))
        return
    rounds, min_time = (1, 0.05) if args.quick else (args.rounds, args.min_time)
    measure_peak = not args.no_peak and Path("/proc/self/clear_refs").exists()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU; "
          f"ratios are against torch.nn in the same run", file=sys.stderr)
    rows = []
    for cell in args.cells:
        for config in CONFIGS:
            result = measure(cell, config, rounds, min_time)
            if measure_peak:
                for name in IMPLEMENTATIONS:
                    result[name]["peak"] = peak_mib(cell, name, config)
            rows.append((cell, config, result))
            ratio = {name: result[name]["train"] / result["torch.nn"]["train"] for name in ("rnnkit", "reference")}
            print(f"  {cell} {config}: rnnkit train {ratio['rnnkit']:.2f}x, reference {ratio['reference']:.2f}x, "
                  f"rnnkit/floor {result['rnnkit']['train'] / result['floor']['train']:.2f}", file=sys.stderr)
    print(format_table(rows))


if __name__ == "__main__":
    main()
