"""Keras' addition seq2seq example, reproduced with rnnkit's translation app.

keras-io ``examples/nlp/addition_rnn.py``: questions "535+61" -> "596", operands of 1..3 random digits,
50,000 distinct questions, 10 % held out for validation, input reversed (``REVERSE = True``), batch 32,
Adam. Keras' model: LSTM(128) encoder -> RepeatVector(4) -> LSTM(128) decoder -> Dense softmax over
padded answers; it reports "3 digits: 99 % train/test accuracy in 100 epochs", where accuracy is Keras'
per-character accuracy over the 4 padded answer positions.

rnnkit: the same data and split, Seq2Seq with one LSTM(128) encoder and decoder (``--attention``,
default bahdanau; ``--attention none`` is the closest to Keras' model), teacher forcing, batch 32,
Adam at the app's default lr. Every epoch it reports the validation *exact match* (whole answer right,
greedy decoding) and Keras-style per-character accuracy, and stops once exact match reaches the
target. Writes ``benchmarks/results/addition.json``.

    OMP_NUM_THREADS=1 python benchmarks/bench_addition.py --epochs 20 --max-minutes 15
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path

import torch

from rnnkit.apps.translate import (PairDataset, TranslateSettings, addition_pairs, build_model, build_vocabs, collate,
                                   decode, decoding_limit)
from rnnkit.models import Seq2SeqConfig
from rnnkit.train import TrainConfig, Trainer


def keras_char_accuracy(outputs: list[str], answers: list[str], width: int) -> float:
    """Keras' metric: per-position accuracy over answers padded with spaces to ``width`` characters."""
    right = sum(a == b for out, ans in zip(outputs, answers)
                for a, b in zip(out[:width].ljust(width), ans.ljust(width)))
    return right / (width * len(answers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=3)
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    parser.add_argument("--target", type=float, default=0.99, help="stop when validation exact match reaches it")
    parser.add_argument("--attention", default="bahdanau", choices=("none", "bahdanau", "dot", "general"))
    parser.add_argument("--no-reverse", action="store_true", help="feed the question in reading order")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/addition.json")
    args = parser.parse_args()

    config = TranslateSettings(dataset="addition", digits=args.digits, examples=args.examples,
                               reverse_source=not args.no_reverse,
                               model=Seq2SeqConfig(cell="lstm", hidden_size=128, embedding_dim=32, attention=args.attention))
    pairs = addition_pairs(args.examples, digits=args.digits, seed=args.seed)
    random.Random(args.seed).shuffle(pairs)
    split = len(pairs) - len(pairs) // 10  # Keras: the last 10 % of the shuffled questions validate
    train_pairs, val_pairs = pairs[:split], pairs[split:]
    vocabs = build_vocabs(config, train_pairs)
    torch.manual_seed(args.seed)
    model = build_model(config, vocabs, decoding_limit(vocabs, train_pairs))
    val = PairDataset(val_pairs, vocabs["source"], vocabs["target"], config.reverse_source)
    steps_per_epoch = -(-len(train_pairs) // 32)
    epochs, started = [], time.perf_counter()

    def per_epoch(m, _batches) -> dict:
        inputs = collate(val.items)
        decoded = decode(m, inputs["inputs"], inputs["lengths"])
        outputs = [vocabs["target"].decode(row) for row in decoded.tokens]
        answers = [t for _, t in val_pairs]
        record = {"epoch": len(epochs) + 1, "exact_match": sum(o == a for o, a in zip(outputs, answers)) / len(answers),
                  "char_accuracy": keras_char_accuracy(outputs, answers, args.digits + 1),
                  "seconds": round(time.perf_counter() - started, 1)}
        epochs.append(record)
        print(json.dumps(record), flush=True)
        if record["exact_match"] >= args.target:
            trainer.stop_reason = f"validation exact match {record['exact_match']:.4f} >= {args.target}"
        return {k: record[k] for k in ("exact_match", "char_accuracy")}

    train = TrainConfig(max_steps=args.epochs * steps_per_epoch, batch_size=32, lr=args.lr, eval_every=steps_per_epoch,
                        checkpoint_every=10**9, log_every=steps_per_epoch // 4, seed=args.seed,
                        max_minutes=args.max_minutes)
    trainer = Trainer(model, PairDataset(train_pairs, vocabs["source"], vocabs["target"], config.reverse_source),
                      config=train, val_data=val, collate_fn=collate, metrics_fn=per_epoch)
    trainer.fit()

    def first(key: str):
        return next((r["epoch"] for r in epochs if r[key] >= args.target), None)

    result = {"setup": {**vars(args), "train": len(train_pairs), "val": len(val_pairs), "batch_size": 32,
                        "model": dataclasses.asdict(model.config), "threads": torch.get_num_threads()},
              "epochs": epochs, "stopped": trainer.stop_reason or "epochs",
              "epoch_exact_match_reached_target": first("exact_match"),
              "epoch_char_accuracy_reached_target": first("char_accuracy"),
              "keras_epochs_to_99_char_accuracy": 100}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("epochs", "setup")}))


if __name__ == "__main__":
    main()
