"""One lifecycle for every application: an app says what is particular to it, this module does the rest.

An application (:class:`App`) is its settings (a dataclass that nests its task model's config), how
to load and split its data (:meth:`App.prepare`), how to build its model (:meth:`App.build_model`)
and how to report on the trained model (:meth:`App.report`). :func:`train` owns everything else,
the same way for every app:

1. check every option that can be checked before any work (monitor metric, device, settings);
2. the resume/overwrite policy: a finished or foreign run is never overwritten, ``--resume``
   continues a run on the settings, seed and batch size it started with (read back from app.json);
3. seed every generator (torch, numpy, Python) *before* any data is shuffled or any weight drawn,
   so two runs with the same seed are identical and a run resumed before its first checkpoint
   equals an uninterrupted one;
4. write ``app.json`` (settings, seed and facts about the data: the one place the model's
   configuration is persisted in a run), then train with :class:`~rnnkit.train.Trainer` (an ensemble,
   see :meth:`App.members`: each member in turn, as a run of its own in ``members/<i>``);
5. finish: the best checkpoint's weights into ``model/``, the app's report into ``results.json``
   (written atomically).

:func:`load_run` gives the verbs (``sample``, ``predict``, ``evaluate``, ...) a finished run back.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

import torch

from rnnkit._files import read_json_object
from rnnkit.errors import InputError, RunInterrupted
from rnnkit.options import flag, from_dict, nested_class
from rnnkit.train import TrainConfig, Trainer, TrainingDiverged, checkpoint
from rnnkit.train.config import OPTIMIZER_SETTINGS
from rnnkit.train.distributed import launched_rank
from rnnkit.train.progress import shown
from rnnkit.train.state import seed_everything

#: Version of the run-directory layout; runs written by a newer rnnkit are refused with a clear line.
RUN_FORMAT = 2
APP_FILE = "app.json"
MODEL_DIR = "model"


def check_device(device: str) -> None:
    """A device torch knows and this machine has, before anything is written."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown --device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: this machine has no CUDA GPU that torch can use; use --device cpu")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise InputError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA devices")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"--device {device}: rnnkit trains on cpu, cuda or mps")


def check_monitor(config: TrainConfig, metrics: Iterable[str]) -> None:
    """``config.monitor`` is one of the validation metrics the app reports (``val_loss`` always is)."""
    known = ["val_loss", *metrics]
    if config.monitor not in known:
        raise InputError(f"unknown --monitor {config.monitor!r}; this app reports {', '.join(known)}")


@dataclasses.dataclass
class Prepared:
    """What an app's data step hands the lifecycle.

    Attributes:
        train, val: training and validation data for :class:`~rnnkit.train.Trainer` (a Dataset or
            an iterable of batches such as :class:`~rnnkit.data.StreamBatches`).
        test: whatever :meth:`App.report` measures on (or ``None``).
        vocab: ``None``, a :class:`~rnnkit.data.Vocabulary` or a dict of them, saved with the model
            (built from the training split, so a resumed run rebuilds the same one).
        facts: JSON-able facts about the data (labels, sizes, scaling): written to app.json and
            compared when a run resumes, so a run never continues on different data.
        collate_fn, metrics_fn: passed to the trainer.
    """

    train: Any
    val: Any = None
    test: Any = None
    vocab: Any = None
    facts: dict = dataclasses.field(default_factory=dict)
    collate_fn: Callable | None = None
    metrics_fn: Callable | None = None


@dataclasses.dataclass
class Run:
    """A run directory as the verbs see it: its settings (the app's dataclass), data facts and the training
    options it keeps on resume (``App.kept_on_resume``, the seed among them)."""

    path: Path
    settings: Any
    facts: dict
    train: dict

    @property
    def seed(self) -> int:
        return self.train["seed"]


