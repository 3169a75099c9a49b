"""Run by test_distributed.py, alone or under torchrun: a few training steps, then the weights are saved."""

import sys

import torch
from safetensors.torch import save_file
from torch.utils.data import TensorDataset

from rnnkit.data import StreamBatches
from rnnkit.train import TrainConfig, Trainer

from train_support import TinyLM, token_stream

def classify_val_metrics(out: str) -> None:
    """Classify's validation metrics with the examples split between the processes (rank r takes every
    world-th batch from r): the result written by rank 0 must be that of all the examples in one process."""
    import json

    from rnnkit.apps.classify import val_metrics
    from rnnkit.models import SequenceClassifier
    from rnnkit.train import distributed

    process, _ = distributed.setup("cpu")
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=12, output_size=3, hidden_size=6)
    generator = torch.Generator().manual_seed(1)
    batches = [{"inputs": torch.randint(4, 12, (5, 4), generator=generator),
                "targets": torch.randint(0, 3, (5,), generator=generator)} for _ in range(6)]
    metrics = val_metrics(model, batches[process.rank::process.world_size])
    if process.is_main:
        with open(f"{out}/metrics.json", "w") as file:
            json.dump(metrics, file)
    distributed.barrier(process)  # no process leaves while another still exchanges counts


if __name__ == "__main__":
    out, kind = sys.argv[1], sys.argv[2]
    if kind == "classify-val-metrics":
        classify_val_metrics(out)
        sys.exit()
    torch.manual_seed(0)
    model = TinyLM(cell="gru", hidden=16)
    if kind == "dataset-uneven":
        # Rows with very different numbers of counted targets (the rest ignored, as padding is), so the two processes'
        # shares of a batch differ; and 21 validation rows, which two processes cannot split evenly.
        tokens = token_stream(64 * 11).view(64, 11)
        targets = tokens[:, 1:].clone()
        for row in range(64):
            targets[row, 1 + (row * 7) % 9:] = -100
        data = TensorDataset(tokens[:, :-1], targets)
    elif kind.startswith("dataset"):
        tokens = token_stream(64 * 11).view(64, 11)
        data = TensorDataset(tokens[:, :-1], tokens[:, 1:])
    elif kind == "streams-documents":  # documents of different lengths: lanes end at different places
        stream = token_stream(2000)
        data = StreamBatches([stream[:300], stream[300:420], stream[420:1500], stream[1500:1530], stream[1530:]],
                             batch_size=8, chunk_length=10)
    else:
        data = StreamBatches(token_stream(2000), batch_size=8, chunk_length=10)
    config = TrainConfig(max_steps=6, batch_size=8, lr=1e-2, checkpoint_every=3, eval_every=100,
                         ema_decay=0.8 if kind.endswith("-ema") else None)
    extra = {}
    if kind == "dataset-rank-metrics":
        # A metric that rank 0 sees improve at every evaluation and rank 1 never: early stopping must still
        # stop every process at the same step (or the others wait for the one that left).
        evaluations = []

        def rank_metric(model, batches):
            evaluations.append(1)
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            return {"score": float(len(evaluations)) if rank == 0 else 0.0}

        config = TrainConfig(max_steps=6, batch_size=8, lr=1e-2, eval_every=1, early_stopping_patience=1,
                             monitor="val_score", monitor_mode="max")
        extra = {"val_data": data, "metrics_fn": rank_metric}
    if kind == "dataset-uneven":
        config = TrainConfig(max_steps=6, batch_size=8, lr=1e-2, eval_every=3)
        extra = {"val_data": torch.utils.data.Subset(data, range(21))}
    trainer = Trainer(model, data, config=config, run_dir=f"{out}/run", progress=False, **extra)
    trainer.fit()
    if trainer.process.is_main:
        weights = {k: v.contiguous() for k, v in model.state_dict().items()}
        if trainer.averaged is not None:
            weights |= {f"average.{k}": v.contiguous() for k, v in trainer.evaluation_model.state_dict().items()}
        save_file(weights, f"{out}/weights.safetensors")
