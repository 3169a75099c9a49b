"""Training speed and memory of minGRU's scans against its own sequential loop and torch.nn's LSTM and GRU.

One layer, batch 8, input and hidden 256, float32, at sequence lengths 1,024 / 4,096 / 16,384.
Implementations, all on the same input:

* ``minGRU fused``: ``rk.MinGRU(scan="fused")``, what ``scan="auto"`` runs on CPU (a fused time loop
  in one autograd function, the adjoint loop as backward), in the engine's C++ extension;
* ``minGRU fused, PyTorch``: the same autograd function with its loops in PyTorch ops (one ``lerp``
  per step), what runs when the C++ engine cannot be built;
* ``..., unchunked``: the same with the whole sequence as one chunk (``minimal.FUSED_CHUNK = None``;
  the default cuts time into chunks of 256 steps, which bounds the scan's working memory);
* ``minGRU log``: ``rk.MinGRU(scan="log")``, the chunked log-space parallel scan (what ``"auto"`` runs
  on GPUs);
* ``minGRU sequential``: the same cell stepped by ``rnnkit.loop.recur(..., scan=rnnkit.loop.scan)``
  (the parallel scan bypassed: one autograd step per time step);
* ``nn.LSTM`` and ``nn.GRU``: torch's own layers (oneDNN's fused LSTM; the GRU's native CPU loop);
* ``floor``: minGRU's input projection alone (``Linear(256, 512)``, forward and backward): the work
  every minGRU implementation does before any scan, so ``floor``'s ratio bounds what any scan can
  reach against nn.LSTM on this machine.

Reported per implementation and length:

* train tok/s: tokens (steps x batch) per second of one training step, ``output.sum().backward()``
  with the input requiring grad (a layer inside a network), best (minimum time) over rounds that
  alternate the implementations;
* x LSTM: that speed over nn.LSTM's in the same run;
* peak MiB: the rise of the process's peak resident memory over its first training step, each
  implementation in a fresh subprocess (Linux only; ``--no-peak`` skips it).

Usage::

    python benchmarks/bench_min_scan.py                      # 1,024 / 4,096 / 16,384 steps, 1 thread
    python benchmarks/bench_min_scan.py --steps 1024 4096 --rounds 2 --threads 2
    python benchmarks/bench_min_scan.py --steps 4096 --only "minGRU fused" "minGRU fused, unchunked"
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from pathlib import Path

import torch

import rnnkit as rk
from rnnkit import loop

BATCH, HIDDEN = 8, 256
IMPLEMENTATIONS = ("minGRU fused", "minGRU fused, unchunked", "minGRU fused, PyTorch", "minGRU fused, PyTorch, unchunked",
                   "minGRU log", "minGRU sequential", "nn.LSTM", "nn.GRU", "floor")


def build(name: str):
    """A callable ``x -> output`` for the implementation, with its module."""
    if name == "nn.LSTM":
        module = torch.nn.LSTM(HIDDEN, HIDDEN)
        return module, lambda x: module(x)[0]
    if name == "nn.GRU":
        module = torch.nn.GRU(HIDDEN, HIDDEN)
        return module, lambda x: module(x)[0]
    if name == "floor":
        module = torch.nn.Linear(HIDDEN, 2 * HIDDEN)
        return module, module
    scan = "log" if name == "minGRU log" else "fused" if name.startswith("minGRU fused") else "auto"
    module = rk.MinGRU(HIDDEN, HIDDEN, scan=scan)
    if name.startswith("minGRU fused,"):
        from rnnkit.variants import minimal

        def variant(x):  # the C++ loops swapped for the PyTorch ones, and/or one chunk for the whole sequence
            compiled, chunk = minimal._compiled_scan, minimal.FUSED_CHUNK
            if "PyTorch" in name:
                minimal._compiled_scan = lambda pre: None
            if "unchunked" in name:
                minimal.FUSED_CHUNK = None
            try:
                return module(x)[0]
            finally:
                minimal._compiled_scan, minimal.FUSED_CHUNK = compiled, chunk

        return module, variant
    if name != "minGRU sequential":
        return module, lambda x: module(x)[0]
    params = module.parameter_groups()[0]

    def sequential(x):
        h0 = torch.zeros(x.shape[1], HIDDEN)
        return loop.recur(module.cell_type, x, (h0,), params, scan=loop.scan)[0]

    return module, sequential


def train_step(run, module, x) -> None:
    module.zero_grad(set_to_none=True)
    x.grad = None
    run(x).sum().backward()


def time_all(steps: int, rounds: int, names=IMPLEMENTATIONS) -> dict[str, float]:
    """Best seconds per training step of each implementation, interleaved over rounds."""
    built = {name: build(name) for name in names}
    x = torch.randn(steps, BATCH, HIDDEN, requires_grad=True)
    for module, run in built.values():  # warm-up: allocator, oneDNN primitives
        train_step(run, module, x[:64].detach().requires_grad_())
    best = {name: float("inf") for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            module, run = built[name]
            gc.collect()
            start = time.perf_counter()
            train_step(run, module, x)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_child(name: str, steps: int, threads: int) -> None:
    """In a fresh process: print the rise of peak RSS (MiB) over the first training step."""
    torch.set_num_threads(threads)
    module, run = build(name)
    x = torch.randn(steps, BATCH, HIDDEN, requires_grad=True)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark
    before = _status_kib("VmRSS")
    train_step(run, module, x)
    print((_status_kib("VmHWM") - before) / 1024)


def peak_mib(name: str, steps: int, threads: int) -> float:
    args = [sys.executable, __file__, "--peak-child", name, str(steps), "--threads", str(threads)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=900)
        return float(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--no-peak", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--only", nargs="+", choices=IMPLEMENTATIONS, metavar="IMPL",
                        help="only these implementations (nn.LSTM is always run: the ratios need it)")
    parser.add_argument("--peak-child", nargs=2, metavar=("IMPL", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        peak_child(args.peak_child[0], int(args.peak_child[1]), args.threads)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {BATCH}, input = hidden = {HIDDEN}, "
          f"float32, best of {args.rounds} rounds\n")
    print("| steps | implementation | train tok/s | x LSTM | peak MiB |")
    print("|---:|---|---:|---:|---:|")
    names = tuple(n for n in IMPLEMENTATIONS if not args.only or n in args.only or n == "nn.LSTM")
    for steps in args.steps:
        seconds = time_all(steps, args.rounds, names)
        for name in names:
            speed = steps * BATCH / seconds[name]
            ratio = seconds["nn.LSTM"] / seconds[name]
            peak = float("nan") if args.no_peak else peak_mib(name, steps, args.threads)
            print(f"| {steps:,} | {name} | {speed:,.0f} | {ratio:.2f} | {peak:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
