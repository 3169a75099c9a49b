"""Run directories for the serve and browser tests: written by hand (quick) or trained tiny (slow)."""

from __future__ import annotations

import dataclasses
import json
import random
import socket
import threading
import time
from pathlib import Path

import torch

from rnnkit.apps.lifecycle import APP_FILE, RUN_FORMAT
from rnnkit.data.vocab import Vocabulary
from rnnkit.models import SequenceClassifier, SequenceTagger, save_model


def _write(run: Path, app: str, settings, facts: dict, model, vocab) -> Path:
    run.mkdir(parents=True)
    (run / APP_FILE).write_text(json.dumps({"app": app, "format": RUN_FORMAT, "settings": dataclasses.asdict(settings),
                                            "train": {"seed": 0, "batch_size": 8}, "facts": facts}))
    save_model(model.eval(), run / "model", vocab)
    return run


def classify_run(root: Path) -> Path:
    """A classify run with an untrained model: enough to serve (labels and vocabulary are real)."""
    from rnnkit.apps.classify import ClassifySettings

    torch.manual_seed(0)
    vocab = Vocabulary.build(["great film awful plot"], level="word")
    model = SequenceClassifier(vocab_size=len(vocab), output_size=3, hidden_size=8, embedding_dim=8)
    return _write(root / "classify", "classify", ClassifySettings(level="word"), {"labels": ["neg", "neu", "pos"]},
                  model, vocab)


def textgen_run(root: Path) -> Path:
    from rnnkit.apps.textgen import TextgenSettings

    torch.manual_seed(0)
    vocab = Vocabulary.build(["the cat sat on a mat\n"], level="char")
    model = SequenceTagger(vocab_size=len(vocab), output_size=0, hidden_size=16, embedding_dim=8, cell="lstm")
    return _write(root / "textgen", "textgen", TextgenSettings(level="char"), {}, model, vocab)


def dna_runs(root: Path) -> dict[str, Path]:
    """Untrained dna runs of both tasks (a classifier with three labels, a language model of RNA)."""
    from rnnkit.apps import dna

    runs = {}
    for task, facts in (("classify", {"labels": ["animal", "plant", "virus"], "rna": False}),
                        ("lm", {"labels": [], "rna": True})):
        torch.manual_seed(0)
        settings = dna.DnaSettings(task=task)
        settings.model = dataclasses.replace(settings.model, hidden_size=8, embedding_dim=4)
        runs[task] = _write(root / f"dna_{task}", "dna", settings, facts, dna.build_model(settings, facts), dna.VOCAB)
    return runs


def handwriting_runs(root: Path) -> dict[str, Path]:
    """Untrained handwriting runs: a classifier of 8x8 images into three classes, a reader of digit lines
    8 pixels high."""
    from rnnkit.apps import handwriting

    runs = {}
    for task in ("classify", "lines"):
        torch.manual_seed(0)
        settings = handwriting.HandwritingSettings(task=task, beam_size=3)
        settings.model = dataclasses.replace(settings.model, hidden_size=8)
        facts = {"task": task, "mean": 0.2, "std": 0.3, "height": 8, "sizes": {}}
        vocab = None
        if task == "classify":
            facts.update(classes=["zero", "one", "two"], width=8, steps="rows", permutation=None, majority_class=0)
        else:
            vocab = Vocabulary(list(handwriting.DIGITS), level="char")
            facts["alphabet"] = handwriting.DIGITS
        model = handwriting.build_model(settings.model, facts, len(vocab) if vocab else 0)
        runs[task] = _write(root / f"handwriting_{task}", "handwriting", settings, facts, model, vocab)
    return runs


def caption_run(root: Path) -> Path:
    """An untrained captioner of 16x16 colour images (two convolution blocks: a 4x4 grid of regions)."""
    from rnnkit.apps.caption import CaptionSettings
    from rnnkit.models.captioner import Captioner

    torch.manual_seed(0)
    vocab = Vocabulary.build(["a red face", "a blue heart", "a green tree"], level="word")
    settings = CaptionSettings()
    settings.model = dataclasses.replace(settings.model, vocab_size=len(vocab), image_channels=3, hidden_size=8,
                                         embedding_dim=8, attention_size=8, conv_layers=2, conv_channels=8,
                                         max_length=6)
    facts = {"image_shape": [3, 16, 16], "vocab_size": len(vocab), "max_length": 6}
    return _write(root / "caption", "caption", settings, facts, Captioner(settings.model), vocab)


