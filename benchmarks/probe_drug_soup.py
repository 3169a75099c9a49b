"""Probe (2026-12-03): average K fine-tunes of one start by their probabilities (an ensemble) or by their weights
(a uniform model soup, Wortsman et al. 2022), on one drug-review split.

Every member starts from the same weights (the tweets run given by ``--init-from``, the new tokens' vectors drawn
once with the split's seed) and differs by its data order and dropout (member seeds given by ``--members``). The
members are trained as ``rnnkit classify train --dataset drug_reviews --init-from RUN --eval-every 50
--early-stopping-patience 10 --monitor val_accuracy`` trains one (each keeps its best validation checkpoint),
then the ensemble and the soup of the first 3 and of all members are scored on validation and test. It prints
test figures: it is the probe docs/applications.md describes, which is why the choice it informed is reported
as not test-blind there.

    OMP_NUM_THREADS=1 python benchmarks/probe_drug_soup.py --seed 0 --members 0 100 200 300 400 \\
        --out benchmarks/results/drug_soup_probe_seed0.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from rnnkit.apps import classify
from rnnkit.train import Trainer, checkpoint
from rnnkit.train.state import seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (as classify train --seed)")
    parser.add_argument("--members", type=int, nargs="+", default=[0, 100, 200, 300, 400], help="member seeds")
    parser.add_argument("--init-from", default="runs/tweets-s0")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    app = classify.APP
    settings = app.normalize(classify.ClassifySettings(dataset="drug_reviews", init_from=args.init_from))
    config = dataclasses.replace(app.default_config(), eval_every=50, early_stopping_patience=10,
                                 monitor="val_accuracy", seed=args.seed)
    seed_everything(args.seed)
    data = app.prepare(settings, config, Path("."))
    start = {k: v.clone() for k, v in app.build_model(settings, data).state_dict().items()}
    _, val_part, test_part, _ = classify.split_data(settings, args.seed)
    labels = data.facts["labels"]

    def probabilities(model, part):
        return classify.predict_texts(model, [text for text, _ in part], data.vocab, settings)

    def score(p, part):
        result = classify.scores([labels.index(label) for _, label in part], p.argmax(-1).tolist(), len(labels))
        return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}

    states, on_val, on_test, rows = [], [], [], {}
    for member_seed in args.members:
        model = app.build_model(settings, data)
        model.load_state_dict(start)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(model, data.train, config=dataclasses.replace(config, seed=member_seed),
                              val_data=data.val, run_dir=tmp, progress=False, collate_fn=data.collate_fn,
                              metrics_fn=data.metrics_fn)
            fitted = trainer.fit()
            best = checkpoint.find_checkpoint(Path(tmp) / "checkpoints", "best")
            model.load_state_dict(checkpoint.load_checkpoint(best)[0])
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        on_val.append(probabilities(model, val_part))
        on_test.append(probabilities(model, test_part))
        rows[f"member {member_seed}"] = {"val": score(on_val[-1], val_part), "test": score(on_test[-1], test_part),
                                         "steps": fitted["step"]}
        print(member_seed, rows[f"member {member_seed}"], flush=True)
    for n in sorted({3, len(states)}):
        rows[f"ensemble of {n}"] = {"val": score(sum(on_val[:n]), val_part), "test": score(sum(on_test[:n]), test_part)}
        soup = app.build_model(settings, data)
        soup.load_state_dict({k: (sum(s[k].double() for s in states[:n]) / n).to(states[0][k].dtype) for k in states[0]})
        rows[f"soup of {n}"] = {"val": score(probabilities(soup, val_part), val_part),
                                "test": score(probabilities(soup, test_part), test_part)}
        print(n, {k: rows[k] for k in (f"ensemble of {n}", f"soup of {n}")}, flush=True)
    args.out.write_text(json.dumps({"seed": args.seed, "init_from": args.init_from, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
