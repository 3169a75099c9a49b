"""Sentiment: rnnkit's classifier against TF-IDF + logistic regression on the same split, over seeds.

Data: the built-in offline sentiment sets (``tweets``: 38,158 tweets, negative/neutral/positive, 10 % held
out as the test part; ``drug_reviews``: 600 + 379 reviews with their own test part). For each seed the
training part is split once more, stratified with the seed, into train and validation (10 %, or
``--val-fraction``), exactly as
``rnnkit classify train --seed S`` does (``rnnkit.apps.classify.split_data``); both models see the same
train, validation and test parts.

- rnnkit: ``rnnkit.apps.classify.train`` with the app's defaults (``rnnkit classify train``'s flags) unless
  overridden here; the command line each run equals is printed.
- baseline: scikit-learn ``TfidfVectorizer`` (word 1-2 grams, ``min_df=2``, sublinear tf, lowercase) +
  ``LogisticRegression`` (``max_iter=2000``), C picked from {1, 0.3, 3, 0.1, 10} (ties: the first) on the
  validation part by macro-F1 (the reported baseline) and, in a second row, by accuracy (the fair partner of an
  rnnkit run with ``--monitor val_accuracy``), then scored on the test part.

Hyper-parameters (of both) are chosen on the validation part; the test part is only reported. The table
gives the mean (and min-max) over the seeds of test accuracy and macro-F1, plus the validation figures.
``--cross-validate K`` chooses between configurations without the test part: each seed's training part is cut
into K stratified folds, each held out once while both models train (and validate) on the rest; the table then
reports the held-out folds. With ``--ensemble`` the table adds the members alone (their mean per run).
scikit-learn is needed here only; it is not an rnnkit dependency. Writes
``benchmarks/results/sentiment_<dataset>.json``.

    OMP_NUM_THREADS=1 python benchmarks/bench_sentiment.py --dataset tweets drug_reviews --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import json
import statistics
import tempfile
import time
from pathlib import Path

from rnnkit.apps import lifecycle
from rnnkit.apps.classify import (
    APP, Classify, ClassifySettings, load_run, scores, split_data, stratified_split, test_metrics,
)
from rnnkit.train import TrainConfig

MODEL_FLAGS = {"cell": str, "hidden_size": int, "embedding_dim": int, "num_layers": int, "dropout": float,
               "recurrent_dropout": float, "zoneout": float, "weight_drop": float, "summary": str,
               "bag_of_tokens": bool, "subword_buckets": int, "word_dropout": float}
SETTING_FLAGS = {"level": str, "min_freq": int, "max_vocab": int, "max_length": int, "val_fraction": float,
                 "init_from": str, "ensemble": int}
TRAIN_FLAGS = {"max_steps": int, "batch_size": int, "lr": float, "eval_every": int,
               "early_stopping_patience": int, "weight_decay": float, "schedule": str, "monitor": str,
               "ema_decay": float}


def tfidf_baseline(train_part, val_part, test_part, extra=()) -> dict:
    """``extra``: more labelled examples for the baseline's training (what ``--init-from`` gave rnnkit)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    train_part = list(train_part) + list(extra)
    labels = sorted({label for _, label in train_part + val_part + test_part})
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
    x_train = vectorizer.fit_transform([t for t, _ in train_part])
    y_train = [labels.index(label) for _, label in train_part]

    def fit(c):
        return LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)

    def score(model, part):
        predicted = model.predict(vectorizer.transform([t for t, _ in part])).tolist()
        return scores([labels.index(label) for _, label in part], predicted, len(labels))

    fitted = {c: fit(c) for c in (1.0, 0.3, 3.0, 0.1, 10.0)}
    val_scores = {c: score(model, val_part) for c, model in fitted.items()}

    def chosen_by(metric: str) -> dict:
        best_c = max(fitted, key=lambda c: val_scores[c][metric])
        val, test = val_scores[best_c], score(fitted[best_c], test_part)
        return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "val_accuracy": val["accuracy"],
                "val_macro_f1": val["macro_f1"], "C": best_c}

    # C chosen by validation macro-F1 is the reported baseline; by validation accuracy is kept beside it so a
    # classifier that selects its checkpoint on accuracy meets a baseline given the same choice.
    return {**chosen_by("macro_f1"), "by_val_accuracy": chosen_by("accuracy"),
            "seconds": time.perf_counter() - started}


class GivenParts(Classify):
    """The classify app on parts the benchmark chose (a cross-validation fold) instead of its seeded split."""

    def __init__(self, parts: tuple) -> None:
        self.parts = parts

    def prepare(self, settings, config, run):
        return self.prepare_parts(settings, *self.parts)


