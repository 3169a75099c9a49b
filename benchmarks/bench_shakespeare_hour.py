"""Character-level Shakespeare on a wall-clock budget: validation loss against minutes, from run directories.

Issue 19's question: how close does a recurrent network trained with rnnkit on this 2-core CPU get to nanoGPT's
"baby GPT" (1.4697 nats/char on shakespeare_char, ≈3 minutes on an A100) within 60 minutes? The runs are
ordinary ``rnnkit textgen train`` commands; this script starts them (``run``) and turns their ``metrics.jsonl``
into the table and figure of docs/applications.md (``report``).

    # the published figure: the hour recipe on nanoGPT's split (the validation part is reported); the preset
    # follows the CPU (rnnkit.apps.textgen.hour_recipe): on the AVX-512 BF16 host (2026-12-02) the LayerNormLSTM,
    # run with one thread while the held-out LayerNormLSTM run had the other, and the LSTM it replaced (both
    # threads); hour-d0.25 on the AVX2 host (2026-12-01)
    python benchmarks/bench_shakespeare_hour.py run --out runs/hour-bf16-lnlstm-2threads -- --dataset shakespeare_char \
        --preset hour                                       # the preset as it is, both threads, nothing else running
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --out runs/hour-bf16-lnlstm-1thread -- \
        --dataset shakespeare_char --preset hour --cell ln_lstm --dropout 0.35 --max-steps 8500 --eval-every 400 \
        --checkpoint-every 400
    python benchmarks/bench_shakespeare_hour.py run --out runs/hour-bf16 -- --dataset shakespeare_char --preset hour \
        --cell lstm --max-steps 24500 --eval-every 1000 --checkpoint-every 1000
    # the search's winner, checked on the reported split with both threads (it lost there)
    python benchmarks/bench_shakespeare_hour.py run --out runs/hour-gru-d0.35 -- --dataset shakespeare_char \
        --preset hour --cell gru --dropout 0.35 --max-steps 8400
    # hyper-parameter search: train on the training part only, the last tenth of it held out for choosing;
    # two runs side by side, one thread each, max_steps sized so the cosine ends near the hour
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-lstm-d0.35 -- \
        --preset hour --dropout 0.35 --max-steps 3800 --sample-length 0
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-gru-d0.35 -- \
        --preset hour --cell gru --dropout 0.35 --max-steps 5600 --sample-length 0
    # on the AVX-512 BF16 host: the same search with bf16 (two side by side, one thread each, 48 minutes), and
    # dropout 0.5 with both threads (stopped at step 7,718 to free the machine for the reported run)
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-bf16-lstm2x512-d0.35 \
        -- --preset hour --dropout 0.35 --max-steps 12400 --max-minutes 48 --bf16 --eval-every 400 --sample-length 0
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-bf16-lstm3x512-d0.35 \
        -- --preset hour --num-layers 3 --dropout 0.35 --max-steps 7500 --max-minutes 48 --bf16 --eval-every 400 \
        --sample-length 0
    python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-bf16-lstm2x512-d0.5 -- --preset hour \
        --dropout 0.5 --max-steps 12400 --max-minutes 48 --bf16 --eval-every 400 --sample-length 0
    # the recurrent regularisers on the BF16 host (2026-12-02, later; side by side, one thread each, 48 minutes):
    # variational recurrent dropout (engine, 1.6x the step) and weight drop (DropConnect on W_hh, nn.LSTM)
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-bf16-lstm2x512-d0.35-rd0.2 \
        -- --preset hour --dropout 0.35 --recurrent-dropout 0.2 --max-steps 9000 --max-minutes 48 --bf16 \
        --eval-every 400 --sample-length 0
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-bf16-lstm2x512-d0.35-wd0.3 \
        -- --preset hour --dropout 0.35 --weight-drop 0.3 --max-steps 12000 --max-minutes 48 --bf16 \
        --eval-every 400 --sample-length 0
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-bf16-lnlstm2x512-d0.35 \
        -- --preset hour --cell ln_lstm --dropout 0.35 --max-steps 8500 --max-minutes 48 --bf16 --eval-every 400 \
        --sample-length 0
    # 2026-12-02, later: the LayerNormLSTM's weights averaged (observes the run above: the same steps, to the bit)
    # and 128-character chunks (half the steps for the same characters); side by side, one thread each
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning \
        --out runs/tune-bf16-lnlstm2x512-d0.35-ema0.999 -- --preset hour --cell ln_lstm --dropout 0.35 --max-steps 8500 \
        --max-minutes 48 --bf16 --eval-every 400 --sample-length 0 --ema-decay 0.999
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning \
        --out runs/tune-bf16-lnlstm2x512-d0.35-chunk128 -- --preset hour --cell ln_lstm --dropout 0.35 \
        --chunk-length 128 --max-steps 4250 --max-minutes 48 --bf16 --eval-every 200 --checkpoint-every 200 \
        --sample-length 0
    # a wider LayerNormLSTM (2026-12-02, late; one thread, alone): 2 x 768, dropout 0.4
    OMP_NUM_THREADS=1 python benchmarks/bench_shakespeare_hour.py run --tuning --out runs/tune-bf16-lnlstm2x768-d0.4 \
        -- --preset hour --cell ln_lstm --hidden-size 768 --dropout 0.4 --max-steps 6400 --max-minutes 48 --bf16 \
        --eval-every 400 --sample-length 0
    # dynamic evaluation (2026-12-03): rate and chunk chosen on the held-out part with that run, then applied once
    # to the reported run; each LR,DECAY,CHUNK after the run is one evaluation
    python benchmarks/bench_shakespeare_hour.py dynamic runs/tune-bf16-lnlstm2x768-d0.4 1e-2,0,64 2e-2,0,64 3e-2,0,64 \
        5e-2,0,64 1e-2,0,32 2e-2,0,32 0.1,0,64 0.2,0,64 5e-2,0,32 0.1,0,32 5e-2,1e-3,64 0.1,1e-2,64 0.3,0,64 \
        0.5,0,64 0.2,0,32 0.1,0,16 --jobs 2 --save benchmarks/results/shakespeare_hour_dynamic_tuning.json
    # (measured in three batches of 6, 6 and 4 settings, their rows joined in that file)
    python benchmarks/bench_shakespeare_hour.py dynamic runs/hour-bf16-lnlstm-2threads 0.1,0,16 0.3,0,64 --jobs 2 \
        --save benchmarks/results/shakespeare_hour_dynamic.json
    # a continuous cache (2026-12-03): size, theta and mix chosen on the held-out part with the same tuning run, then
    # the choice for 256 characters (the baby GPT's context) and the grid's best each applied once to the reported run
    python benchmarks/bench_shakespeare_hour.py cache runs/tune-bf16-lnlstm2x768-d0.4 --sizes 256 512 1024 2048 4096 \
        8192 16384 --thetas 0.1 0.15 0.2 0.25 0.3 0.4 --mixes 0.1 0.2 0.3 0.4 0.5 0.6 \
        --save benchmarks/results/shakespeare_hour_cache_tuning.json
    python benchmarks/bench_shakespeare_hour.py cache runs/hour-bf16-lnlstm-2threads --sizes 256 --thetas 0.2 \
        --mixes 0.2 --save benchmarks/results/shakespeare_hour_cache256.json
    python benchmarks/bench_shakespeare_hour.py cache runs/hour-bf16-lnlstm-2threads --sizes 16384 --thetas 0.25 \
        --mixes 0.5 --save benchmarks/results/shakespeare_hour_cache.json
    # a second seed of the preset (2026-12-03), its row added to the saved rows, and the same two cache evaluations
    python benchmarks/bench_shakespeare_hour.py run --out runs/hour-bf16-lnlstm-2threads-seed1 -- \
        --dataset shakespeare_char --preset hour --seed 1
    python benchmarks/bench_shakespeare_hour.py report runs/hour-bf16-lnlstm-2threads-seed1 \
        --include benchmarks/results/shakespeare_hour.json --save /tmp/rows.json
    mv /tmp/rows.json benchmarks/results/shakespeare_hour.json
    python benchmarks/bench_shakespeare_hour.py cache runs/hour-bf16-lnlstm-2threads-seed1 --sizes 256 --thetas 0.2 \
        --mixes 0.2 --save benchmarks/results/shakespeare_hour_seed1_cache256.json
    python benchmarks/bench_shakespeare_hour.py cache runs/hour-bf16-lnlstm-2threads-seed1 --sizes 16384 \
        --thetas 0.25 --mixes 0.5 --save benchmarks/results/shakespeare_hour_seed1_cache.json
    # the cache defaults on another text: textgen's 3-minute model of the Python stdlib (any textgen run will do)
    rnnkit textgen train --out runs/stdlib-3min --max-minutes 3 --seed 0
    python benchmarks/bench_shakespeare_hour.py cache runs/stdlib-3min --sizes 256 16384 --thetas 0.2 0.25 \
        --mixes 0.2 0.5 --save benchmarks/results/textgen_stdlib_cache.json
    # the table and figure: this host's runs beside the AVX2 host's saved rows
    python benchmarks/bench_shakespeare_hour.py report runs/hour-bf16 runs/hour-bf16-lnlstm-* runs/tune-bf16-* \
        --include benchmarks/results/shakespeare_hour_avx2.json --figure docs/figures/shakespeare-hour.png \
        --save benchmarks/results/shakespeare_hour.json
    # 2026-12-03: the 2 x 768 run's row added to the saved rows (once; the run directories are not kept), then the
    # figure redrawn from them with the dynamic evaluation marked
    python benchmarks/bench_shakespeare_hour.py report runs/tune-bf16-lnlstm2x768-d0.4 \
        --include benchmarks/results/shakespeare_hour.json --save /tmp/rows.json
    mv /tmp/rows.json benchmarks/results/shakespeare_hour.json
    python benchmarks/bench_shakespeare_hour.py report --include benchmarks/results/shakespeare_hour.json \
        --dynamic benchmarks/results/shakespeare_hour_dynamic.json benchmarks/results/shakespeare_hour_cache256.json \
        benchmarks/results/shakespeare_hour_cache.json benchmarks/results/shakespeare_hour_seed1_cache256.json \
        benchmarks/results/shakespeare_hour_seed1_cache.json --figure docs/figures/shakespeare-hour.png

Minutes on the x-axis are wall-clock training minutes: the steps' own time plus the evaluations, spread evenly
over them (the trainer's time limit counts both).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANCHORS = {"nanoGPT baby GPT (A100, 3 min)": 1.4697, "minGRU / minLSTM (paper, GPU)": 1.548,
           "nanoGPT CPU config (3 min)": 1.88}


TUNING = "tuning part"
#: The recurrent regularisers a run's label names when they are on.
REGULARISERS = {"recurrent_dropout": "recurrent dropout", "zoneout": "zoneout", "weight_drop": "weight drop"}
#: The host of the first runs (2026-12-01/02), recorded before run directories named their CPU's instructions.
EARLIER_HOST = "AVX2"


def tuning_file() -> Path:
    """nanoGPT's training part alone in a file: ``--val-fraction 0.1`` then holds out its last tenth."""
    from rnnkit.datasets.text import shakespeare_char

    path = Path(tempfile.gettempdir()) / "rnnkit-shakespeare-char-train.txt"
    text = shakespeare_char().train
    if not path.exists() or path.stat().st_size != len(text.encode()):
        path.write_text(text, encoding="utf-8")
    return path


