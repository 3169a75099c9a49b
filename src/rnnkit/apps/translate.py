"""Translation (sequence to sequence): train on source/target pairs, evaluate with BLEU and exact match,
translate with beam search.

Pairs come from a TSV file (``source<TAB>target`` per line, an optional header) or a built-in data set:
the generated ``addition`` ("535+61" -> "596", Keras' addition example) and ``reversal`` tasks, or a
``pairs`` data set of :mod:`rnnkit.datasets` (``number_words``, ``messages``). They are split into
train/validation/test with the seed; character- or word-level vocabularies are built on the train
split; a :class:`~rnnkit.models.Seq2Seq` (LSTM with Bahdanau attention by default) is trained with
:class:`~rnnkit.train.Trainer`, picking the checkpoint with the best validation exact match.

A run directory holds, besides the trainer's files, ``app.json``, ``model/`` (weights + both
vocabularies), ``splits/test.tsv``, ``results.json`` (test BLEU, chrF, exact match, examples) and
``attention.png``.

>>> pairs = addition_pairs(5, digits=2, seed=0)
>>> len(pairs), all(str(eval(s)) == t for s, t in pairs)
(5, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from rnnkit.apps import lifecycle
from rnnkit.apps.common import check_output_file, exact_match_fn
from rnnkit.data.tables import read_text
from rnnkit.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary, pad_batch, tokenize
from rnnkit.errors import InputError
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.options import nested, option
from rnnkit.train import TrainConfig, distributed
from rnnkit.train.progress import is_shown, reading
GENERATED = ("addition", "reversal")
INSTALL_BLEU = "pip install 'rnnkit[translate]' (or pip install sacrebleu)"


@dataclass
class TranslateSettings:
    """What to learn from and with which model; saved in ``app.json`` and reused by resume/evaluate/translate."""

    data: str | None = option(None, "TSV file of source<TAB>target pairs, one per line (None: use --dataset)")
    dataset: str = option("addition", "built-in pairs when --data is not given: addition, reversal, number_words, "
                                      "messages")
    encoding: str = option("utf-8", "text encoding of --data, e.g. latin-1")
    header: str = option("auto", "whether --data's first line is a header: auto, yes, no", choices=("auto", "yes", "no"))
    examples: int = option(50_000, "pairs to generate for the addition and reversal data sets")
    digits: int = option(3, "addition: largest number of digits per operand")
    language: str = option("en", "number_words / messages: target language code")
    source_level: str = option("char", "source tokens: char or word", choices=("char", "word"))
    target_level: str = option("char", "target tokens: char or word", choices=("char", "word"))
    reverse_source: bool = option(False, "feed the source backwards (Sutskever et al. 2014; Keras' addition example)")
    val_fraction: float = option(0.1, "share of the pairs held out for validation")
    test_fraction: float = option(0.1, "share of the pairs held out for the final test")
    min_freq: int = option(1, "keep tokens seen at least this often in the train split (others become <unk>)")
    drop_longer_than: int = option(0, "drop training pairs whose source or target has more than this many tokens "
                                      "(outliers that make decoding slow; validation and test keep theirs); 0: keep all",
                                   metavar="N")
    model: Seq2SeqConfig = nested(Seq2SeqConfig, "the encoder-decoder", cell="lstm", hidden_size=128,
                                  embedding_dim=32, attention="bahdanau")

    def __post_init__(self) -> None:
        if self.data is None and self.dataset not in GENERATED:
            from rnnkit.datasets import DATASETS

            pairs = [n for n, d in DATASETS.items() if d.kind == "pairs"]
            if self.dataset not in pairs:
                raise ValueError(f"unknown --dataset {self.dataset!r}; choose one of {', '.join((*GENERATED, *pairs))}"
                                 f" or pass --data FILE")
        for name in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {getattr(self, name)}")
        for name in ("examples", "digits", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.drop_longer_than < 0:
            raise ValueError(f"drop_longer_than must be >= 0 (0 keeps every pair), got {self.drop_longer_than}")


# ------------------------------------------------------------------------------------------ pairs
def addition_pairs(count: int, *, digits: int = 3, seed: int = 0) -> list[tuple[str, str]]:
    """Keras' addition task: ``('535+61', '596')``, each operand of 1..``digits`` random digits,
    no two questions with the same unordered operands (as keras-io ``examples/nlp/addition_rnn.py``)."""
    numbers = 10 ** digits
    if count > numbers * (numbers + 1) // 2 * 0.9:
        raise ValueError(f"--examples {count} is too many distinct {digits}-digit additions; use --digits "
                         f"{digits + 1} or fewer examples")
    rng, seen, pairs = random.Random(seed), set(), []
    while len(pairs) < count:
        a, b = (int("".join(rng.choice("0123456789") for _ in range(rng.randint(1, digits)))) for _ in range(2))
        if (key := (min(a, b), max(a, b))) in seen:
            continue
        seen.add(key)
        pairs.append((f"{a}+{b}", str(a + b)))
    return pairs


def reversal_pairs(count: int, *, seed: int = 0, alphabet: str = "abcdefghij",
                   lengths: tuple[int, int] = (3, 10)) -> list[tuple[str, str]]:
    """``('hbjja', 'ajjbh')``: random letter strings and their reversals."""
    rng = random.Random(seed)
    words = ("".join(rng.choice(alphabet) for _ in range(rng.randint(*lengths))) for _ in range(count))
    return [(w, w[::-1]) for w in words]


_HEADER_NAMES = {"source", "target", "src", "tgt", "input", "output", "question", "answer", "from", "to", "text",
                 "translation", "english", "french", "german", "spanish", "en", "fr", "de", "es", "it", "pt", "nl",
                 "ru", "zh", "ja", "ko", "ar", "sv", "pl", "tr", "cs", "fi", "da", "el", "he", "hi", "hu", "ro"}


def looks_like_header(fields: list[str]) -> bool:
    """``auto`` header detection: both first fields are column-like names (source/target, en/fr, ...)."""
    names = [f.strip().lower() for f in fields[:2]]
    return len(set(names)) == 2 and all(n in _HEADER_NAMES for n in names)


def read_pairs(path: str | Path, *, encoding: str = "utf-8", header: str = "auto") -> list[tuple[str, str]]:
    """``(source, target)`` per line of a TSV file; extra columns (e.g. attribution) are ignored.

    Blank lines are skipped; a line without a tab or with an empty side is an error naming the line.
    """
    lines = read_text(path, encoding).splitlines()
    pairs, start = [], 0
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and (header == "yes" or (header == "auto" and looks_like_header(lines[first].split("\t")))):
        start = first + 1
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise InputError(f"{path}, line {number}: expected source<TAB>target, found no tab: {line[:40]!r}")
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            raise InputError(f"{path}, line {number}: the {'source' if not source else 'target'} is empty")
        pairs.append((source, target))
    if not pairs:
        raise InputError(f"{path} holds no source<TAB>target pairs" + (" after the header" if start else ""))
    return pairs


def load_pairs(config: TranslateSettings, seed: int) -> list[tuple[str, str]]:
    """The pairs ``config`` names: its TSV file, a generated task or a built-in ``pairs`` data set."""
    if config.data is not None:
        return read_pairs(config.data, encoding=config.encoding, header=config.header)
    if config.dataset == "addition":
        return addition_pairs(config.examples, digits=config.digits, seed=seed)
    if config.dataset == "reversal":
        return reversal_pairs(config.examples, seed=seed)
    from rnnkit import datasets

    return [(str(s), str(t)) for s, t in datasets.load(config.dataset, language=config.language)]


def split_pairs(pairs: list, val_fraction: float, test_fraction: float, seed: int) -> tuple[list, list, list]:
    """Shuffle with ``seed`` and cut into train/validation/test (each non-empty)."""
    if len(pairs) < 10:
        raise InputError(f"only {len(pairs)} pairs; need at least 10 to split into train, validation and test")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_val, n_test = max(1, round(len(pairs) * val_fraction)), max(1, round(len(pairs) * test_fraction))
    chosen = [pairs[i] for i in order]
    return chosen[n_val + n_test:], chosen[:n_val], chosen[n_val:n_val + n_test]


def fingerprint(pairs: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------- batching
def encode_source(vocab: Vocabulary, text: str, reverse: bool) -> list[int]:
    ids = vocab.encode(text) or [vocab.token_to_id(" ")]
    return ids[::-1] if reverse else ids


class PairDataset(Dataset):
    """Pairs as id lists: the source (reversed if asked) and the target ending with ``EOS``."""

    def __init__(self, pairs, source: Vocabulary, target: Vocabulary, reverse: bool = False) -> None:
        self.items = [(encode_source(source, s, reverse), target.encode(t, add_eos=True)) for s, t in pairs]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def collate(items) -> dict:
    """Padded source and target ids with their lengths: what :class:`Seq2Seq` takes."""
    inputs, lengths = pad_batch([s for s, _ in items])
    targets, target_lengths = pad_batch([t for _, t in items])
    return {"inputs": inputs, "targets": targets, "lengths": lengths, "target_lengths": target_lengths}


# ------------------------------------------------------------------------------------- decoding
@torch.no_grad()
def decode(model, inputs: torch.Tensor, lengths: torch.Tensor, *, beam: int = 1, alpha: float = 0.6,
           max_length: int | None = None):
    """Greedy (``beam=1``) or beam-search decoding of a padded batch; a :class:`~rnnkit.models.Decoded`."""
    from rnnkit.models.decoding import beam_search, greedy_decode

    config = model.config
    device = next(model.parameters()).device
    state = model.encode(inputs.to(device), lengths)
    # <unk> stays possible: it marks a source word with no known translation, where another word would be wrong.
    limits = dict(bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID, max_length=max_length or config.max_length,
                  banned=(PAD_ID, BOS_ID))
    if beam == 1:
        return greedy_decode(model, state, **limits)
    return beam_search(model, state, beam_size=beam, alpha=alpha, **limits)


def normalise(text: str, level: str) -> str:
    return " ".join(text.split()) if level == "word" else text


def translate_pairs(model, vocabs: dict, settings: TranslateSettings, sources: list[str], *, beam: int = 1,
                    alpha: float = 0.6, batch_size: int = 256, progress: bool = False) -> tuple[list[str], list, list]:
    """Translate ``sources``; returns the texts, per text its attention ``(out, src)`` (or ``None``), and per
    text the output tokens the attention rows belong to (special tokens included, as decoded)."""
    model.eval()
    outputs, attention, tokens = [], [], []
    batches = range(0, len(sources), batch_size)
    shown = reading(batches, "translating") if progress and len(batches) > 1 else batches  # a bar on a terminal only
    for start in shown:
        chunk = sources[start:start + batch_size]
        ids = [encode_source(vocabs["source"], s, settings.reverse_source) for s in chunk]
        inputs, lengths = pad_batch(ids)
        decoded = decode(model, inputs, lengths, beam=beam, alpha=alpha)
        for row in range(len(chunk)):
            outputs.append(vocabs["target"].decode(decoded.tokens[row]))
            n_out, n_src = int(decoded.lengths[row]), len(ids[row])
            tokens.append([vocabs["target"].id_to_token(int(i)) for i in decoded.tokens[row, :n_out]])
            attention.append(None if decoded.attention is None else decoded.attention[row, :n_out, :n_src].cpu())
    return outputs, attention, tokens


def score(hypotheses: list[str], references: list[str], *, bleu: bool = True, level: str = "word") -> dict:
    """Exact match (share of identical outputs) and, with sacrebleu, corpus BLEU and chrF.

    For character-level targets BLEU counts character n-grams (sacrebleu's ``char`` tokeniser):
    word n-grams of one-word outputs such as "596" would make BLEU 0 however good the model.
    """
    if not references:
        raise InputError("nothing to evaluate: no pairs")
    result = {"examples": len(references),
              "exact_match": sum(h == r for h, r in zip(hypotheses, references)) / len(references)}
    if bleu:
        try:
            import sacrebleu
        except ImportError:
            raise InputError(f"BLEU needs sacrebleu, which is not installed: {INSTALL_BLEU}") from None
        tokenize = "char" if level == "char" else "13a"
        result["bleu"] = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize).score
        result["bleu_tokenize"] = tokenize
        result["chrf"] = sacrebleu.corpus_chrf(hypotheses, [references]).score
    return result


# ------------------------------------------------------------------------------------ training
def drop_long_pairs(train_pairs: list, settings: TranslateSettings) -> tuple[list, int]:
    """``(kept, dropped)``: the training pairs within ``drop_longer_than`` tokens on both sides (all when it is 0)."""
    limit = settings.drop_longer_than
    if not limit:
        return train_pairs, 0
    kept = [(s, t) for s, t in train_pairs if len(tokenize(s, settings.source_level)) <= limit
            and len(tokenize(t, settings.target_level)) <= limit]
    if not kept:
        raise InputError(f"--drop-longer-than {limit} drops every training pair; raise it (or 0 to keep all)")
    if len(kept) < len(train_pairs) and is_shown():
        print(f"note: --drop-longer-than {limit} dropped {len(train_pairs) - len(kept):,} of {len(train_pairs):,} "
              "training pairs", file=sys.stderr)
    return kept, len(train_pairs) - len(kept)


def build_vocabs(config: TranslateSettings, train_pairs: list) -> dict[str, Vocabulary]:
    return {"source": Vocabulary.build([s for s, _ in train_pairs], level=config.source_level,
                                       min_freq=config.min_freq),
            "target": Vocabulary.build([t for _, t in train_pairs], level=config.target_level,
                                       min_freq=config.min_freq)}


def decoding_limit(vocabs: dict, train_pairs: list) -> int:
    """The longest output decoding may emit: 1.5x the longest training target (with its end token), + 5."""
    longest = max(len(vocabs["target"].encode(t)) for _, t in train_pairs) + 1
    return int(1.5 * longest) + 5


def build_model(config: TranslateSettings, vocabs: dict, max_length: int) -> Seq2Seq:
    """A :class:`Seq2Seq` for the vocabularies, emitting at most ``max_length`` tokens when decoding."""
    return Seq2Seq(dataclasses.replace(config.model, vocab_size=len(vocabs["source"]),
                                       target_vocab_size=len(vocabs["target"]), bos_id=BOS_ID, eos_id=EOS_ID,
                                       pad_id=PAD_ID, max_length=max_length))


def write_pairs(path: Path, pairs: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")


class Translate(lifecycle.App):
    name = "translate"
    settings_class = TranslateSettings
    train_defaults = {"max_steps": 6000, "batch_size": 32, "lr": 2e-3, "eval_every": 1000, "checkpoint_every": 1000,
                      "log_every": 100, "monitor": "val_exact_match"}
    val_metrics = ("val_exact_match",)

    def normalize(self, settings: TranslateSettings) -> TranslateSettings:
        return settings if settings.data is None else dataclasses.replace(settings, data=str(Path(settings.data).resolve()))

    def prepare(self, settings: TranslateSettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        pairs = load_pairs(settings, config.seed)
        train_pairs, val_pairs, test_pairs = split_pairs(pairs, settings.val_fraction, settings.test_fraction,
                                                         config.seed)
        train_pairs, dropped = drop_long_pairs(train_pairs, settings)
        vocabs = build_vocabs(settings, train_pairs)
        source, target, reverse = vocabs["source"], vocabs["target"], settings.reverse_source
        process, device = distributed.setup(config.device)
        lengths = sorted(len(tokenize(target, settings.target_level)) for _, target in train_pairs)
        if is_shown() and lengths[-1] > 10 * max(lengths[len(lengths) // 2], 1):
            print(f"note: the longest training target has {lengths[-1]} tokens, over 10 times the median "
                  f"({lengths[len(lengths) // 2]}); decoding may run to 1.5 times its length for every sentence, which "
                  "makes validation and evaluation slow: drop such outliers with --drop-longer-than N", file=sys.stderr)
        seen = {source for source, _ in train_pairs}
        overlap = sum(source in seen for source, _ in test_pairs)
        if overlap and is_shown():  # duplicates in the file: those test scores measure memory, not translation
            print(f"note: {overlap} of the {len(test_pairs)} test pairs have a source sentence that is also in the "
                  f"training part (the data repeats sentences); results.json reports it as test_sources_in_training",
                  file=sys.stderr)
        facts = {"fingerprint": fingerprint(pairs), "vocab_size": {k: len(v) for k, v in vocabs.items()},
                 "max_length": decoding_limit(vocabs, train_pairs),
                 "pairs": {"train": len(train_pairs), "val": len(val_pairs), "test": len(test_pairs)},
                 "train_pairs_dropped": dropped}
        return lifecycle.Prepared(PairDataset(train_pairs, source, target, reverse),
                                  PairDataset(val_pairs, source, target, reverse), test=(test_pairs, overlap),
                                  vocab=vocabs, facts=facts, collate_fn=collate,
                                  metrics_fn=exact_match_fn(
                                      lambda model, batch: decode(model, batch["inputs"], batch["lengths"]),
                                      process, device))

    def build_model(self, settings: TranslateSettings, data: lifecycle.Prepared) -> Seq2Seq:
        return build_model(settings, data.vocab, data.facts["max_length"])

    def report(self, model, settings: TranslateSettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        test_pairs, overlap = data.test
        write_pairs(run / "splits" / "test.tsv", test_pairs)
        results, _ = evaluate_model(model, data.vocab, settings, test_pairs, bleu=_have_sacrebleu(True))
        results.update(steps=fitted["step"], stopped=fitted["stopped"], train_seconds=fitted["train_seconds"],
                       best_step=fitted["best_step"],
                       best_val_exact_match=fitted["best"],
                       test_sources_in_training=overlap)
        plot_attention(results["examples_shown"], run / "attention.png", settings.reverse_source)
        return results


APP = Translate()


def train(settings: TranslateSettings | None = None, config: TrainConfig | None = None,
          out: str | Path = "runs/translate", *, resume: bool = False, progress: bool = True) -> dict:
    """Train a translation model into the run directory ``out``; returns the test results.

    With ``resume=True`` the run in ``out`` continues from its last checkpoint on the data, seed and
    settings it started with (the data must be unchanged). Works under ``torchrun``.
    """
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def _have_sacrebleu(warn: bool) -> bool:
    try:
        import sacrebleu  # noqa: F401
    except ImportError:
        if warn:
            print(f"note: BLEU skipped, sacrebleu is not installed: {INSTALL_BLEU}", file=sys.stderr)
        return False
    return True


def evaluate_model(model, vocabs: dict, settings: TranslateSettings, pairs: list, *, beam: int = 1, alpha: float = 0.6,
                   bleu: bool = True, progress: bool = False, shown: int = 4) -> tuple[dict, list[str]]:
    """Translate the sources of ``pairs`` and score them against the targets: ``(scores, outputs)``;
    the scores include ``shown`` examples with their attention weights."""
    hypotheses, attention, tokens = translate_pairs(model, vocabs, settings, [s for s, _ in pairs], beam=beam,
                                                    alpha=alpha, progress=progress)
    references = [normalise(t, settings.target_level) for _, t in pairs]
    result = score(hypotheses, references, bleu=bleu, level=settings.target_level)
    result.update(beam=beam, alpha=alpha)
    source = vocabs["source"]
    result["examples_shown"] = [
        {"source": s, "reference": r, "output": h,
         "source_tokens": [source.id_to_token(i) for i in encode_source(source, s, settings.reverse_source)],
         "output_tokens": t,
         "attention": None if a is None else [[round(float(w), 4) for w in row] for row in a]}
        for (s, _), r, h, a, t in list(zip(pairs, references, hypotheses, attention, tokens))[:shown]]
    return result, hypotheses


def plot_attention(examples: list[dict], path: Path, reversed_source: bool = False) -> Path | None:
    """Heat maps of the attention weights (output tokens down, source tokens across) of a few examples."""
    examples = [e for e in examples if e.get("attention")]
    if not examples:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(examples), figsize=(3.2 * len(examples), 3.4), squeeze=False)
    for ax, example in zip(axes[0], examples):
        weights = example["attention"]
        ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(weights[0])), example["source_tokens"][:len(weights[0])], fontsize=7,
                      rotation=90 if max(map(len, example["source_tokens"])) > 2 else 0)
        ax.set_yticks(range(len(weights)), example["output_tokens"][:len(weights)], fontsize=7)
        ax.set_title(f"{example['source'][:24]} -> {example['output'][:24]}", fontsize=8)
    figure.supxlabel("source" + (" (fed reversed)" if reversed_source else ""), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# ------------------------------------------------------------------------------ using a trained run
def load_run(run: str | Path, device: str = "cpu") -> tuple:
    """``(model, vocabularies, settings)`` of a finished translate run; one-line errors otherwise."""
    model, vocabs, info = lifecycle.load_run(run, APP, device)
    if not isinstance(vocabs, dict) or set(vocabs) != {"source", "target"}:
        raise InputError(f"{Path(run) / 'model'} lacks the source and target vocabularies of a translate run")
    return model, vocabs, info.settings


def check_decoding(beam: int, alpha: float) -> None:
    if beam < 1:
        raise InputError(f"--beam must be >= 1, got {beam}")
    if alpha < 0:
        raise InputError(f"--alpha must be >= 0, got {alpha}")


def evaluate(run: str | Path, data: str | Path | None = None, *, beam: int = 1, alpha: float = 0.6,
             encoding: str = "utf-8", header: str = "auto", device: str = "cpu", bleu: bool = True,
             predictions: str | Path | None = None, progress: bool = True) -> dict:
    """BLEU, chrF and exact match of a trained run on ``data`` (a TSV file; default: the run's test split).

    ``predictions``: also write ``source<TAB>output`` per pair to this file.
    """
    check_decoding(beam, alpha)
    if predictions:
        check_output_file("--predictions", predictions)
    model, vocabs, settings = load_run(run, device)
    if bleu and not _have_sacrebleu(False):
        raise InputError(f"BLEU needs sacrebleu, which is not installed: {INSTALL_BLEU}; or pass --no-bleu")
    # The run's own test split was written as UTF-8; --encoding is for the user's file.
    pairs = read_pairs(data or Path(run) / "splits" / "test.tsv", encoding=encoding if data else "utf-8",
                       header=header if data else "no")
    result, outputs = evaluate_model(model, vocabs, settings, pairs, beam=beam, alpha=alpha, bleu=bleu,
                                     progress=progress, shown=0)
    result.pop("examples_shown")
    result["data"] = str(data) if data else "test split"
    if predictions:
        write_pairs(Path(predictions), [(s, o) for (s, _), o in zip(pairs, outputs)])
    return result


def translate(run: str | Path, texts: list[str], *, beam: int = 5, alpha: float = 0.6,
              device: str = "cpu") -> list[str]:
    """Translate ``texts`` with the model of a trained run (``beam=1``: greedy)."""
    check_decoding(beam, alpha)
    model, vocabs, settings = load_run(run, device)
    return translate_pairs(model, vocabs, settings, texts, beam=beam, alpha=alpha)[0]
