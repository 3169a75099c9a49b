"""Text generation: a character- or word-level recurrent language model, trained and sampled.

Training streams the text with truncated BPTT (``rnnkit.data.StreamBatches``): the corpus is cut into
``batch_size`` contiguous lanes and the state is carried from one chunk to the next, so a file of any
size trains without ever being one batch, and the model can learn dependencies longer than a chunk.
The last ``val_fraction`` of the text is held out (nanoGPT's split), and validation loss is reported in
nats per token, bits per token and perplexity. Sampling primes the model with a text once and then
streams one token at a time, carrying the state (``rnnkit.sampling``).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from rnnkit.apps.common import InputError, finish_training, load_trained, read_app, read_text, write_app
from rnnkit.data import StreamBatches
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.common import option
from rnnkit.train import TrainConfig, Trainer
from rnnkit.train.checkpoint import write_json_atomic
from rnnkit.train.distributed import launched_rank

APP = "textgen"


@dataclasses.dataclass
class TextgenSettings:
    """How the text is tokenised and split, and the language model's size."""

    level: str = option("char", "tokens: 'char' (characters) or 'word' (whitespace-separated words)")
    min_freq: int = option(1, "keep tokens seen at least this often in the training text (others become <unk>)")
    max_vocab: int = option(0, "keep at most this many tokens, most frequent first (0: no limit)")
    val_fraction: float = option(0.1, "hold out this last fraction of the text for validation")
    chunk_length: int = option(128, "tokens per truncated-BPTT chunk")
    cell: str = option("lstm", "recurrent cell: 'lstm', 'gru', 'rnn' (tanh) or 'rnn_relu'")
    hidden_size: int = option(512, "features of the recurrent state")
    num_layers: int = option(1, "stacked recurrent layers")
    dropout: float = option(0.0, "dropout on embeddings, between layers and before the output")
    embedding_dim: int = option(64, "token embedding size")
    encoding: str = option("utf-8", "encoding of the input files")

    def __post_init__(self) -> None:
        if self.level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {self.level!r}")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.chunk_length < 2:
            raise ValueError(f"chunk_length must be >= 2, got {self.chunk_length}")


def load_documents(files: list[str] | None, dataset: str | None, encoding: str = "utf-8") -> tuple[list[str], str]:
    """The training text as documents, from the user's files or a built-in corpus; and a description."""
    if files:
        return [read_text(f, encoding) for f in files], ", ".join(files)
    from rnnkit import datasets

    names = [d.name for d in datasets.list_datasets("text")]
    if dataset not in names:
        raise InputError(f"unknown text dataset {dataset!r}; choose one of {', '.join(names)} (see `rnnkit datasets`)")
    loaded = datasets.load(dataset)  # a missing install raises DatasetUnavailable, naming the fix
    # A train/validation split (shakespeare_char) is joined again: the app holds out its own last fraction.
    documents = ["".join(loaded)] if isinstance(loaded, tuple) else list(loaded)
    return documents, f"built-in dataset {dataset}"


