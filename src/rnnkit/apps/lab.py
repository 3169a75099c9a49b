"""The gradient lab: the classic long-memory tasks, trained under one configuration or a sweep.

Introductory texts claim that a plain tanh RNN forgets over long spans because its gradients vanish,
that gradients can also explode, and that clipping, identity initialisation (IRNN) and gated cells
(LSTM, GRU) are the remedies. :func:`run_lab` trains one configuration on a generated task and
reports its metric against the task's exact memoryless baseline, with the gradient flow
``||dL/dh_t||`` at initialisation and after training; :func:`run_sweep` runs a grid of them and
writes a table and plots, so each claim can be seen to hold or fail.

Tasks (``rnnkit.datasets.synthetic``): ``adding`` (MSE, baseline 1/6), ``copy`` (cross-entropy per
step, baseline 10 ln 8 / (T + 20)) and ``order`` (accuracy, baseline 0.25).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit._files import null_as_nan
from rnnkit import init as rk_init
from rnnkit import registry
from rnnkit.datasets.synthetic import (
    ADDING_BASELINE_MSE, ORDER_BASELINE_ACCURACY, adding_problem, copy_memory, copy_memory_baseline, temporal_order,
)
from rnnkit.diagnostics import GradientFlow, gradient_flow, plot_gradient_flow
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.apps import lifecycle
from rnnkit.errors import InputError
from rnnkit.options import option
from rnnkit.models.tagger import SequenceTagger
from rnnkit.train import TrainConfig, checkpoint

#: task -> (generator, metric name, lower is better)
TASKS = {
    "adding": (adding_problem, "mse", True),
    "copy": (copy_memory, "cross_entropy", True),
    "order": (temporal_order, "accuracy", False),
}
#: The lab's own cell name: a relu Elman RNN started from the identity (Le et al. 2015); every other
#: name is a registered cell kind (rnnkit.registry), started with torch's default initialisation.
IRNN = "irnn"
#: The lab's LSTM with zoneout (Krueger et al. 2016): in training each unit of h and c keeps its previous
#: value with probability :data:`ZONEOUT` at each step (the expectation in evaluation).
ZONEOUT_LSTM = "lstm_zoneout"
ZONEOUT = 0.1
#: The variant cells: layer-normalised LSTM (Ba et al. 2016), minGRU (Feng et al. 2024), zoneout LSTM.
VARIANT_CELLS = ("ln_lstm", "min_gru", ZONEOUT_LSTM)
#: The cells of the default sweep.
SWEEP_CELLS = ("rnn", IRNN, "lstm", "gru", *VARIANT_CELLS)


def model_cell(name: str) -> tuple[str, str]:
    """``(registered cell, default init scheme)`` of a lab cell name."""
    return {IRNN: ("rnn_relu", "identity"), ZONEOUT_LSTM: ("lstm", "default")}.get(name, (name, "default"))


def lab_cell_names() -> tuple[str, ...]:
    return (*registry.cell_names(), IRNN, ZONEOUT_LSTM)


def baseline(task: str, steps: int) -> float:
    """The metric of the best memoryless predictor."""
    return {"adding": ADDING_BASELINE_MSE, "copy": copy_memory_baseline(steps),
            "order": ORDER_BASELINE_ACCURACY}[task]


@dataclasses.dataclass
class LabConfig:
    """One lab experiment: task, sequence length and model."""

    task: str = option("adding", "adding, copy or order", choices=("adding", "copy", "order"))
    cell: str = option("lstm", "a registered cell kind (rnn is the tanh Elman RNN), irnn (relu Elman RNN "
                               f"started from the identity) or {ZONEOUT_LSTM} (LSTM with zoneout {ZONEOUT})",
                       choices=lab_cell_names)
    T: int = option(100, "sequence length (copy: the gap between seeing and recalling)")
    hidden_size: int = option(128, "features of the recurrent state")
    init: str = option("auto", "auto (identity for irnn, torch's default otherwise), default, identity, "
                               "orthogonal or xavier")
    recurrent_scale: float = option(1.0, "multiply W_hh by this after initialisation (> 1 provokes explosion)")
    forget_bias: float = option(1.0, "LSTM forget-gate bias")
    test_size: int = option(1000, "held-out sequences the metric is measured on")

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.cell not in lab_cell_names():
            raise ValueError(f"cell must be one of {', '.join(lab_cell_names())}; got {self.cell!r}")
        if self.init not in ("auto", *rk_init.SCHEMES):
            raise ValueError(f"init must be auto or one of {', '.join(rk_init.SCHEMES)}; got {self.init!r}")
        minimum = 10 if self.task == "order" else 2 if self.task == "adding" else 1
        if self.T < minimum:
            raise ValueError(f"T must be >= {minimum} for the {self.task} task, got {self.T}")

    @property
    def scheme(self) -> str:
        return model_cell(self.cell)[1] if self.init == "auto" else self.init


class TaskBatches:
    """Fresh generated batches, ``steps`` per epoch; epoch ``e`` is reproducible from ``(seed, e)``."""

    def __init__(self, task: str, steps_T: int, batch_size: int, *, steps: int = 1000, seed: int = 0) -> None:
        self.task, self.T, self.batch_size, self.steps, self.seed = task, steps_T, batch_size, steps, seed
        self.epoch = 0
        self.rows = slice(None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, world_size: int) -> TaskBatches:
        """Under torchrun: this process's rows of every batch, so the processes together train on the batches one
        process would (each generates the whole batch: the generator's draws do not split by row)."""
        if self.batch_size % world_size:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by the {world_size} processes; "
                             f"choose a multiple of {world_size}")
        part = copy.copy(self)
        part.rows = slice(rank, None, world_size)
        return part

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for _ in range(self.steps):
            x, y = TASKS[self.task][0](self.batch_size, self.T, generator=generator)
            yield x[self.rows], y[self.rows]


