"""The gradient lab's variant cells (LayerNormLSTM, minGRU, LSTM with zoneout) beside the LSTM, bounded.

Two measurements, both seeded:

1. Gradient flow at initialisation: ``||dL/dh_0|| / ||dL/dh_{T-1}||`` (how much of the loss on the last
   step reaches the first one) on the adding problem at the sweep's lengths T = 50, 100, 200, for every
   cell of the lab's sweep (``rnnkit.apps.lab.SWEEP_CELLS``), 128 units, float64, 100 held-out sequences,
   seed 0 (the same quantity as docs/lab.md's table). This costs seconds.
2. Task success under a short budget: ``rnnkit.apps.lab.run_sweep`` on the adding problem (clip 1, Adam
   1e-3, batch 50, 128 units) for the LSTM and the three variants at the lengths given, ``--max-steps``
   each (the full sweep's 3,000 steps per run takes hours for seven cells on the shared 2-core CPU).

Writes ``<out>/flow_init.json``, the sweep's ``results.md``/``results.csv``/plots, and prints both tables::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_lab_variants.py --lengths 50 --max-steps 600 \\
        --out runs/lab-variants
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rnnkit.apps.lab import SWEEP_CELLS, VARIANT_CELLS, LabConfig, _flow, build_model, run_sweep
from rnnkit.datasets.synthetic import adding_problem
from rnnkit.train import TrainConfig


def flow_ratios(cells, lengths, hidden_size: int = 128, seed: int = 0) -> dict:
    """``{cell: {T: ratio}}``: ``||dL/dh_0|| / ||dL/dh_{T-1}||`` at initialisation on the adding problem."""
    table = {}
    for cell in cells:
        for T in lengths:
            torch.manual_seed(seed)
            model = build_model(LabConfig(task="adding", cell=cell, T=T, hidden_size=hidden_size))
            x, y = adding_problem(100, T, generator=torch.Generator().manual_seed(10**6 + seed))
            norms = next(iter(_flow(model, x, y).steps.values()))
            table.setdefault(cell, {})[T] = norms[0] / norms[-1]
            print(f"flow at init: {cell} T={T}: {table[cell][T]:.2g}", flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[50], help="training lengths (default 50)")
    parser.add_argument("--flow-lengths", type=int, nargs="*", default=[50, 100, 200],
                        help="lengths of the gradient-flow table (none: skip it)")
    parser.add_argument("--cells", nargs="+", default=["lstm", *VARIANT_CELLS])
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--out", default="runs/lab-variants")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ratios = flow_ratios(SWEEP_CELLS, args.flow_lengths)
    if ratios:
        (out / "flow_init.json").write_text(json.dumps(ratios, indent=1) + "\n")
    grid = [(LabConfig(task="adding", cell=cell, T=T), 1.0) for T in args.lengths for cell in args.cells]
    train = TrainConfig(max_steps=args.max_steps, batch_size=50, lr=1e-3, eval_every=50,
                        checkpoint_every=args.max_steps, log_every=50, seed=0)
    results = run_sweep(grid, train, out)
    print((out / "results.md").read_text())
    print("| cell | T | final MSE | first step with MSE < 10 % of the baseline | "
          "||dL/dh_0|| / ||dL/dh_T-1|| at init | after training |")
    print("|---|---|---|---|---|---|")
    for r in results:
        solved = next((step for step, value in r["curve"] if value < 0.1 * r["baseline"]), None)
        flow = [next(iter(r["gradient_flow"][when]["steps"].values())) if r["gradient_flow"][when] else None
                for when in ("init", "trained")]
        ratio = [f"{f[0] / f[-1]:.2g}" if f else "-" for f in flow]
        print(f"| {r['cell']} | {r['T']} | {r['value']:.4g} | {solved or 'not within ' + str(r['steps'])} | "
              f"{ratio[0]} | {ratio[1]} |")
    if not ratios:
        return
    print("| cell | " + " | ".join(f"T = {T}" for T in args.flow_lengths) + " |")
    print("|---|" + "---|" * len(args.flow_lengths))
    for cell, row in ratios.items():
        print(f"| {cell} | " + " | ".join(f"{row[T]:.2g}" for T in args.flow_lengths) + " |")


if __name__ == "__main__":
    main()