def split_documents(documents: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """Hold out the last ``fraction`` of the concatenated text; document boundaries are kept.

    >>> split_documents(["abcdefgh", "ij"], 0.3)
    (['abcdefg'], ['h', 'ij'])
    """
    total = sum(len(d) for d in documents)
    held = max(int(total * fraction), 2)
    train, val = list(documents), []
    while held > 0 and train:
        last = train.pop()
        if len(last) <= held:
            val.insert(0, last)
            held -= len(last)
        else:
            train.append(last[:-held])
            val.insert(0, last[-held:])
            held = 0
    return [d for d in train if d], val


def _encode(vocab: Vocabulary, documents: list[str]) -> list[torch.Tensor]:
    return [torch.tensor(vocab.encode(d), dtype=torch.int64) for d in documents if d]


def _resumed_inputs(out: Path, files, dataset) -> tuple[list[str] | None, str | None, TextgenSettings, dict]:
    """The data and settings a run started with: a resumed run continues on exactly those."""
    saved = read_app(out, APP)
    if (files and [str(Path(f).resolve()) for f in files] != saved["files"]) or \
            (dataset and dataset != saved["dataset"]):
        raise InputError(f"--resume continues {out} on its own data ({saved['source']}); drop --data/--dataset, "
                       "or start a new run with another --out")
    fields = {f.name for f in dataclasses.fields(TextgenSettings)}
    return saved["files"] or None, saved["dataset"], TextgenSettings(**{k: saved[k] for k in fields}), saved


def train(files: list[str] | None, out: str | Path, *, dataset: str | None = None,
          settings: TextgenSettings | None = None, config: TrainConfig | None = None, resume: bool = False,
          progress: bool = True, sample_after: int = 300) -> dict:
    """Train a language model on ``files`` (or a built-in ``dataset``, default ``python_stdlib``) into ``out``.

    With ``resume=True`` the run continues from its last checkpoint on the data, tokenisation and model
    it started with (``files``, ``dataset`` and ``settings`` may be left out; different ones are refused).
    Returns the final metrics: validation nats, bits and perplexity per token, and the sample printed at
    the end (``sample_after`` tokens; 0 for none).
    """
    from rnnkit.models import SequenceTagger

    config, out, saved = config or TrainConfig(), Path(out), None
    if resume and (out / "app.json").exists():
        files, dataset, settings, saved = _resumed_inputs(out, files, dataset)
        # The lanes of the text depend on the batch size, so a resumed run keeps its own.
        config = dataclasses.replace(config, batch_size=saved.get("batch_size", config.batch_size))
    settings = settings or TextgenSettings()
    if not files and not dataset:
        dataset = "python_stdlib"
    files = [str(Path(f).resolve()) for f in files] if files else None
    documents, source = load_documents(files, dataset, settings.encoding)
    train_docs, val_docs = split_documents(documents, settings.val_fraction)
    if saved is not None:
        vocab = Vocabulary.load(out / "vocab.json")
    else:
        vocab = Vocabulary.build(train_docs, level=settings.level, min_freq=settings.min_freq,
                                 max_size=settings.max_vocab or None)
    if len(vocab) <= 4:
        raise InputError(f"the training text of {source} has no tokens left after min_freq={settings.min_freq}")
    train_ids, val_ids = _encode(vocab, train_docs), _encode(vocab, val_docs)
    train_tokens, val_tokens = sum(len(t) for t in train_ids), sum(len(t) for t in val_ids)
    batch = config.batch_size
    if train_tokens < batch * (settings.chunk_length + 1):
        raise InputError(f"{source} has {train_tokens:,} training tokens, too few for batch_size {batch} x "
                       f"chunk_length {settings.chunk_length}; lower --batch-size or --chunk-length")
    if saved is not None and (train_tokens, val_tokens) != (saved["train_tokens"], saved["val_tokens"]):
        raise InputError(f"the data of {out} changed since the run started ({saved['train_tokens']:,} training "
                       f"tokens then, {train_tokens:,} now); start a new run with another --out")
    val_batch = max(1, min(batch, val_tokens // (settings.chunk_length + 1)))
    train_data = StreamBatches(train_ids, batch, settings.chunk_length)
    val_data = StreamBatches(val_ids, val_batch, settings.chunk_length)
    model_fields = {k: getattr(settings, k) for k in ("cell", "hidden_size", "num_layers", "dropout", "embedding_dim")}
    model = SequenceTagger(vocab_size=len(vocab), output_size=0, **model_fields)
    description = {**dataclasses.asdict(settings), "source": source, "vocab_size": len(vocab),
                   "train_tokens": train_tokens, "val_tokens": val_tokens, "dataset": None if files else dataset,
                   "files": files or [], "val_batch_size": val_batch, "batch_size": batch}
    if saved is None:  # the vocabulary first: an app.json promises a complete run directory to resume
        if launched_rank() == 0:
            out.mkdir(parents=True, exist_ok=True)
            vocab.save(out / "vocab.json")
        write_app(out, APP, description)
    if progress and launched_rank() == 0:
        print(f"textgen: {source}: {train_tokens:,} training and {val_tokens:,} validation {settings.level}s, "
              f"vocabulary {len(vocab)}; {settings.cell.upper()}({settings.hidden_size}) x {settings.num_layers}, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters", file=sys.stderr)
    trainer = Trainer(model, train_data, config=config, val_data=val_data, run_dir=out, progress=progress,
                      model_config={"kind": "SequenceTagger", **model_fields, "vocab_size": len(vocab)})
    trainer.fit(resume=resume)
    finish_training(trainer, model, out, vocab)
    metrics = language_model_metrics(trainer.evaluate(val_data)["val_loss"], settings.level)
    if sample_after and trainer.process.is_main:
        metrics["sample"] = "".join(sample(out, prime=None, length=sample_after, seed=config.seed))
    if trainer.process.is_main:
        write_json_atomic(out / "results.json", metrics)
    return metrics


def language_model_metrics(nats: float, level: str) -> dict:
    """Loss per token in nats and bits, and perplexity; names say char or word."""
    unit = "char" if level == "char" else "word"
    return {f"val_nats_per_{unit}": nats, f"val_bits_per_{unit}": nats / math.log(2),
            "val_perplexity": math.exp(min(nats, 700))}


def load_run(run: str | Path):
    """The trained model (evaluation mode), its vocabulary and the run's settings."""
    return load_trained(run, APP)


def sample(run: str | Path, *, prime: str | None = None, length: int = 500, temperature: float = 0.8,
           top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> Iterator[str]:
    """Stream generated text piece by piece (the prime itself is not repeated)."""
    from rnnkit.sampling import stream

    model, vocab, settings = load_run(run)
    if prime:
        ids = vocab.encode(prime)
    else:
        ids = [vocab.token_to_id("\n")] if "\n" in vocab else [vocab.token_to_id(vocab.tokens[4])]
    if not ids:
        raise InputError("--prime has no tokens the model knows")
    space = " " if settings["level"] == "word" and prime else ""  # words after a prime need a separator
    for token in stream(model, ids, max_new_tokens=length, temperature=temperature, top_k=top_k, top_p=top_p,
                        seed=seed):
        piece = vocab.decode([token], skip_special=True, stop_at_eos=False)
        yield space + piece if piece else piece
        space = " " if settings["level"] == "word" else ""


def evaluate(run: str | Path, files: list[str] | None = None, *, batch_size: int | None = None) -> dict:
    """Loss on ``files`` (default: the run's own validation text) in nats/bits per token and perplexity.

    ``batch_size`` lanes (default: as in training's validation) cut the text into contiguous streams.
    """
    model, vocab, settings = load_run(run)
    batch_size = batch_size or settings.get("val_batch_size", 16)
    if files:
        documents = [read_text(f, settings.get("encoding", "utf-8")) for f in files]
    else:
        documents, _ = load_documents(settings["files"], settings["dataset"], settings.get("encoding", "utf-8"))
        documents = split_documents(documents, settings["val_fraction"])[1]
    ids = _encode(vocab, documents)
    tokens = sum(len(t) for t in ids)
    chunk = settings["chunk_length"]
    batch_size = max(1, min(batch_size, tokens // (chunk + 1)))
    data = StreamBatches(ids, batch_size, chunk)
    trainer = Trainer(model, [], config=TrainConfig(), progress=False)
    metrics = language_model_metrics(trainer.evaluate(data)["val_loss"], settings["level"])
    metrics["tokens"] = tokens
    return metrics