class HeldOutBatches:
    """The held-out set in fixed batches of ``(x, y)``; under torchrun each process takes its rows of each."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int = 500, rows: slice = slice(None)) -> None:
        self.x, self.y, self.batch_size, self.rows = x, y, batch_size, rows

    def shard(self, rank: int, world_size: int) -> HeldOutBatches:
        return HeldOutBatches(self.x, self.y, self.batch_size, slice(rank, None, world_size))

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.x), self.batch_size):
            yield self.x[start:start + self.batch_size][self.rows], self.y[start:start + self.batch_size][self.rows]


def build_model(config: LabConfig) -> nn.Module:
    """The task's model with the configured cell, initialisation and recurrent scale."""
    cell = model_cell(config.cell)[0]
    recurrent = {"cell": cell, "hidden_size": config.hidden_size,
                 "zoneout": ZONEOUT if config.cell == ZONEOUT_LSTM else 0.0}
    if config.task == "copy":
        model = SequenceTagger(vocab_size=10, embedding_dim=16, output_size=9, **recurrent)
    elif config.task == "adding":
        model = SequenceClassifier(input_size=2, output_size=1, task="regression", **recurrent)
    else:
        model = SequenceClassifier(input_size=6, output_size=4, **recurrent)
    layer = model.encoder.rnn
    has_forget_gate = layer.cell_type.forget_gate is not None
    rk_init.initialize_(layer, config.scheme, forget_bias=config.forget_bias if has_forget_gate else None)
    with torch.no_grad():
        for name, weight in layer.named_parameters():
            if name.startswith("weight_hh"):
                weight.mul_(config.recurrent_scale)
    return model


def measure(model: nn.Module, task: str, inputs: Tensor, targets: Tensor) -> float:
    """The task's metric on a held-out set."""
    model.eval()
    with torch.no_grad():
        out = model(inputs, targets)
    if task == "order":
        return float((out.output.argmax(-1) == targets).double().mean())
    return float(out.loss)


def _flow(model: nn.Module, inputs: Tensor, targets: Tensor) -> GradientFlow:
    """Gradient flow on 100 held-out sequences, in float64: over a few hundred steps a vanishing
    gradient falls below float32's smallest number (1e-38) and would read as exactly zero."""
    inputs = inputs[:100].double() if inputs.is_floating_point() else inputs[:100]
    targets = targets[:100].double() if targets.is_floating_point() else targets[:100]
    return gradient_flow(copy.deepcopy(model).double(), inputs, targets)