class App:
    """Subclass and set ``name``, ``settings_class`` (and ``train_defaults``, ``val_metrics``)."""

    name: str = ""
    settings_class: type = type(None)
    #: TrainConfig values that suit the app better than TrainConfig's own defaults.
    train_defaults: dict = {}
    #: Extra validation metrics the app's ``metrics_fn`` reports (``val_loss`` is always there).
    val_metrics: tuple[str, ...] = ()
    #: Training options a resumed run must keep (the data order depends on them).
    kept_on_resume: tuple[str, ...] = ("seed", "batch_size", *OPTIMIZER_SETTINGS, "ema_decay")
    #: Settings that shape only the final report (a sample's length, a beam width): a resume takes them from
    #: the command line; every other setting given on --resume must be the run's own.
    report_settings: tuple[str, ...] = ()
    #: Settings that say where the data comes from: a resumed run refuses different ones.
    data_fields: tuple[str, ...] = ("data", "dataset")
    #: Where the report goes in the run directory.
    results_file: str = "results.json"
    #: Report a run whose gradients stayed non-finite (the lab shows explosions) instead of failing.
    reports_divergence: bool = False
    #: Named recipes (``--preset NAME``): ``{"help": what it is for, "values": {option name: value}}``, the
    #: option names being fields of the settings (the model's included) or of TrainConfig.
    presets: dict[str, dict] = {}

    def configure(self, settings: Any, config: TrainConfig) -> TrainConfig:
        """The training options this app needs given its settings (e.g. the metric to monitor)."""
        return config

    def normalize(self, settings: Any) -> Any:
        """The settings as they are saved (e.g. file paths made absolute)."""
        return settings

    def check(self, settings: Any, config: TrainConfig) -> None:
        """Reject settings that cannot work, before any data is read (raise InputError)."""

    def prepare(self, settings: Any, config: TrainConfig, run: Path) -> Prepared:
        raise NotImplementedError

    def build_model(self, settings: Any, data: Prepared) -> torch.nn.Module:
        raise NotImplementedError

    def members(self, model: torch.nn.Module) -> list[torch.nn.Module]:
        """The members of an ensemble model, each trained on its own (``[]``: train ``model`` itself). An
        ensemble is a model whose ``members`` is a ``ModuleList`` (:class:`rnnkit.models.ClassifierEnsemble`)."""
        members = getattr(model, "members", None)
        return list(members) if isinstance(members, torch.nn.ModuleList) else []

    def report(self, model: torch.nn.Module, settings: Any, data: Prepared, run: Path, fitted: dict) -> dict:
        """Metrics of the trained model (and plots into ``run``); rank 0 only. ``fitted`` is what
        :meth:`Trainer.fit` returned (or, for a diverged run of an app that reports divergence,
        ``step``, ``stopped`` and ``diverged``), plus ``train_seconds`` and the trainer's ``history``."""
        return {k: v for k, v in fitted.items() if k != "history"}

    def describe(self, settings: Any, data: Prepared, model: torch.nn.Module) -> str:
        """One progress line about the data and the model, printed before training."""
        parameters = sum(p.numel() for p in model.parameters())
        return f"{self.name}: {type(model).__name__}, {parameters:,} parameters"

    def default_config(self, **changes: Any) -> TrainConfig:
        """The app's training defaults (its command line's), with ``changes``: what a Python caller passes to
        keep them, since a ``TrainConfig`` given to :func:`train` is used as it is."""
        return TrainConfig(**{**self.train_defaults, **changes})


# ------------------------------------------------------------------------------- run directory
def _read_info(run: Path, app: str) -> dict:
    path = run / APP_FILE
    if run.is_file():
        raise InputError(f"{run} is a file, not a run directory; pass the --out folder of a `rnnkit {app} train` run")
    if not run.is_dir():
        raise InputError(f"run directory {run} does not exist; train first with `rnnkit {app} train --out {run}`")
    if not path.exists():
        raise InputError(f"{run} is not an rnnkit run directory (no {APP_FILE}); pass the --out of a "
                         f"`rnnkit {app} train` run")
    info = read_json_object(path)
    if not isinstance(info.get("format", 0), int) or isinstance(info.get("format"), bool):
        raise InputError(f"{path} is damaged (its format is not a number); train the run again")
    if info.get("app") != app:
        raise InputError(f"{run} was made by `rnnkit {info.get('app')}`, not `rnnkit {app}`; "
                         f"use `rnnkit {info.get('app')}` with it, or pick a {app} run")
    if info.get("format", 0) > RUN_FORMAT:
        raise InputError(f"{run} was written by a newer rnnkit ({info.get('rnnkit_version')}); upgrade rnnkit")
    if info.get("format", 0) < RUN_FORMAT:
        raise InputError(f"{run} was written by rnnkit {info.get('rnnkit_version')} in an older run layout; "
                         f"train it again with this version")
    if not isinstance(info.get("train"), dict) or not isinstance(info.get("settings"), dict):
        raise InputError(f"{path} is damaged (its train settings are missing); train the run again")
    return info