def rnnkit_run(settings: ClassifySettings, config: TrainConfig, train_part, val_part, test_part,
               given: bool = False) -> dict:
    """One run (on the seed's split, or with ``given`` on these parts); an ensemble's also lists each member's
    own test and validation figures."""
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    app = GivenParts((train_part, val_part, test_part, "the fold")) if given else APP
    with tempfile.TemporaryDirectory() as tmp:
        result = lifecycle.train(app, settings, config, Path(tmp) / "run", progress=False)
        model, vocab, info = load_run(Path(tmp) / "run")
        val = test_metrics(model, vocab, info.settings, info.facts, val_part)
        members = []
        for member in APP.members(model):
            on_val, on_test = (test_metrics(member, vocab, info.settings, info.facts, part)
                               for part in (val_part, test_part))
            members.append({"accuracy": on_test["accuracy"], "macro_f1": on_test["macro_f1"],
                            "val_accuracy": on_val["accuracy"], "val_macro_f1": on_val["macro_f1"]})
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "val_accuracy": val["accuracy"],
            "val_macro_f1": val["macro_f1"], "steps": result["steps"], "seconds": time.perf_counter() - started,
            "majority": result["majority_baseline_accuracy"], **({"members": members} if members else {})}


def splits(settings: ClassifySettings, seeds: list[int], folds: int | None):
    """``(seed, name, (train, validation, test))`` per run: each seed's split, or with ``folds`` each fold of
    each seed's training part held out in turn (the data set's test part is never read)."""
    for seed in seeds:
        train_part, val_part, test_part, _ = split_data(settings, seed)
        if not folds:
            yield seed, f"seed {seed}", (train_part, val_part, test_part)
            continue
        parts = stratified_split(train_part + val_part, [1 / folds] * (folds - 1), seed)
        for k, held_out in enumerate(parts):
            rest = [example for j, part in enumerate(parts) if j != k for example in part]
            train_part, val_part = stratified_split(rest, [settings.val_fraction], seed)
            yield seed, f"seed {seed} fold {k}", (train_part, val_part, held_out)


def command_line(dataset: str, overrides: dict) -> str:
    flags = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in overrides.items())
    return f"rnnkit classify train --dataset {dataset} {flags}".strip()