def run(out: str, tuning: bool, flags: list[str]) -> None:
    command = [sys.executable, "-m", "rnnkit", "textgen", "train", "--out", out, *flags]
    if tuning:
        command += ["--data", str(tuning_file()), "--val-fraction", "0.1"]
    print(" ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"wall-clock {(time.perf_counter() - started) / 60:.1f} min (start-up and the final report included)")


def curve(run_dir: Path) -> dict:
    """Validation loss against wall-clock training minutes, and the run's facts."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    app = json.loads((run_dir / "app.json").read_text())
    results_path = run_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    step_seconds, elapsed, evaluations = {}, 0.0, []
    for record in records:
        if "seconds" in record:
            elapsed += record["seconds"]
            step_seconds[record["step"]] = elapsed
        elif "val_loss" in record:
            evaluations.append((record["step"], record["val_loss"]))
    total = results.get("train_seconds", elapsed)
    per_eval = max(total - elapsed, 0.0) / max(len(evaluations), 1)
    points = [((step_seconds.get(step, elapsed) + per_eval * (i + 1)) / 60, loss)
              for i, (step, loss) in enumerate(evaluations)]
    from rnnkit import registry

    model, settings, train = app["settings"]["model"], app["settings"], app.get("train", {})
    config_path = run_dir / "config.json"
    saved = json.loads(config_path.read_text()) if config_path.exists() else {}
    versions = saved.get("versions", {})
    return {"name": run_dir.name, "points": points, "minutes": total / 60,
            "steps": max(step_seconds, default=0), "final": results.get("val_nats_per_char"),
            "best": min((loss for _, loss in points), default=float("nan")),
            "model": f"{registry.cell_kind(model['cell']).layer.__name__} {model['num_layers']}×"
                     f"{model['hidden_size']}, dropout "
                     f"{model['dropout']:g}" + "".join(f", {label} {model[key]:g}" for key, label in REGULARISERS.items()
                                                       if model.get(key))
                     + (", bf16" if saved.get("train", {}).get("bf16") else "")
                     + (f", weights averaged ({saved['train']['ema_decay']:g})"
                        if saved.get("train", {}).get("ema_decay") else "")
                     + (f", chunks of {settings['chunk_length']}" if settings["chunk_length"] != 64 else ""),
            "chars": max(step_seconds, default=0) * train.get("batch_size", 0) * settings["chunk_length"],
            "data": TUNING if settings["data"] else settings["dataset"], "threads": versions.get("cpu_threads", "?"),
            "host": host(versions)}


def host(versions: dict) -> str:
    """The CPU's vector instructions, which set the speed: runs on different hosts are not comparable by minutes."""
    capability = versions.get("cpu_capability", "unknown CPU")
    return capability + (" + native bf16" if versions.get("native_bfloat16") == "True" else "")


def report(run_dirs: list[str], figure: str | None, save: str | None = None, include: list[str] = (),
           dynamic_results: list[str] = ()) -> None:
    rows = [dict(row, host=row.get("host", EARLIER_HOST)) for path in include
            for row in json.loads(Path(path).read_text())]
    rows += [curve(Path(d)) for d in run_dirs]
    marks = [adapted(json.loads(Path(path).read_text()), rows) for path in dynamic_results]
    if save:
        Path(save).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print("| run | model | validated on | host | threads | steps | chars seen | minutes | best val nats/char | final |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        final = f"{r['final']:.4f}" if r["final"] is not None else "-"
        print(f"| {r['name']} | {r['model']} | {r['data']} | {r['host']} | {r['threads']} | {r['steps']:,} | "
              f"{r['chars'] / 1e6:.1f} M | {r['minutes']:.1f} | {r['best']:.4f} | {final} |")
    for name, value in ANCHORS.items():
        print(f"| {name} | | | | | | | | {value} | |")
    for mark in marks:
        print(f"| {mark['label']} | | | | | | | {mark['minutes']:.1f} | {mark['nats']:.4f} | |")
    if figure:
        plot(rows, figure, marks)


def adapted(saved: dict, rows: list[dict]) -> dict:
    """Where a run's evaluation with help sits in the figure, at the run's training minutes plus the evaluation's
    own: the ``dynamic`` verb's first setting (the chosen one), or the ``cache`` verb's single setting."""
    name = Path(saved["run"]).name
    run = next((r for r in rows if r["name"] == name), None)
    if run is None:
        raise SystemExit(f"the evaluation of {name} needs its run among the rows (a run directory or --include)")
    if "static" in saved:  # the cache verb
        if len(saved["rows"]) != 1:
            raise SystemExit(f"{name}: mark a cache evaluation of one setting (the chosen one), not a grid")
        chosen = saved["rows"][0]
        label = (f"{name}, fixed weights + continuous cache of {chosen['size']:,} characters (theta "
                 f"{chosen['theta']:g}, mix {chosen['mix']:g})")
        return {"label": label, "minutes": run["minutes"] + saved["seconds"] / 60, "nats": chosen["nats"],
                "data": run["data"], "marker": "P"}
    chosen = next(r for r in saved["rows"] if r["lr"] != "static")
    return {"label": f"{name}, dynamic evaluation (lr {chosen['lr']:g}, chunks of {chosen['chunk']}; not nanoGPT's "
                     "fixed-weight protocol)", "minutes": run["minutes"] + chosen["seconds"] / 60,
            "nats": chosen["nats"], "data": run["data"], "marker": "*"}


def plot(rows: list[dict], figure: str, marks: list[dict] = ()) -> None:
    """One panel per validation text: the reported split with the anchors, the tuning part on its own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["data"] for r in rows}, key=lambda kind: kind == TUNING)
    fig, axes = plt.subplots(1, len(kinds), figsize=(7 * len(kinds), 7.5), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for r in (r for r in rows if r["data"] == kind):
            ax.plot(*zip(*r["points"]), marker=".", linestyle="--" if r["host"] == EARLIER_HOST else "-",
                    label=f"{r['name']}: {r['model']}; {r['host']}, {r['threads']} thread(s)")
        for mark in (m for m in marks if m["data"] == kind):
            ax.plot(mark["minutes"], mark["nats"], marker=mark["marker"], markersize=11, linestyle="none",
                    label=f"{mark['label']}: {mark['nats']:.3f}")
        if kind != TUNING:
            for (name, value), style in zip(ANCHORS.items(), (":", "--", "-.")):
                ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=f"{name}: {value}")
        title = ("hyper-parameter search: last tenth of the training part" if kind == TUNING
                 else "Character-level Shakespeare, nanoGPT's validation split")
        ax.set(xlabel="wall-clock training minutes (2-core CPU)", ylabel="validation loss (nats/char)",
               title=title, ylim=(1.25 if marks else 1.4, 2.0))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.12))  # below: the curves stay clear
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    print(f"figure: {figure}")


def dynamic(run_dir: str, settings: list[str], save: str | None = None, jobs: int = 1) -> list[dict]:
    """Dynamic evaluation of a finished run: the static loss over one lane, then each ``lr,decay,chunk``.

    One lane, so every character is predicted from the text before it alone (rnnkit.train.dynamic_evaluation_loss);
    ``jobs`` settings are evaluated side by side, one thread each.
    """
    from concurrent.futures import ProcessPoolExecutor

    specs = [("static", 0.0, None)] + [(float(lr), float(decay), int(chunk))
                                     for lr, decay, chunk in (s.split(",") for s in settings)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(_dynamic_one, [run_dir] * len(specs), specs))
    print(f"{run_dir}: validation nats/char over one lane ({rows[0]['tokens']:,} characters)")
    print("| evaluation | lr | decay | chunk | nats/char | minutes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        kind = "static" if r["lr"] == "static" else "dynamic"
        chunk = r["chunk"] or "as trained"
        print(f"| {kind} | {r['lr']} | {r['decay']:g} | {chunk} | {r['nats']:.4f} | {r['seconds'] / 60:.1f} |")
    if save:
        Path(save).write_text(json.dumps({"run": run_dir, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    return rows


def _dynamic_one(run_dir: str, spec: tuple) -> dict:
    import torch

    from rnnkit.apps.textgen import evaluate

    torch.set_num_threads(1)
    lr, decay, chunk = spec
    started = time.perf_counter()
    if lr == "static":
        metrics = evaluate(run_dir, batch_size=1, chunk_length=chunk)
    else:
        metrics = evaluate(run_dir, chunk_length=chunk, dynamic_lr=lr, dynamic_decay=decay)
    return {"lr": lr, "decay": decay, "chunk": chunk, "nats": metrics["val_nats_per_char"],
            "tokens": metrics["tokens"], "seconds": time.perf_counter() - started}


def cache(run_dir: str, sizes: list[int], thetas: list[float], mixes: list[float], save: str | None = None) -> dict:
    """The continuous cache (rnnkit.train.cache_evaluation_loss) over a grid, from one pass of the model.

    The run's validation text is read once over one lane (every character predicted from the text before it
    alone); the model's outputs and its probability of each next character are kept, and each cache ``size`` and
    ``theta`` then reads them (rnnkit.models.ContinuousCache), each ``mix`` costing only the final interpolation.
    """
    import torch

    from rnnkit.apps.textgen import evaluation_data
    from rnnkit.models import ContinuousCache
    from rnnkit.models.cache import mixed_log_probability
    from rnnkit.train.evaluate import streamed_predictions

    started = time.perf_counter()
    model, data, tokens, _, _ = evaluation_data(run_dir, batch_size=1)
    chunks = list(streamed_predictions(model, data))  # each batch's tensors are its own
    valid = torch.cat([(targets >= 0).flatten() for _, _, targets, _ in chunks])
    model_log_p = torch.cat([log_p.flatten() for _, log_p, _, _ in chunks]).double()[valid]
    static = -float(model_log_p.mean())
    print(f"{run_dir}: {tokens:,} characters over one lane, fixed weights {static:.4f} nats/char "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    rows = []
    print("| cache size | theta | " + " | ".join(f"mix {m:g}" for m in mixes) + " | seconds |")
    print("|---|---|" + "---|" * (len(mixes) + 1))
    for size in sizes:
        for theta in thetas:
            begun = time.perf_counter()
            memory, cached, seen = ContinuousCache(size, theta), [], []
            for features, _, targets, reset in chunks:
                probability, has = memory(features, targets, reset)
                cached.append(probability.flatten())
                seen.append(has.flatten())
            cached, seen = torch.cat(cached)[valid], torch.cat(seen)[valid]
            nats = [-float(mixed_log_probability(model_log_p, cached, seen, mix).mean()) for mix in mixes]
            rows += [{"size": size, "theta": theta, "mix": mix, "nats": n} for mix, n in zip(mixes, nats)]
            print(f"| {size} | {theta:g} | " + " | ".join(f"{n:.4f}" for n in nats)
                  + f" | {time.perf_counter() - begun:.0f} |", flush=True)
    best = min(rows, key=lambda r: r["nats"])
    print(f"best: size {best['size']}, theta {best['theta']:g}, mix {best['mix']:g}: {best['nats']:.4f} nats/char "
          f"(fixed weights alone {static:.4f})")
    result = {"run": run_dir, "tokens": tokens, "static": static, "rows": rows,
              "seconds": time.perf_counter() - started}
    if save:
        Path(save).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    start = verbs.add_parser("run", help="train one configuration (flags after -- go to rnnkit textgen train)")
    start.add_argument("--out", required=True)
    start.add_argument("--tuning", action="store_true", help="train on the training part, hold out its last tenth")
    start.add_argument("flags", nargs=argparse.REMAINDER)
    show = verbs.add_parser("report", help="table (and figure) of finished or running runs")
    show.add_argument("runs", nargs="*")
    show.add_argument("--figure", default=None)
    show.add_argument("--save", default=None, help="also write the curves and facts to this JSON file")
    show.add_argument("--include", nargs="*", default=[], metavar="JSON",
                      help="rows saved earlier (--save) to show beside the runs, e.g. those of another host")
    show.add_argument("--dynamic", nargs="*", default=[], metavar="JSON",
                      help="dynamic evaluations saved by the dynamic verb (or cache evaluations of one setting "
                           "saved by the cache verb), marked beside their runs")
    adapt = verbs.add_parser("dynamic", help="dynamic evaluation of a finished run, beside its static loss")
    adapt.add_argument("run")
    adapt.add_argument("settings", nargs="+", metavar="LR,DECAY,CHUNK", help="e.g. 1e-2,0,64")
    adapt.add_argument("--save", default=None, help="write the rows to this JSON file")
    adapt.add_argument("--jobs", type=int, default=1, help="settings evaluated side by side, one thread each")
    memory = verbs.add_parser("cache", help="a continuous cache over a grid of settings, beside the fixed weights")
    memory.add_argument("run")
    memory.add_argument("--sizes", type=int, nargs="+", required=True, help="characters remembered")
    memory.add_argument("--thetas", type=float, nargs="+", required=True, help="sharpness of the similarity")
    memory.add_argument("--mixes", type=float, nargs="+", required=True, help="the cache's share of the prediction")
    memory.add_argument("--save", default=None, help="write the rows to this JSON file")
    args = parser.parse_args()
    if args.verb == "cache":
        cache(args.run, args.sizes, args.thetas, args.mixes, args.save)
    elif args.verb == "run":
        run(args.out, args.tuning, [f for f in args.flags if f != "--"])
    elif args.verb == "dynamic":
        dynamic(args.run, args.settings, args.save, args.jobs)
    else:
        report(args.runs, args.figure, args.save, args.include, args.dynamic)


if __name__ == "__main__":
    main()