def read_run(run: str | Path, app: App) -> Run:
    """The settings, seed and data facts of a run made by ``app``; one clear line for anything else."""
    run = Path(run)
    info = _read_info(run, app.name)
    try:
        settings = from_dict(app.settings_class, info["settings"])
    except (TypeError, ValueError) as error:
        raise InputError(f"{run / APP_FILE} does not describe a valid {app.name} run ({error})") from None
    return Run(run, settings, info.get("facts", {}), info["train"])


def check_resume(run: Path, app: App, resume: bool) -> None:
    """Refuse to overwrite a run, or to resume nothing (under torchrun rank 0 decides)."""
    if launched_rank() != 0:
        return
    if run.exists() and not run.is_dir():
        raise InputError(f"--out {run} is a file; choose a directory name")
    if (run / APP_FILE).exists():
        _read_info(run, app.name)  # foreign or incompatible runs fail here
        if not resume:
            raise InputError(f"{run} already holds a {app.name} run; pass --resume to continue it or choose "
                             "another --out")
    elif resume:
        raise InputError(f"--resume: {run} holds no {app.name} run to continue (none was started there, or it was "
                         f"stopped before its first steps); run the command without --resume")
    else:
        found = next((name for name in ("checkpoints", "metrics.jsonl", "config.json") if (run / name).exists()), None)
        if found is not None:  # a Trainer's run (no app.json): training here would mix its files with ours
            raise InputError(f"{run} holds another training run's {found}; choose another --out")


def _write_info(run: Path, app: App, settings: Any, config: TrainConfig, data: Prepared) -> None:
    import rnnkit

    checkpoint.write_json_atomic(run / APP_FILE, {
        "app": app.name, "format": RUN_FORMAT, "rnnkit_version": rnnkit.__version__,
        "settings": dataclasses.asdict(settings), "train": {k: getattr(config, k) for k in app.kept_on_resume},
        "facts": data.facts})


# ------------------------------------------------------------------------------------ lifecycle
def train(app: App, settings: Any = None, config: TrainConfig | None = None, out: str | Path = "run", *,
          resume: bool = False, progress: bool = True, given: Collection[str] | None = None) -> dict:
    """Train ``app`` with ``settings`` into the run directory ``out``; returns the app's report.

    ``config`` is used as it is; ``None`` takes the app's training defaults (those of its command line), and
    ``app.default_config(max_steps=...)`` keeps them with changes.

    With ``resume=True`` the run continues from its last checkpoint on the settings, seed and batch
    size it started with (``settings`` is then ignored); the data must be unchanged: a data setting the
    caller gives (``given``: the names of the settings written out on the command line; by default, those
    that differ from their defaults) must name the run's own data.
    """
    with shown(progress):
        return _train(app, settings, config, out, resume=resume, progress=progress, given=given)