def summary(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs]
    return f"{statistics.mean(values):.4f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="+", default=["tweets", "drug_reviews"],
                        choices=("tweets", "drug_reviews"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-baseline", action="store_true", help="skip TF-IDF + LR (for quick sweeps)")
    parser.add_argument("--jobs", type=int, default=1, help="train this many seeds at once (one thread each)")
    parser.add_argument("--baseline-with", default=None, metavar="DATASET",
                        help="also give TF-IDF + LR this data set's training part (for a run --init-from a model "
                             "trained on it, the baseline's share of the same data); reported as a third row")
    parser.add_argument("--cross-validate", type=int, default=None, metavar="K",
                        help="choose without the test part: split the data set's training part into K stratified "
                             "folds (per seed); each fold is held out once and both models train on the rest (its "
                             "validation part taken from it as usual); the table reports the held-out folds")
    parser.add_argument("--out", default=None, help="default benchmarks/results/sentiment_<dataset>.json "
                                                    "(sentiment_<dataset>_cv<K>.json with --cross-validate)")
    for name, kind in {**MODEL_FLAGS, **SETTING_FLAGS, **TRAIN_FLAGS}.items():
        how = {"action": "store_const", "const": True} if kind is bool else {"type": kind}
        parser.add_argument("--" + name.replace("_", "-"), default=None, **how,
                            help="override the classify default (same flag as `rnnkit classify train`)")
    args = parser.parse_args()
    if args.cross_validate is not None and args.cross_validate < 2:
        parser.error(f"--cross-validate {args.cross_validate}: give at least 2 folds (each held out once)")
    given = {k: getattr(args, k) for k in {**MODEL_FLAGS, **SETTING_FLAGS, **TRAIN_FLAGS}
             if getattr(args, k) is not None}
    for dataset in args.dataset:
        base = ClassifySettings(dataset=dataset)
        settings = dataclasses.replace(
            base, **{k: v for k, v in given.items() if k in SETTING_FLAGS},
            model=dataclasses.replace(base.model, **{k: v for k, v in given.items() if k in MODEL_FLAGS}))
        train_options = {**APP.train_defaults, **{k: v for k, v in given.items() if k in TRAIN_FLAGS}}
        print(f"== {dataset}: {command_line(dataset, given)} --seed S", flush=True)
        rnn, baseline, pending = [], [], []
        pool = concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"))
        names = []
        for seed, name, (train_part, val_part, test_part) in splits(settings, args.seeds, args.cross_validate):
            held_out = "held-out fold" if args.cross_validate else "test"
            print(f"{name}: train {len(train_part)}, validation {len(val_part)}, {held_out} {len(test_part)}",
                  flush=True)
            names.append(name)
            pending.append(pool.submit(rnnkit_run, settings, TrainConfig(**train_options, seed=seed), train_part,
                                       val_part, test_part, bool(args.cross_validate)))
            if not args.no_baseline:
                baseline.append(tfidf_baseline(train_part, val_part, test_part))
                if args.baseline_with:
                    extra = split_data(ClassifySettings(dataset=args.baseline_with), seed)[0]
                    baseline[-1]["with_extra"] = tfidf_baseline(train_part, val_part, test_part, extra)
                print(f"  TF-IDF + LR (C={baseline[-1]['C']}): {held_out} accuracy {baseline[-1]['accuracy']:.4f}, "
                      f"macro-F1 {baseline[-1]['macro_f1']:.4f}; val macro-F1 {baseline[-1]['val_macro_f1']:.4f}",
                      flush=True)
        for name, future in zip(names, pending):
            rnn.append(future.result())
            print(f"  {name}: rnnkit ({rnn[-1]['steps']} steps, {rnn[-1]['seconds']:.0f} s): {held_out} accuracy "
                  f"{rnn[-1]['accuracy']:.4f}, macro-F1 {rnn[-1]['macro_f1']:.4f}; val accuracy "
                  f"{rnn[-1]['val_accuracy']:.4f}, macro-F1 {rnn[-1]['val_macro_f1']:.4f}", flush=True)
        pool.shutdown()
        where = f"held-out folds ({args.cross_validate} per seed)" if args.cross_validate else f"test ({len(test_part)})"
        print(f"\n| {dataset}, {where}, mean (min-max) over seeds {args.seeds} | accuracy | "
              f"macro-F1 | val macro-F1 | time per run |\n|---|---|---|---|---|")
        print(f"| majority class | {rnn[0]['majority']:.4f} | | | |")
        if baseline:
            print(f"| TF-IDF 1-2 grams + logistic regression (C on val) | {summary(baseline, 'accuracy')} | "
                  f"{summary(baseline, 'macro_f1')} | {summary(baseline, 'val_macro_f1')} | "
                  f"{statistics.mean(b['seconds'] for b in baseline):.0f} s |")
            by_accuracy = [b["by_val_accuracy"] for b in baseline]
            print(f"| the same, C by val accuracy | {summary(by_accuracy, 'accuracy')} | "
                  f"{summary(by_accuracy, 'macro_f1')} | {summary(by_accuracy, 'val_macro_f1')} | |")
            if args.baseline_with:
                extra = [b["with_extra"] for b in baseline]
                print(f"| the same trained on {args.baseline_with}'s training part too (C by val macro-F1) | "
                      f"{summary(extra, 'accuracy')} | {summary(extra, 'macro_f1')} | {summary(extra, 'val_macro_f1')} | |")
        print(f"| rnnkit `{command_line(dataset, given)}` | {summary(rnn, 'accuracy')} | {summary(rnn, 'macro_f1')} | "
              f"{summary(rnn, 'val_macro_f1')} | {statistics.mean(r['seconds'] for r in rnn):.0f} s |", flush=True)
        if "members" in rnn[0]:
            alone = [{k: statistics.mean(m[k] for m in r["members"]) for k in r["members"][0]} for r in rnn]
            print(f"| ... its members alone (the mean of {len(rnn[0]['members'])} per run) | {summary(alone, 'accuracy')} | "
                  f"{summary(alone, 'macro_f1')} | {summary(alone, 'val_macro_f1')} | |", flush=True)
        print(flush=True)
        if args.no_baseline:
            continue
        suffix = f"_cv{args.cross_validate}" if args.cross_validate else ""
        out = Path(args.out or f"benchmarks/results/sentiment_{dataset}{suffix}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"dataset": dataset, "seeds": args.seeds, "folds": args.cross_validate,
                                   "runs": names, "command": command_line(dataset, given),
                                   "train_config": train_options, "settings": dataclasses.asdict(settings),
                                   "tfidf_logreg": baseline, "rnnkit": rnn}, indent=1) + "\n")


if __name__ == "__main__":
    main()
