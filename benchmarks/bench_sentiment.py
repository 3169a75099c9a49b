"""Sentiment: rnnkit's classifier against TF-IDF + logistic regression on the same split.

Data: a built-in offline sentiment set (``tweets``: 38,158 tweets, negative/neutral/positive, 10 % held
out as the test part; or ``drug_reviews``: 600 + 379 reviews with their own test part). The training
part is split once more, stratified with the seed, into train and validation (10 %), exactly as
``rnnkit classify train`` does (``rnnkit.apps.classify.split_data``).

- rnnkit: ``rnnkit.apps.classify.train`` with its defaults (word tokens, bidirectional GRU(64), max
  pooling, Adam 2e-3, batch 32, best validation macro-F1 checkpoint, early stopping after 5 evaluations).
- baseline: scikit-learn ``TfidfVectorizer`` (word 1-2 grams, ``min_df=2``, sublinear tf, lowercase) +
  ``LogisticRegression`` (``max_iter=2000``), C picked from {1, 0.3, 3, 0.1, 10} (ties: the first) on the same validation
  part, then scored on the test part.

scikit-learn is needed here only (``pip install scikit-learn``); it is not an rnnkit dependency.
Writes ``benchmarks/results/sentiment.json``.

    OMP_NUM_THREADS=1 python benchmarks/bench_sentiment.py --dataset tweets --max-steps 3000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rnnkit.apps.classify import ClassifySettings, scores, split_data, train
from rnnkit.train import TrainConfig


def tfidf_baseline(train_part, val_part, test_part) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    labels = sorted({label for _, label in train_part + val_part + test_part})
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
    x_train = vectorizer.fit_transform([t for t, _ in train_part])
    y_train = [labels.index(label) for _, label in train_part]

    def fit(c):
        return LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)

    def score(model, part):
        predicted = model.predict(vectorizer.transform([t for t, _ in part])).tolist()
        return scores([labels.index(label) for _, label in part], predicted, len(labels))

    best_c = max((1.0, 0.3, 3.0, 0.1, 10.0), key=lambda c: score(fit(c), val_part)["macro_f1"])
    result = score(fit(best_c), test_part)
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "C": best_c,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tweets", choices=("tweets", "drug_reviews"))
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="default benchmarks/results/sentiment_<dataset>.json")
    args = parser.parse_args()
    settings = ClassifySettings(dataset=args.dataset)
    train_part, val_part, test_part, source = split_data(settings, args.seed)
    print(f"{source}: train {len(train_part)}, validation {len(val_part)}, test {len(test_part)}", flush=True)
    baseline = tfidf_baseline(train_part, val_part, test_part)
    print(f"TF-IDF + logistic regression (C={baseline['C']}): accuracy {baseline['accuracy']:.4f}, "
          f"macro-F1 {baseline['macro_f1']:.4f} ({baseline['seconds']:.0f} s)", flush=True)
    config = TrainConfig(max_steps=args.max_steps, batch_size=32, lr=2e-3, eval_every=200, checkpoint_every=200,
                         log_every=200, early_stopping_patience=5, monitor="val_macro_f1", monitor_mode="max",
                         seed=args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(settings, config, Path(tmp) / "run", progress=True)
    seconds = time.perf_counter() - started
    rnn = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "steps": result["steps"],
           "seconds": seconds}
    print(f"\n| {args.dataset} test ({len(test_part)}) | accuracy | macro-F1 | time |\n|---|---|---|---|")
    print(f"| majority class | {result['majority_baseline_accuracy']:.4f} | | |")
    print(f"| TF-IDF 1-2 grams + logistic regression (C={baseline['C']}) | {baseline['accuracy']:.4f} | "
          f"{baseline['macro_f1']:.4f} | {baseline['seconds']:.0f} s |")
    print(f"| rnnkit BiGRU(64) max-pool, {rnn['steps']} steps | {rnn['accuracy']:.4f} | {rnn['macro_f1']:.4f} | "
          f"{seconds:.0f} s |")
    out = Path(args.out or f"benchmarks/results/sentiment_{args.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"dataset": args.dataset, "sizes": [len(train_part), len(val_part), len(test_part)],
                               "majority": result["majority_baseline_accuracy"], "tfidf_logreg": baseline,
                               "rnnkit": rnn}, indent=1) + "\n")


if __name__ == "__main__":
    main()