def _train(app: App, settings: Any, config: TrainConfig | None, out: str | Path, *, resume: bool, progress: bool,
           given: Collection[str] | None) -> dict:
    import sys

    config = config or app.default_config()
    run = Path(out)
    check_device(config.device)
    check_monitor(config, app.val_metrics)
    check_resume(run, app, resume)
    settings = settings if settings is not None else app.settings_class()
    if resume and (run / APP_FILE).exists():
        saved = read_run(run, app)
        _check_same_data(app, settings, saved, given)
        _check_same_settings(app, settings, saved, given)
        reported = {name: getattr(settings, name) for name in app.report_settings if name in (given or ())}
        settings = dataclasses.replace(saved.settings, **reported)
        kept = saved.train
        flags = [f"{flag(name)} (the run's: {value!r})" for name, value in kept.items()
                 if name in (given or ()) and getattr(config, name) != value]
        if flags:
            raise InputError(f"--resume continues {run} with its own {', '.join(flags)}; drop the flag, or start a "
                             "new run with another --out")
        config = dataclasses.replace(config, **kept)
    else:
        saved, settings = None, app.normalize(settings)
    config = app.configure(settings, config)
    app.check(settings, config)

    seed_everything(config.seed)
    data = app.prepare(settings, config, run)
    if saved is not None and _comparable(data.facts) != _comparable(saved.facts):
        raise InputError(f"the data of {run} changed since the run started; resume on the same data, or start "
                         "a new run with another --out")
    model = app.build_model(settings, data)
    if saved is None and launched_rank() == 0:
        run.mkdir(parents=True, exist_ok=True)
        _write_info(run, app, settings, config, data)
    if progress and launched_rank() == 0:
        print(app.describe(settings, data, model), file=sys.stderr)

    started = time.perf_counter()
    members = app.members(model)
    if members:
        fitted = _train_members(app, model, members, data, config, run, resume=resume, progress=progress)
    else:
        trainer = Trainer(model, data.train, config=config, val_data=data.val, run_dir=run, progress=progress,
                          collate_fn=data.collate_fn, metrics_fn=data.metrics_fn)
        fitted = _fit(app, trainer, run, resume)
        fitted["history"] = trainer.history
        _load_best(model, run, trainer)
    fitted["train_seconds"] = round(time.perf_counter() - started, 1)
    if launched_rank() != 0:
        return fitted
    from rnnkit.models import save_model

    save_model(model, run / MODEL_DIR, data.vocab)
    report = app.report(model, settings, data, run, fitted)
    checkpoint.write_json_atomic(run / app.results_file, report, strict=True)  # for people and their tools
    return report


#: Member ``i`` of an ensemble draws its data order and dropout from seed ``seed + MEMBER_SEED_STRIDE * i``.
MEMBER_SEED_STRIDE = 1000
MEMBERS_DIR = "members"
FITTED_FILE = "fitted.json"


def _fit(app: App, trainer: Trainer, run: Path, resume: bool) -> dict:
    """``trainer.fit``; a diverged run is reported instead of raised when the app shows divergence, and an
    interrupted one raises :class:`RunInterrupted` (it is not finished: no model, no results, and an ensemble
    member is not marked done)."""
    try:
        fitted = trainer.fit(resume=resume)
    except TrainingDiverged as error:
        if not app.reports_divergence:
            raise
        return {"step": trainer.step, "stopped": "diverged", "diverged": str(error)}
    if fitted["stopped"] == "interrupted":
        raise RunInterrupted(f"interrupted at step {trainer.step} with a checkpoint written; continue with "
                             f"`rnnkit {app.name} train --out {run} --resume`")
    return fitted


def _train_members(app: App, model: torch.nn.Module, members: list[torch.nn.Module], data: Prepared,
                   config: TrainConfig, run: Path, *, resume: bool, progress: bool) -> dict:
    """Train an ensemble's members one after the other, each a run of its own in ``members/<i>`` (own data
    order and dropout, checkpoints, early stopping and metrics), then measure the ensemble on validation.

    The members' initial weights were drawn when the model was built (member 0's first, from the run's seed,
    so member 0 is the one-model run). A finished member's ``fitted.json`` (written atomically) says it is
    done: a resumed run takes its weights from its checkpoints (the best, else the last) and continues the
    member that was interrupted from its last checkpoint, so it equals an uninterrupted run."""
    import sys

    fitted: dict = {"step": [], "stopped": [], "history": []}
    for i, member in enumerate(members):
        where = run / MEMBERS_DIR / str(i)
        if resume and (where / FITTED_FILE).exists():
            done = json.loads((where / FITTED_FILE).read_text(encoding="utf-8"))
        else:
            if progress and launched_rank() == 0:
                print(f"{app.name}: member {i + 1} of {len(members)}", file=sys.stderr)
            own = dataclasses.replace(config, seed=config.seed + MEMBER_SEED_STRIDE * i)
            trainer = Trainer(member, data.train, config=own, val_data=data.val, run_dir=where, progress=progress,
                              collate_fn=data.collate_fn, metrics_fn=data.metrics_fn)
            done = _fit(app, trainer, run, resume)
            if launched_rank() == 0:
                checkpoint.write_json_atomic(where / FITTED_FILE, done)
        finished = checkpoint.find_checkpoint(where / "checkpoints", "best") or \
            checkpoint.find_checkpoint(where / "checkpoints")
        checkpoint.load_model_state(member, checkpoint.load_checkpoint(finished)[0], finished)
        fitted["step"].append(done["step"])
        fitted["stopped"].append(done["stopped"])
    if data.val is not None:
        judge = Trainer(model, data.train, config=dataclasses.replace(config, ema_decay=None), val_data=data.val,
                        collate_fn=data.collate_fn, metrics_fn=data.metrics_fn, progress=False)
        fitted.update(judge.evaluate())
    return fitted


