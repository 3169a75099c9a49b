"""Smoke test of an installed rnnkit (run by .ci/package_smoke.sh from outside the source tree).

``python package_smoke.py engine WORK``: the C++ engine must build (into $RNNKIT_ENGINE_CACHE) and run.
``python package_smoke.py fallback WORK [--layers-only]``: no usable compiler; one warning, then the
PyTorch loops must give the numbers the engine gave (saved in WORK by the engine pass).

Checks, in both modes: the package is the installed one; the default GRU and RNN layers (and the LSTM
on backend="engine") go through the engine's autograd node, forward and backward, and equal
backend="reference" (outputs, final states, every gradient); ``rnnkit --help`` and ``--version``; a
tiny ``rnnkit textgen train`` and ``sample`` on a generated text file, without a traceback.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch

ANNOUNCE = "rnnkit: compiling the fused CPU recurrent engine"
FAILED = "rnnkit: could not build the fused CPU engine"


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"package smoke test FAILED: {message}", file=sys.stderr)
        sys.exit(1)


class Counting:
    """Wraps an engine implementation (the compiled module or the PyTorch loops) and counts its calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, {"forward": 0, "backward": 0}

    def __getattr__(self, name):
        attribute = getattr(self.inner, name)
        if name not in self.calls:
            return attribute

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


def autograd_nodes(tensor) -> set[str]:
    seen, names, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def run_layer(rk, kind: str, backend: str, dtype):
    """Outputs, final states and every gradient of a seeded layer; and the autograd node names."""
    torch.manual_seed(0)
    layer = getattr(rk, kind)(5, 16, num_layers=2, bidirectional=True, backend=backend).to(dtype)
    x = torch.randn(9, 3, 5, dtype=dtype, requires_grad=True)
    out, state = layer(x, lengths=torch.tensor([9, 4, 7]))
    states = state if isinstance(state, tuple) else (state,)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum() + sum((s * s).sum() for s in states)
    loss.backward()
    values = [out.detach(), *(s.detach() for s in states), x.grad, *(p.grad for p in layer.parameters())]
    return values, autograd_nodes(out), rk.backends.select(layer).name


def layers(mode: str, work: Path) -> None:
    import rnnkit as rk
    from rnnkit import engine
    from rnnkit.engine import _build, python_engine

    package = Path(rk.__file__).resolve().parent
    check("site-packages" in package.parts, f"rnnkit imported from {package}, not from the installed wheel")
    check((package / "engine" / "csrc" / "engine.cpp").is_file(), "the wheel lacks rnnkit/engine/csrc/engine.cpp")
    cache = Path(os.environ["RNNKIT_ENGINE_CACHE"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = _build.extension()
        if mode == "engine":
            check(compiled is not None, "the C++ engine did not build")
            where = Path(compiled.__file__).resolve()
            check(cache.resolve() in where.parents, f"the engine was built in {where}, not in $RNNKIT_ENGINE_CACHE={cache}")
            _build._state["module"] = counter = Counting(compiled)
        else:
            check(compiled is None, "the C++ engine built although the compiler is hidden")
            engine.python_engine = counter = Counting(python_engine)
        results = {}
        for kind, backend in (("GRU", "auto"), ("RNN", "auto"), ("LSTM", "engine"), ("LSTM", "auto")):
            for dtype, tolerance in ((torch.float32, 2e-5), (torch.float64, 1e-10)):
                calls = dict(counter.calls)
                got, nodes, ran = run_layer(rk, kind, backend, dtype)
                expected, _, _ = run_layer(rk, kind, "reference", dtype)
                if kind != "LSTM" or backend == "engine":
                    check(ran == "engine", f"{kind} backend={backend} ran on {ran}, not on the engine")
                    check("FusedRecurrenceBackward" in nodes, f"{kind}: the engine's autograd node is not in the graph")
                    check(counter.calls["forward"] > calls["forward"] and counter.calls["backward"] > calls["backward"],
                          f"{kind}: the {mode} implementation's forward and backward were not both called")
                for index, (a, b) in enumerate(zip(got, expected)):
                    torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance,
                                               msg=lambda m, i=index: f"{kind} {backend} {dtype} #{i} vs reference: {m}")
                results[f"{kind}-{backend}-{dtype}"] = got
    failures = [w for w in caught if FAILED in str(w.message)]
    if mode == "engine":
        check(not failures, f"the engine warned: {failures[0].message if failures else ''}")
        check(not list(package.rglob("*.so")), "a compiled library was written into site-packages")
        torch.save(results, work / "engine-results.pt")
    else:
        check(len(failures) == 1, f"expected one fallback warning, got {len(failures)}")
        check(len(str(failures[0].message).splitlines()) == 1, "the fallback warning is not one line")
        print(f"fallback warning: {failures[0].message}")
        engine_results = torch.load(work / "engine-results.pt")
        for name, values in results.items():
            for a, b in zip(values, engine_results[name]):
                tolerance = 2e-5 if a.dtype == torch.float32 else 1e-10
                torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance, msg=lambda m: f"{name} vs the C++ engine: {m}")
    print(f"layers: GRU, RNN, LSTM forward and backward on the {mode} path equal the reference "
          f"({counter.calls['forward']} forward, {counter.calls['backward']} backward calls)")


