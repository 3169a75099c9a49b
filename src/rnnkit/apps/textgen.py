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
from typing import NamedTuple

import torch

from rnnkit.apps import lifecycle
from rnnkit.data.tables import read_text
from rnnkit.data import StreamBatches
from rnnkit.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary
from rnnkit.errors import InputError
from rnnkit.models.tagger import SequenceTagger, SequenceTaggerConfig
from rnnkit.options import flag, nested, option
from rnnkit.train import TrainConfig, cache_evaluation_loss, distributed, dynamic_evaluation_loss, evaluate_loss, native_bfloat16
from rnnkit.train.progress import reading


@dataclasses.dataclass
class TextgenSettings:
    """Where the text comes from, how it is tokenised and split, and the language model."""

    data: tuple[str, ...] = option((), "text files, each one document (none: a built-in --dataset)")
    dataset: str | None = option(None, "built-in corpus when no --data: python_stdlib (always present), shakespeare, "
                                       "shakespeare_char (see `rnnkit datasets`; default: python_stdlib)")
    level: str = option("char", "tokens: 'char' (characters) or 'word' (whitespace-separated words)",
                        choices=("char", "word"))
    min_freq: int = option(1, "keep tokens seen at least this often in the training text (others become <unk>)")
    max_vocab: int = option(0, "keep at most this many tokens, most frequent first (0: no limit)")
    val_fraction: float = option(0.1, "hold out this last fraction of the text for validation")
    chunk_length: int = option(64, "tokens per truncated-BPTT chunk")
    encoding: str = option("utf-8", "encoding of the input files")
    sample_length: int = option(300, "tokens to sample when training ends (0: none)")
    model: SequenceTaggerConfig = nested(SequenceTaggerConfig, "the language model", cell="lstm", hidden_size=512,
                                         embedding_dim=64)

    def __post_init__(self) -> None:
        self.data = tuple(self.data)
        if self.level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {self.level!r}")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.chunk_length < 2:
            raise ValueError(f"chunk_length must be >= 2, got {self.chunk_length}")
        for name in ("min_freq", "max_vocab", "sample_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.model.bidirectional:
            raise ValueError("a language model reads left to right (a backward pass would see the next token); "
                             "drop --bidirectional")


def read_document(path: str, encoding: str) -> str:
    """A text file as one document, its line ends made ``\\n`` (a Windows file's ``\\r`` is not a character the
    model should learn, nor write into its samples)."""
    return read_text(path, encoding).replace("\r\n", "\n")


def load_documents(files: list[str] | None, dataset: str | None, encoding: str = "utf-8") -> tuple[list[str], str]:
    """The training text as documents, from the user's files or a built-in corpus; and a description."""
    if files:
        return [read_document(f, encoding) for f in files], ", ".join(files)
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


def _stream(ids: list[torch.Tensor], lanes: int, chunk: int, what: str = "the validation text",
            processes: int = 1) -> tuple[StreamBatches, int, int]:
    """``(batches, lanes, tokens)`` of encoded documents: at most ``lanes`` contiguous lanes (fewer for a short
    text), a multiple of the ``processes`` that share them under torchrun."""
    tokens = sum(len(t) for t in ids)
    if max((len(t) for t in ids), default=0) < 2:
        raise InputError(f"{what} has no document of 2 or more tokens, so there is no next token to predict; "
                         "give it more text")
    lanes = min(lanes, tokens // (chunk + 1))
    lanes -= lanes % processes
    if lanes < processes:
        if processes > 1:
            raise InputError(f"{what} has {tokens:,} tokens, too few for a lane of {chunk} tokens on each of the "
                             f"{processes} processes; lower --chunk-length, or give it more text")
        lanes = 1
    return StreamBatches(ids, lanes, chunk), lanes, tokens


def hour_recipe(native_bf16: bool) -> dict:
    """``--preset hour`` for a CPU with or without bfloat16 in hardware (both measured, docs/applications.md).

    With it the recurrent models reach their floor on this text well inside the hour: the search on the held-out
    part put the LayerNormLSTM there first (8,500 steps; the LSTM needed 8,800 steps for the same floor and did no
    better with 24,500), so its steps are the preset: 1.529 nats/char in 33.6 minutes with two threads. Without bf16
    (autocast would be slower than float32) the LSTM fills the hour. The steps stay a fixed number (not minutes)
    so that a seed gives the same run; a slower CPU is told early what fits (the trainer's pace note) and the
    60-minute cap stops it anyway.
    """
    recipe = {"cell": "lstm", "hidden_size": 512, "num_layers": 2, "embedding_dim": 64, "chunk_length": 64,
              "batch_size": 32, "optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05, "schedule": "cosine",
              "warmup_steps": 100, "min_lr": 1e-4, "max_minutes": 60.0, "eval_batches": None, "ema_decay": None}
    if native_bf16:
        return recipe | {"bf16": True, "cell": "ln_lstm", "dropout": 0.35, "max_steps": 8500, "eval_every": 400,
                         "checkpoint_every": 400}
    return recipe | {"bf16": False, "dropout": 0.25, "max_steps": 5600, "eval_every": 400, "checkpoint_every": 400}


#: ``--cache-size``'s suggestion and the ``--cache-theta`` / ``--cache-mix`` defaults: the best of a grid on the
#: held-out part of Shakespeare's training text with the 2 x 768 tuning run (docs/applications.md; a cache of
#: 256 characters wanted theta 0.2, mix 0.2 there).
CACHE_SIZE, CACHE_THETA, CACHE_MIX = 16384, 0.25, 0.5
#: Sampling's ``--cache-mix`` default: a free-running sample is its own memory, and at the evaluation's 0.5 the
#: hour model's samples looped on their own characters within a line (":::: : : :"); at 0.1 they read as without.
SAMPLE_CACHE_MIX = 0.1


class Textgen(lifecycle.App):
    name = "textgen"
    report_settings = ("sample_length",)
    settings_class = TextgenSettings
    train_defaults = {"max_steps": 2000, "batch_size": 32, "lr": 3e-3, "eval_every": 250, "checkpoint_every": 250,
                      "eval_batches": 50, "schedule": "cosine", "warmup_steps": 100, "min_lr": 3e-4, "ema_decay": 0.99}
    presets = {
        "hour": {"help": "the best 60-minute recipe measured on a 2-core CPU (docs/applications.md): 2 x 512 with "
                         "dropout, AdamW and a cosine schedule; where the CPU has bfloat16 in hardware a "
                         "LayerNormLSTM under bf16 autocast (8,500 steps), else an LSTM in float32 filling the hour",
                 "values": hour_recipe(native_bfloat16())},
    }

    def normalize(self, settings: TextgenSettings) -> TextgenSettings:
        return dataclasses.replace(settings, data=tuple(str(Path(f).resolve()) for f in settings.data),
                                   dataset=None if settings.data else settings.dataset or "python_stdlib")

    def prepare(self, settings: TextgenSettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        documents, source = load_documents(list(settings.data), settings.dataset, settings.encoding)
        train_docs, val_docs = split_documents(documents, settings.val_fraction)
        vocab = Vocabulary.build(train_docs, level=settings.level, min_freq=settings.min_freq,
                                 max_size=settings.max_vocab or None)
        if len(vocab) <= 4:
            raise InputError(f"the training text of {source} has no tokens left after min_freq={settings.min_freq}")
        chunk, batch = settings.chunk_length, config.batch_size
        train_ids = _encode(vocab, train_docs)
        train_tokens = sum(len(t) for t in train_ids)
        if train_tokens < batch * (chunk + 1):
            raise InputError(f"{source} has {train_tokens:,} training tokens, too few for batch_size {batch} x "
                             f"chunk_length {chunk}; lower --batch-size or --chunk-length")
        val, val_lanes, val_tokens = _stream(_encode(vocab, val_docs), batch, chunk,
                                             processes=distributed.setup(config.device)[0].world_size)
        facts = {"source": source, "vocab_size": len(vocab), "train_tokens": train_tokens, "val_tokens": val_tokens,
                 "val_batch_size": val_lanes}
        return lifecycle.Prepared(StreamBatches(train_ids, batch, chunk), val, vocab=vocab, facts=facts)

    def build_model(self, settings: TextgenSettings, data: lifecycle.Prepared) -> SequenceTagger:
        return SequenceTagger(dataclasses.replace(settings.model, vocab_size=data.facts["vocab_size"], output_size=0))

    def describe(self, settings: TextgenSettings, data: lifecycle.Prepared, model: torch.nn.Module) -> str:
        facts, config = data.facts, settings.model
        return (f"textgen: {facts['source']}: {facts['train_tokens']:,} training and {facts['val_tokens']:,} "
                f"validation {settings.level}s, vocabulary {facts['vocab_size']}; {config.cell.upper()}"
                f"({config.hidden_size}) x {config.num_layers}, {sum(p.numel() for p in model.parameters()):,} "
                "parameters")

    def report(self, model, settings: TextgenSettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        metrics = language_model_metrics(evaluate_loss(model, data.val), settings.level)
        metrics.update(steps=fitted["step"], train_seconds=fitted["train_seconds"])
        if settings.sample_length:
            metrics["sample"] = "".join(sample(run, length=settings.sample_length, seed=0))
        return metrics


APP = Textgen()


def train(settings: TextgenSettings | None = None, config: TrainConfig | None = None, out: str | Path = "runs/textgen",
          *, resume: bool = False, progress: bool = True) -> dict:
    """Train a language model as ``settings`` say (default: the built-in ``python_stdlib`` corpus) into ``out``.

    Returns validation nats, bits and perplexity per token and (``settings.sample_length`` > 0) a sample.
    With ``resume=True`` the run continues from its last checkpoint on its own data and settings.
    """
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def language_model_metrics(nats: float, level: str) -> dict:
    """Loss per token in nats and bits, and perplexity; names say char or word."""
    unit = "char" if level == "char" else "word"
    return {f"val_nats_per_{unit}": nats, f"val_bits_per_{unit}": nats / math.log(2),
            "val_perplexity": math.exp(min(nats, 700))}


def load_run(run: str | Path):
    """The trained model (evaluation mode), its vocabulary and the run (settings, seed, data facts)."""
    return lifecycle.load_run(run, APP)


def sample(run: str | Path, *, prime: str | None = None, length: int = 500, temperature: float = 0.8,
           top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
           allow_unknown: bool = False, cache_size: int | None = None, cache_theta: float | None = None,
           cache_mix: float | None = None) -> Iterator[str]:
    """Stream generated text piece by piece (the prime itself is not repeated): :func:`generate` on the
    run's model."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise InputError(f"--temperature must be a number >= 0 (0: greedy), got {temperature}")
    model, vocab, info = load_run(run)
    return generate(model, vocab, words=info.settings.level == "word", prime=prime, length=length,
                    temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, allow_unknown=allow_unknown,
                    cache_size=cache_size, cache_theta=cache_theta, cache_mix=cache_mix)


def generate(model: torch.nn.Module, vocab: Vocabulary, *, words: bool, prime: str | None = None, length: int = 500,
             temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             allow_unknown: bool = False, cache_size: int | None = None, cache_theta: float | None = None,
             cache_mix: float | None = None) -> Iterator[str]:
    """Stream text from a loaded language model (what :func:`sample` and ``rnnkit serve`` use).

    A character-level model reads a newline before the prime, and an empty prime is that newline alone (else
    the first ordinary token): training carries the state from chunk to chunk, so a model rarely sees the
    zero state it would otherwise start from, and a well-trained one can be lost there (``make textgen``'s
    2,127-step LSTM wrote noise after "ROMEO:" from the zero state with 5 seeds of 5, prose after
    "\nROMEO:" with all 5), while a line start is where a prime usually belongs. The special tokens are never
    drawn: the training text is one stream without padding, ``<bos>`` or ``<eos>``, and ``<unk>`` (a
    rare character or word cut from the vocabulary) only with ``allow_unknown``. ``words``: the model is
    word-level, so pieces are separated by spaces. With ``cache_size`` each token is drawn from the model mixed
    with a continuous cache over the prime and the text written so far (:class:`rnnkit.sampling.WithCache`;
    ``cache_mix`` defaults to ``SAMPLE_CACHE_MIX``, less than evaluation's, as a sample is its own memory).
    The prime is checked before the first piece is asked for.
    """
    from rnnkit.sampling import WithCache, stream

    cache_theta, cache_mix = check_cache(cache_size, cache_theta, cache_mix, default_mix=SAMPLE_CACHE_MIX)

    ids = vocab.encode(prime) if prime else []
    if prime and not ids:
        raise InputError("--prime has no tokens the model knows")
    if "\n" in vocab and not words:
        ids = [vocab.token_to_id("\n")] + ids
    elif not ids:
        ids = [vocab.token_to_id(vocab.tokens[4])]
    suppress = [PAD_ID, BOS_ID, EOS_ID] + ([] if allow_unknown else [UNK_ID])
    if cache_size is not None:
        model = WithCache(model, size=cache_size, theta=cache_theta, mix=cache_mix)
    tokens = stream(model, ids, max_new_tokens=length, temperature=temperature, top_k=top_k, top_p=top_p,
                    seed=seed, suppress=suppress)
    return _pieces(tokens, vocab, words, space=" " if words and prime else "")  # words after a prime need a separator


def _pieces(tokens: Iterator[int], vocab: Vocabulary, words: bool, space: str) -> Iterator[str]:
    for token in tokens:
        piece = vocab.decode([token], skip_special=True, stop_at_eos=False)
        yield space + piece if piece else piece
        space = " " if words else ""


def evaluate(run: str | Path, files: list[str] | None = None, *, batch_size: int | None = None,
             chunk_length: int | None = None, dynamic_lr: float | None = None, dynamic_decay: float = 0.0,
             cache_size: int | None = None, cache_theta: float | None = None, cache_mix: float | None = None,
             encoding: str | None = None, progress: bool = False) -> dict:
    """Loss on ``files`` (default: the run's own validation text) in nats/bits per token and perplexity.

    ``files`` are read in ``encoding`` (default: the training files' encoding).

    ``batch_size`` lanes (default: as in training's validation) cut the text into contiguous streams of
    ``chunk_length`` tokens (default: the training chunks). With ``dynamic_lr`` the model keeps learning
    from the text as it is scored (:func:`rnnkit.train.dynamic_evaluation_loss`: one SGD step of that size
    per chunk, pulled back towards the trained weights by ``dynamic_decay``), over one lane; the saved
    model is not changed. With ``cache_size`` the fixed model also copies from the last ``cache_size`` tokens
    it has read (:func:`rnnkit.train.cache_evaluation_loss`, a continuous cache with ``cache_theta`` and
    ``cache_mix``; the defaults were chosen on held-out Shakespeare, docs/applications.md), by default over
    one lane, so that only the start of the text is read without a memory. ``progress`` shows how far the
    reading has got on stderr (a long text, a long cache or dynamic evaluation take minutes).
    """
    dynamic = dynamic_lr is not None
    if cache_size is not None and dynamic:
        raise InputError("--cache-size and --dynamic-lr are two different evaluations; choose one")
    cache_theta, cache_mix = check_cache(cache_size, cache_theta, cache_mix, scoring=True)
    if dynamic and not (math.isfinite(dynamic_lr) and dynamic_lr > 0):
        raise InputError(f"--dynamic-lr must be a number > 0, got {dynamic_lr}")
    if not (math.isfinite(dynamic_decay) and 0 <= dynamic_decay < 1):
        raise InputError(f"--dynamic-decay must be in [0, 1), got {dynamic_decay}")
    if dynamic_decay and not dynamic:
        raise InputError("--dynamic-decay only applies with --dynamic-lr; add --dynamic-lr (for example 0.1)")
    if dynamic and batch_size not in (None, 1):
        raise InputError(f"dynamic evaluation reads the text as one stream, so --batch-size must be 1 "
                         f"(got {batch_size}); leave it out")
    for name, value in (("batch_size", batch_size), ("chunk_length", chunk_length)):
        if value is not None and value < 1:
            raise InputError(f"{flag(name)} must be >= 1, got {value}")
    one_stream = dynamic or cache_size is not None
    lanes = (batch_size or 1) if one_stream else batch_size
    model, data, tokens, unknown, settings = evaluation_data(run, files, batch_size=lanes, chunk_length=chunk_length,
                                                             encoding=encoding)
    if progress:
        data = reading(data, "evaluating")
    if dynamic:
        nats = dynamic_evaluation_loss(model, data, lr=dynamic_lr, decay=dynamic_decay)
    elif cache_size is not None:
        nats = cache_evaluation_loss(model, data, size=cache_size, theta=cache_theta, mix=cache_mix)
    else:
        nats = evaluate_loss(model, data)
    metrics = language_model_metrics(nats, settings.level)
    metrics["tokens"] = tokens
    if files:  # text the model never saw may be mostly <unk>, which is easy to predict and says little
        metrics["unknown_share"] = unknown / max(tokens, 1)
        if metrics["unknown_share"] > 0.05:
            print(f"note: {metrics['unknown_share']:.0%} of the tokens of {', '.join(files)} are unknown to the model "
                  "(<unk>); the score says little about this text", file=sys.stderr)
    if dynamic:
        metrics.update(dynamic_lr=dynamic_lr, dynamic_decay=dynamic_decay)
    if cache_size is not None:
        metrics.update(cache_size=cache_size, cache_theta=cache_theta, cache_mix=cache_mix)
    return metrics


def check_cache(size: int | None, theta: float | None, mix: float | None, *, default_mix: float = CACHE_MIX,
                scoring: bool = False) -> tuple[float, float]:
    """``(theta, mix)`` with the defaults filled in, or one line naming the problem with continuous-cache settings
    that cannot work (``size`` None: no cache; ``scoring``: text is scored, so a mix of 1 would give a token the
    memory lacks probability 0)."""
    if size is None:
        if theta is not None or mix is not None:
            raise InputError("--cache-theta and --cache-mix only apply with --cache-size; add --cache-size "
                             f"(for example {CACHE_SIZE})")
        return CACHE_THETA, default_mix
    theta, mix = CACHE_THETA if theta is None else theta, default_mix if mix is None else mix
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputError(f"--cache-size must be >= 1 tokens, got {size}")
    if not (math.isfinite(theta) and theta >= 0):
        raise InputError(f"--cache-theta must be a number >= 0, got {theta}")
    if not (math.isfinite(mix) and 0 <= mix <= 1):
        raise InputError(f"--cache-mix must be in [0, 1], got {mix}")
    if scoring and mix == 1:
        raise InputError("--cache-mix must be below 1 when scoring text: at 1 a token the cache has not seen "
                         "would get probability 0 (try 0.5)")
    return theta, mix


class EvaluationData(NamedTuple):
    """What :func:`evaluate` reads: the model in evaluation mode, the text's batches, its token count, how many
    of those are ``<unk>``, and the run's settings."""

    model: SequenceTagger
    batches: StreamBatches
    tokens: int
    unknown: int
    settings: TextgenSettings


def evaluation_data(run: str | Path, files: list[str] | None = None, *, batch_size: int | None = None,
                    chunk_length: int | None = None, encoding: str | None = None) -> EvaluationData:
    """A run's model and ``files`` (default: the run's validation text) cut into ``batch_size`` contiguous lanes
    (default: as in training's validation) of ``chunk_length`` tokens (default: the training chunks), as
    :func:`evaluate` reads them."""
    model, vocab, info = load_run(run)
    settings = info.settings
    if files:
        documents = [read_document(f, encoding or settings.encoding) for f in files]
    else:
        documents, _ = load_documents(list(settings.data), settings.dataset, settings.encoding)
        documents = split_documents(documents, settings.val_fraction)[1]
    ids = _encode(vocab, documents)
    data, _, tokens = _stream(ids, batch_size or info.facts["val_batch_size"], chunk_length or settings.chunk_length,
                              what=", ".join(files) if files else "the run's validation text")
    return EvaluationData(model, data, tokens, sum(int((t == UNK_ID).sum()) for t in ids), settings)