def speech_runs(root: Path) -> dict[str, Path]:
    """Untrained speech runs on 40 log-mel bands: a recogniser of three words, a character CTC transcriber."""
    from rnnkit.apps import speech

    runs = {}
    for task in ("words", "ctc"):
        torch.manual_seed(0)
        settings = speech.SpeechSettings(task=task, dataset="synthetic", unit="char")
        settings.model = dataclasses.replace(settings.model, hidden_size=8, num_layers=1)
        facts = {"task": task, "input_size": 40, "normalization": "utterance", "sizes": {}, "groups": {}}
        vocab = None
        if task == "words":
            facts.update(labels=["no", "stop", "yes"], majority_label="no")
        else:
            vocab = speech.build_vocab(settings, ["yes no"])
            facts["vocab_size"] = len(vocab)
        runs[task] = _write(root / f"speech_{task}", "speech", settings, facts, speech.build_model(settings, facts),
                            vocab)
    return runs


def wav_bytes(seconds: float = 0.5, rate: int = 16_000, seed: int = 0) -> bytes:
    """A WAV file (16-bit PCM): a 440 Hz tone under a little noise."""
    import io

    import numpy as np
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    samples = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    buffer = io.BytesIO()
    soundfile.write(buffer, samples.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def music_runs(root: Path) -> dict[str, Path]:
    """Untrained music runs: a polyphonic piano-roll model, and a melodic one over a handful of tokens."""
    from rnnkit.apps.music import MusicSettings
    from rnnkit.data import music as notation
    from rnnkit.data.vocab import BOS_ID, EOS_ID, PAD_ID
    from rnnkit.models import PianoRollModel, SequenceGenerator

    runs = {}
    for mode in ("polyphonic", "melodic"):
        torch.manual_seed(0)
        settings = MusicSettings(mode=mode, embedding_dim=4, chunk_length=32)
        settings.model = dataclasses.replace(settings.model, hidden_size=8)
        recurrent = dataclasses.asdict(settings.model)
        vocab = None
        if mode == "polyphonic":
            model = PianoRollModel(keys=notation.KEYS, **recurrent)
        else:
            notes = [notation.Note(i * 0.5, 0.5, 60 + 2 * (i % 5)) for i in range(10)]
            vocab = Vocabulary.build([" ".join(notation.melody_tokens(notes))], level="word")
            model = SequenceGenerator(vocab_size=len(vocab), embedding_dim=4, num_conditions=1, condition_size=8,
                                      bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID, max_length=32, **recurrent)
        runs[mode] = _write(root / f"music_{mode}", "music", settings, {"mode": mode, "source": "test"}, model, vocab)
    return runs


def png_bytes(array, mode: str = "L") -> bytes:
    """A uint8 array as the bytes of a PNG file."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def trained_runs(root: Path) -> dict[str, Path]:
    """Tiny real runs of the four apps (a few steps each: the tests check plumbing, not quality)."""
    from rnnkit.cli.main import main

    rng = random.Random(0)
    words = "the cat sat on a mat and the dog ran to the park while birds sang".split()
    (root / "corpus.txt").write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(200)))
    lines = ["text,label"] + [f"{rng.choice(words)} {w} film,{'pos' if w == 'great' else 'neg'}"
                              for w in rng.choices(["great", "awful"], k=120)]
    (root / "kw.csv").write_text("\n".join(lines) + "\n")
    rows = ["month,passengers"] + [f"{1950 + i // 12}-{i % 12 + 1:02d}-01,{100 + 10 * (i % 12) + i}" for i in range(120)]
    (root / "series.csv").write_text("\n".join(rows) + "\n")
    quick = ["--max-steps", "6", "--eval-every", "6", "--quiet", "--no-tensorboard"]
    commands = {
        "textgen": ["textgen", "train", "--data", str(root / "corpus.txt"), "--hidden-size", "16", "--batch-size", "8",
                    "--chunk-length", "16", "--sample-length", "0"],
        "classify": ["classify", "train", "--data", str(root / "kw.csv"), "--hidden-size", "8", "--embedding-dim", "8",
                     "--batch-size", "16"],
        "forecast": ["forecast", "train", "--data", str(root / "series.csv"), "--lookback", "12", "--horizon", "6",
                     "--hidden-size", "8"],
        "translate": ["translate", "train", "--dataset", "addition", "--digits", "2", "--examples", "300",
                      "--hidden-size", "8", "--embedding-dim", "8", "--attention-size", "8", "--batch-size", "32"],
    }
    runs = {}
    for app, command in commands.items():
        runs[app] = root / app
        assert main([*command, "--out", str(runs[app]), *quick]) == 0, app
    return runs


class LiveServer:
    """``rnnkit.serve`` on a free localhost port in a background thread (uvicorn), for real HTTP clients."""

    def __init__(self, run: Path, limits=None) -> None:
        import uvicorn

        from rnnkit.serve import create_app

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(run, limits), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