def cli(mode: str, work: Path) -> None:
    import rnnkit

    rnnkit_command = str(Path(sys.executable).with_name("rnnkit"))

    def run(*args: str, expect_warning: bool = False) -> str:
        result = subprocess.run([rnnkit_command, *args], capture_output=True, text=True, timeout=600)
        shown = f"rnnkit {' '.join(args)}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        check(result.returncode == 0, shown)
        check("Traceback" not in result.stderr, f"traceback: {shown}")
        check(ANNOUNCE not in result.stderr, f"the engine was compiled again instead of reused: {shown}")
        warned = result.stderr.count(FAILED)
        if args[0] == "textgen" and mode == "fallback":
            check(warned == 1, f"expected the fallback warning once, got {warned}: {shown}")
        else:
            check(warned == 0, f"unexpected engine warning: {shown}")
        return result.stdout

    version = rnnkit.__version__
    check(importlib.metadata.version("rnnkit") == version, "the installed metadata and rnnkit.__version__ differ")
    if mode == "engine":  # neither touches the engine: once is enough
        check(run("--version").strip() == f"rnnkit {version}", "rnnkit --version")
        check("textgen" in run("--help"), "rnnkit --help does not list textgen")
    text = work / "tiny.txt"
    if not text.exists():
        lines = [f"the {a} {b} sat on the {c} mat.\n" for a in ("red", "old", "grey") for b in ("cat", "dog", "fox")
                 for c in ("warm", "flat", "blue", "soft")]
        text.write_text("".join(lines * 20))
    out = work / f"run-{mode}"
    run("textgen", "train", "--data", str(text), "--out", str(out), "--cell", "gru", "--hidden-size", "32",
        "--chunk-length", "32", "--batch-size", "8", "--max-steps", "20", "--eval-every", "10", "--sample-length", "0",
        "--seed", "0", "--quiet")
    sample = run("textgen", "sample", "--run", str(out), "--prime", "the ", "--length", "40", "--seed", "0")
    check(len(sample.strip()) >= 10, f"textgen sample printed {sample!r}")
    losses = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    check(bool(losses), "textgen train wrote no metrics")
    (work / f"metrics-{mode}.json").write_text(json.dumps(losses))
    if mode == "fallback" and (work / "metrics-engine.json").exists():
        # the same seeded run on the C++ engine and on the PyTorch loops: the same numbers
        engine_losses = json.loads((work / "metrics-engine.json").read_text())
        ours = [(m.get("step"), m.get("loss")) for m in losses if "loss" in m]
        theirs = [(m.get("step"), m.get("loss")) for m in engine_losses if "loss" in m]
        check(len(ours) == len(theirs) and all(a[0] == b[0] and abs(a[1] - b[1]) <= 1e-4 * max(1.0, abs(b[1]))
                                               for a, b in zip(ours, theirs)),
              f"textgen losses differ between the engine and the fallback: {ours} vs {theirs}")
    print(f"cli: {'--help, --version (' + version + '), ' if mode == 'engine' else ''}textgen train "
          f"({len(losses)} metric rows{', losses equal to the engine run' if mode == 'fallback' else ''}) and sample: ok")


def main() -> None:
    mode, work = sys.argv[1], Path(sys.argv[-1])
    check(mode in ("engine", "fallback"), f"unknown mode {mode!r}")
    layers(mode, work)
    if "--layers-only" not in sys.argv:
        cli(mode, work)


if __name__ == "__main__":
    main()