def _check_same_data(app: App, settings: Any, saved: Run, given: Collection[str] | None) -> None:
    """A resumed run continues on its own data; a different --data/--dataset is refused, not ignored."""
    if given is None:
        defaults = {f.name: f.default for f in dataclasses.fields(app.settings_class)}
        given = {name for name in app.data_fields
                 if getattr(settings, name, None) not in (None, (), "", defaults.get(name))}
    named = [name for name in app.data_fields if name in given]
    if not named:
        return
    normalized = app.normalize(settings)
    if all(getattr(normalized, name) == getattr(saved.settings, name) for name in app.data_fields):
        return
    # The saved source is named by its first data setting that is set (--data before --dataset).
    source = next((name for name in app.data_fields if getattr(saved.settings, name) not in (None, (), "")),
                  app.data_fields[0])
    flags = " and ".join(flag(name) for name in named)
    raise InputError(f"--resume continues {saved.path} on its own data ({flag(source)} "
                     f"{getattr(saved.settings, source)}); drop {flags}, or start a new run with another --out")


def _flat_settings(settings: Any) -> dict:
    """Every option of ``settings`` by name, nested configs included, as it reads back from JSON."""
    values = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if nested_class(field) is not None and dataclasses.is_dataclass(value):
            values.update(_flat_settings(value))
        else:
            values[field.name] = value
    return json.loads(json.dumps(values, default=str))


def _check_same_settings(app: App, settings: Any, saved: Run, given: Collection[str] | None) -> None:
    """A setting written out on the command line of a resume must be the run's own: the run continues on
    its saved settings, and a different value (another --hidden-size, say) would otherwise be ignored."""
    if not given:
        return
    mine, theirs = _flat_settings(app.normalize(settings)), _flat_settings(saved.settings)
    differ = [f"{flag(name)} {theirs[name]!r}" for name in sorted(given)
              if name in mine and name in theirs and name not in (*app.data_fields, *app.report_settings)
              and mine[name] != theirs[name]]
    if differ:
        raise InputError(f"--resume continues {saved.path} on its own settings ({', '.join(differ)}); drop the "
                         "changed flags, or start a new run with another --out")


def _comparable(facts: dict) -> Any:
    """Facts as they read back from JSON (tuples become lists), for comparing a resumed run's data."""
    return json.loads(json.dumps(facts))


def _load_best(model: torch.nn.Module, run: Path, trainer: Trainer) -> None:
    """The best checkpoint's weights (when validation chose one) into ``model``; else, with ``--ema-decay``,
    the final moving average."""
    best = checkpoint.find_checkpoint(run / "checkpoints", "best")
    if best is not None:
        weights, _, _ = checkpoint.load_checkpoint(best)
        checkpoint.load_model_state(model, weights, best)
    elif trainer.averaged is not None:
        model.load_state_dict(trainer.evaluation_model.state_dict())


def load_run(run: str | Path, app: App, device: str = "cpu") -> tuple[torch.nn.Module, Any, Run]:
    """``(model, vocab, run)`` of a finished run made by ``app``: the model in evaluation mode on
    ``device``, its vocabulary (``None``, one, or a dict by name) and the run's settings."""
    from rnnkit.models import load_model, load_vocab

    info = read_run(run, app)
    model_dir = Path(run) / MODEL_DIR
    if not (model_dir / "config.json").exists():
        raise InputError(f"{run} has no trained model yet ({MODEL_DIR}/ is missing): the run did not finish; "
                         f"continue it with `rnnkit {app.name} train --out {run} --resume`")
    return load_model(model_dir).to(device).eval(), load_vocab(model_dir), info