class Lab(lifecycle.App):
    name = "lab"
    settings_class = LabConfig
    train_defaults = {"max_steps": 2000, "batch_size": 50, "lr": 1e-3, "eval_every": 100, "checkpoint_every": 500,
                      "log_every": 100}
    val_metrics = ("val_accuracy",)
    results_file = "result.json"  # a sweep's "done" marker, written atomically by the lifecycle
    reports_divergence = True
    data_fields = ()

    def configure(self, settings: LabConfig, config: TrainConfig) -> TrainConfig:
        # The validation loss is the metric for adding (MSE) and copy (cross-entropy per step); the order
        # task's accuracy is measured on top of it.
        _, metric, lower_is_better = TASKS[settings.task]
        if lower_is_better and config.monitor != "val_loss":
            raise InputError(f"the {settings.task} task reports val_loss only; drop --monitor {config.monitor}")
        return dataclasses.replace(config, monitor="val_loss" if lower_is_better else f"val_{metric}",
                                   monitor_mode="min" if lower_is_better else "max")

    def prepare(self, settings: LabConfig, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        generate, metric, lower_is_better = TASKS[settings.task]
        test_x, test_y = generate(settings.test_size, settings.T,
                                  generator=torch.Generator().manual_seed(10**6 + config.seed))

        def task_metric(model, _batches):
            return {metric: measure(model, settings.task, test_x, test_y)}

        return lifecycle.Prepared(TaskBatches(settings.task, settings.T, config.batch_size, seed=config.seed),
                                  HeldOutBatches(test_x, test_y),
                                  test={"x": test_x, "y": test_y, "clip_norm": config.clip_norm},
                                  metrics_fn=None if lower_is_better else task_metric)

    def build_model(self, settings: LabConfig, data: lifecycle.Prepared) -> nn.Module:
        model = build_model(settings)
        # The gradient flow at initialisation, before training changes the weights.
        data.test["flow_init"] = _flow(model, data.test["x"], data.test["y"])
        return model

    def report(self, model, settings: LabConfig, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        _, metric, lower_is_better = TASKS[settings.task]
        monitor = "val_loss" if lower_is_better else f"val_{metric}"
        diverged = fitted.get("diverged")
        test_x, test_y, flow_init = data.test["x"], data.test["y"], data.test["flow_init"]
        value = measure(model, settings.task, test_x, test_y) if diverged is None else math.nan
        flow_after = _flow(model, test_x, test_y) if diverged is None else None
        records = [r for r in fitted["history"] if "loss" in r]
        norms = [r["grad_norm"] for r in records if math.isfinite(r["grad_norm"])]
        result = {
            "task": settings.task, "cell": settings.cell, "T": settings.T, "metric": metric, "value": value,
            "baseline": baseline(settings.task, settings.T), "lower_is_better": lower_is_better,
            "clip_norm": data.test["clip_norm"], "init": settings.scheme, "recurrent_scale": settings.recurrent_scale,
            "hidden_size": settings.hidden_size, "steps": fitted["step"], "seconds": fitted["train_seconds"],
            "max_grad_norm": max(norms) if norms else math.nan,
            "skipped_steps": sum(1 for r in records if r.get("skipped")), "diverged": diverged,
            "verdict": None,
            "curve": [[r["step"], r[monitor]] for r in fitted["history"] if monitor in r],
            "grad_norms": [[r["step"], r["grad_norm"]] for r in records],
            "gradient_flow": {"init": flow_init.to_dict(), "trained": flow_after.to_dict() if flow_after else None},
            "lab_config": dataclasses.asdict(settings),
        }
        result["verdict"] = verdict(result)
        flows = {"at initialisation": flow_init, **({"after training": flow_after} if flow_after else {})}
        plot_gradient_flow(flows, run / "gradient_flow.png",
                           title=f"{settings.cell} on {settings.task}, T={settings.T}: ||dL/dh_t||")
        return result


APP = Lab()


def run_lab(config: LabConfig, train: TrainConfig | None = None, out: str | Path = "runs/lab", *,
            resume: bool = False, progress: bool = True) -> dict:
    """Train one configuration and write ``result.json`` (and plots) into ``out``; returns the result.

    The result holds ``task``, ``cell``, ``T``, ``metric``, ``value``, ``baseline``, the learning curve,
    the largest pre-clip gradient norm, skipped (non-finite) steps, and the gradient flow at
    initialisation and after training. A run whose gradients turn non-finite is reported as diverged.
    """
    return lifecycle.train(APP, config, train, out, resume=resume, progress=progress)


def verdict(result: dict) -> str:
    """How the metric compares with the memoryless baseline, in words."""
    value, base = result["value"], result["baseline"]
    if result["diverged"] or math.isnan(value):
        return "diverged"
    if result["lower_is_better"]:
        ratio = value / base
        if ratio > 1.1:  # worse than predicting the mean: training went wrong (an unclipped IRNN, say)
            return "above the baseline (worse than knowing nothing)"
        return "far below the baseline" if ratio < 0.1 else "below the baseline" if ratio < 0.9 else "at the baseline"
    if value >= 0.99:
        return "solved (>= 99% correct)"
    if value < base - 0.05:
        return "below chance"
    return "above chance" if value > base + 0.05 else "at chance"


def describe(result: dict) -> str:
    """One line: the metric against the baseline."""
    head = f"{result['cell']} on {result['task']} T={result['T']}"
    if result["diverged"] or math.isnan(result["value"]):
        return f"{head}: diverged ({result['skipped_steps']} non-finite steps skipped)"
    return (f"{head}: {result['metric']} {result['value']:.4g} vs memoryless baseline {result['baseline']:.4g} "
            f"({result['value'] / result['baseline']:.3g}x): {verdict(result)}")


# ------------------------------------------------------------------------------------------ sweep

#: The default grid: every cell on the adding problem at three lengths with and without clipping;
#: copy memory and temporal order at T=100; and a tanh RNN started with an oversized W_hh, with and
#: without clipping, to show exploding gradients.
def default_grid(lengths: tuple[int, ...] = (50, 100, 200),
                 cells: tuple[str, ...] = SWEEP_CELLS) -> list[tuple[LabConfig, float | None]]:
    grid = [(LabConfig(task="adding", cell=cell, T=T), clip)
            for T in lengths for cell in cells for clip in (1.0, None)]
    grid += [(LabConfig(task=task, cell=cell, T=100), 1.0) for task in ("copy", "order") for cell in cells]
    grid += [(LabConfig(task="adding", cell="rnn", T=100, recurrent_scale=4.0), clip) for clip in (1.0, None)]
    return grid


def run_name(config: LabConfig, clip: float | None) -> str:
    scale = "" if config.recurrent_scale == 1.0 else f"-scale{config.recurrent_scale:g}"
    return f"{config.task}-{config.cell}-T{config.T}{scale}-{'clip' + format(clip, 'g') if clip else 'noclip'}"


SWEEP_FILE = "sweep.json"


def run_sweep(grid: list[tuple[LabConfig, float | None]], train: TrainConfig, out: str | Path, *,
              resume: bool = False, progress: bool = True) -> list[dict]:
    """Run every configuration and write ``results.csv``, ``results.md``, learning-curve and gradient-flow
    plots into ``out``. ``sweep.json`` records the grid and the training settings: an ``out`` holding a sweep
    is refused unless ``resume``, which continues it (skipping the runs with a ``result.json``) only with the
    same grid and settings, so that a table never mixes runs made with different ones."""
    out = Path(out)
    plan = {"grid": [[dataclasses.asdict(config), clip] for config, clip in grid], "train": train.to_dict()}
    plan = json.loads(json.dumps(plan))
    if (out / SWEEP_FILE).exists():
        if not resume:
            raise InputError(f"{out} already holds a sweep; pass --resume to continue it or choose another --out")
        saved = json.loads((out / SWEEP_FILE).read_text(encoding="utf-8"))
        if saved != plan:
            changed = sorted(k for k in plan["train"] if plan["train"][k] != saved.get("train", {}).get(k))
            what = f"training settings {', '.join(changed)}" if changed else "grid (cells, lengths or hidden size)"
            raise InputError(f"--resume continues the sweep in {out} with its own {what}; give the same options, "
                             "or choose another --out")
    elif resume:
        raise InputError(f"--resume: {out} holds no sweep to continue; run the command without --resume")
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json_atomic(out / SWEEP_FILE, plan)
    results = []
    for index, (config, clip) in enumerate(grid, start=1):
        run_dir = out / run_name(config, clip)
        done = run_dir / "result.json"
        if done.exists():
            results.append(_read_result(done))
            continue
        if progress:
            print(f"[{index}/{len(grid)}] {run_name(config, clip)}", flush=True)
        # A run killed part-way continues from its last checkpoint.
        result = run_lab(config, dataclasses.replace(train, clip_norm=clip), run_dir,
                         resume=(run_dir / lifecycle.APP_FILE).exists(), progress=False)
        if progress:
            print("   " + describe(result) + f" ({result['seconds']:.0f} s)", flush=True)
        results.append(result)
    write_table(results, out)
    plot_sweep(results, out)
    return results


def _read_result(path: Path) -> dict:
    """A finished run's ``result.json`` as :meth:`Lab.report` made it: the numbers strict JSON wrote as ``null``
    (a diverged run's value, a skipped step's gradient norm) are NaN again."""
    result = json.loads(path.read_text(encoding="utf-8"))
    for key in ("value", "max_grad_norm", "curve", "grad_norms"):
        result[key] = null_as_nan(result[key])
    result["gradient_flow"] = {when: flow and null_as_nan(flow) for when, flow in result["gradient_flow"].items()}
    return result


_COLUMNS = ["task", "cell", "T", "clip_norm", "init", "recurrent_scale", "metric", "value", "baseline",
            "ratio_to_baseline", "verdict", "max_grad_norm", "skipped_steps", "steps", "seconds"]


def write_table(results: list[dict], out: Path) -> None:
    rows = []
    for r in results:
        row = {k: r.get(k) for k in _COLUMNS}
        row["ratio_to_baseline"] = r["value"] / r["baseline"] if r["baseline"] else math.nan
        rows.append(row)
    with open(out / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    def cell(value, digits=4):
        if value is None:
            return "off"
        if isinstance(value, float):
            return "diverged" if math.isnan(value) else f"{value:.{digits}g}"
        return str(value)

    lines = ["| task | cell | T | clip | init | W_hh scale | metric | value | baseline | value / baseline | "
             "verdict | max pre-clip grad norm | skipped steps | steps | seconds |", "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row[k]) for k in _COLUMNS) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def plot_sweep(results: list[dict], out: Path) -> None:
    """Learning curves per task and length; gradient flow at initialisation and after training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        groups.setdefault((r["task"], r["T"]), []).append(r)
    for (task, steps), members in groups.items():
        fig, (curves, norms) = plt.subplots(1, 2, figsize=(13, 4.5))
        for r in members:
            label = f"{r['cell']}{'' if r['clip_norm'] else ' no clip'}" + \
                (f" W_hh x{r['recurrent_scale']:g}" if r["recurrent_scale"] != 1.0 else "")
            if r["curve"]:
                curves.plot(*zip(*r["curve"]), label=label)
            finite = [(s, n) for s, n in r["grad_norms"] if math.isfinite(n) and n > 0]
            if finite:
                norms.semilogy(*zip(*finite), label=label, alpha=0.7)
        curves.axhline(members[0]["baseline"], color="black", linestyle="--", label="memoryless baseline")
        curves.set(xlabel="step", ylabel=members[0]["metric"], title=f"{task}, T={steps}: held-out metric")
        if members[0]["lower_is_better"]:
            curves.set_yscale("log")
        norms.set(xlabel="step", ylabel="global gradient norm before clipping", title="gradient norm")
        curves.legend(fontsize="small")
        norms.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(out / f"curves-{task}-T{steps}.png", dpi=100)
        plt.close(fig)
        flows = {}
        for r in members:
            if r["clip_norm"] and r["recurrent_scale"] == 1.0:
                flows[f"{r['cell']} at init"] = GradientFlow(steps=r["gradient_flow"]["init"]["steps"])
                if r["gradient_flow"]["trained"]:
                    flows[f"{r['cell']} trained"] = GradientFlow(steps=r["gradient_flow"]["trained"]["steps"])
        if flows:
            plot_gradient_flow(flows, out / f"gradient-flow-{task}-T{steps}.png",
                               title=f"{task}, T={steps}: ||dL/dh_t|| over time steps")
