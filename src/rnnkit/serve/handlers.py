"""What ``rnnkit serve`` knows about each application: one :class:`Handler` per app, in :data:`HANDLERS`.

A handler loads a finished run once and answers requests: ``form`` describes the inputs the page shows
(name, label, kind, default), ``result`` names the page's renderer (``stream``, ``probabilities``,
``forecast``, ``translation``, ``text``, ``caption``, ``music``, or one a new app adds to
static/app.js), and ``predict(request)`` returns JSON (``stream(request)`` yields text pieces instead
for ``result = "stream"``). Requests arrive as dicts already checked against ``form`` and the server's
:class:`Limits`; a handler raises :class:`~rnnkit.errors.InputError` for anything else it refuses (the
client gets a 422 with the line).

A new app adds one subclass here, decorated with ``@register("<app name>")``; a handler whose answer
depends on the run (a dna classifier or language model) sets ``form``/``result`` in ``__init__``.
Uploaded files (``kind: "image"`` or ``"audio"``) arrive as base64 text and are checked by
:func:`_upload` (size, image or WAV, readable) before the app's own reader sees them. Every handler
calls the app's functions on the model it loaded (``textgen.generate``, ``dna.classify_sequences`` /
``stream_bases``, ``handwriting.read_images``, ``caption.caption_images``, ``speech.recognise``,
``music.sample_model``), so the page answers exactly what the app's command line answers.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from rnnkit.errors import InputError


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond it the client gets a 4xx with the limit named."""

    max_body_bytes: int = 64_000
    max_text_chars: int = 2_000
    max_generate_tokens: int = 2_000
    max_history_rows: int = 5_000
    max_concurrent: int = 4
    max_upload_bytes: int = 2_000_000  # an uploaded image or WAV file, decoded (its base64 body is 4/3 of it)
    max_image_pixels: int = 16_000_000  # a small PNG can unpack to a huge image: refused before it is decoded


@dataclasses.dataclass(frozen=True)
class Field:
    """One input of a handler's form (and of its JSON API)."""

    name: str
    label: str
    kind: str = "text"  # text | textarea | number | integer | series | image | audio (a file, base64)
    default: object = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


HANDLERS: dict[str, type[Handler]] = {}


def register(app: str):
    """Class decorator: serve runs made by ``rnnkit <app>`` with this handler."""
    def wrap(cls):
        cls.app = app
        HANDLERS[app] = cls
        return cls
    return wrap


class Handler:
    """Base class: load the run in ``__init__``; implement ``predict`` (or ``stream``)."""

    app = ""
    title = ""
    result = "json"
    form: tuple[Field, ...] = ()

    def __init__(self, run: Path, limits: Limits) -> None:
        self.run, self.limits = run, limits

    def body_limit(self) -> int:
        """The largest request body this page takes: ``max_body_bytes``, plus the base64 of an upload."""
        uploads = any(f.kind in UPLOAD_KINDS for f in self.form)
        return self.limits.max_body_bytes + (-(-self.limits.max_upload_bytes // 3) * 4 if uploads else 0)

    def info(self) -> dict:
        return {"app": self.app, "title": self.title, "result": self.result, "run": self.run.name,
                "form": [f.to_dict() for f in self.form], "limits": dataclasses.asdict(self.limits)}

    def predict(self, request: dict) -> dict:
        raise InputError(f"the {self.app} page streams its answer: POST /api/stream")

    def stream(self, request: dict) -> Iterator[str]:
        raise InputError(f"the {self.app} page has no streamed answer: POST /api/predict")


UPLOAD_KINDS = ("image", "audio")


class UploadError(InputError):
    """A refused upload, with its HTTP status: 413 too large, 415 not an image / not a WAV file, 422 unreadable."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _upload(request: dict, name: str, limits: Limits, kind: str) -> bytes:
    """The bytes of an uploaded file sent as base64 (or a ``data:`` URL), checked to be an image or a WAV file."""
    value = request.get(name)
    if not isinstance(value, str) or not value.strip():
        raise UploadError(f"{name!r} must be the file's bytes as base64 text (or a data: URL)")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    if len(value) > -(-limits.max_upload_bytes // 3) * 4 + 4:
        raise UploadError(f"{name!r} is over the upload limit of {limits.max_upload_bytes} bytes", 413)
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{name!r} is not valid base64; send the file's bytes base64-encoded") from None
    if len(data) > limits.max_upload_bytes:
        raise UploadError(f"{name!r} is over the upload limit of {limits.max_upload_bytes} bytes", 413)
    if not data:
        raise UploadError(f"{name!r} is an empty file")
    if kind == "audio" and (data[:4] not in (b"RIFF", b"RIFX", b"RF64") or data[8:12] != b"WAVE"):
        raise UploadError(f"{name!r} is not a WAV file; convert it first (e.g. sox clip.mp3 clip.wav)", 415)
    if kind == "image":
        _check_image(data, name, limits)
    return data


def _check_image(data: bytes, name: str, limits: Limits) -> None:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.width, image.height
            image.verify()
    except UnidentifiedImageError:
        raise UploadError(f"{name!r} is not an image; send a PNG or JPEG file", 415) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UploadError(f"{name!r} is a damaged image ({error}); send a PNG or JPEG file") from None
    if size[0] * size[1] > limits.max_image_pixels:  # the header says so; nothing was decoded yet
        raise UploadError(f"{name!r} is {size[0]}x{size[1]} pixels, over the limit of {limits.max_image_pixels} "
                          "pixels; send a smaller image", 413)


@contextlib.contextmanager
def _as_file(data: bytes, suffix: str) -> Iterator[Path]:
    """The upload as a temporary file for the apps' file readers; their messages name it "the upload"."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-serve-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            yield path
        except InputError as error:
            raise InputError(str(error).replace(str(path), "the upload")) from None


def _text(request: dict, name: str, limits: Limits, *, required: bool = True) -> str:
    value = request.get(name, "")
    if not isinstance(value, str):
        raise InputError(f"{name!r} must be a string")
    if required and not value.strip():
        raise InputError(f"{name!r} is empty; give some text")
    if len(value) > limits.max_text_chars:
        raise InputError(f"{name!r} has {len(value)} characters; the limit is {limits.max_text_chars}")
    return value


def _check_length(length: int, limits: Limits) -> None:
    if length > limits.max_generate_tokens:
        raise InputError(f"'length' {length} is over the limit of {limits.max_generate_tokens} tokens")


@register("textgen")
class TextgenHandler(Handler):
    title = "Text generation"
    result = "stream"
    form = (Field("prime", "Prime", "textarea", ""),
            Field("length", "Characters or words to generate", "integer", 300, 1, None),
            Field("temperature", "Temperature (0: greedy)", "number", 0.8, 0.0, 5.0),
            Field("top_p", "Top-p (1: off)", "number", 1.0, 0.01, 1.0),
            Field("seed", "Seed (empty: random)", "integer", None, 0, 2**31 - 1))

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import textgen

        self.model, self.vocab, info = textgen.load_run(run)
        self.words = info.settings.level == "word"

    def stream(self, request: dict) -> Iterator[str]:
        from rnnkit.apps.textgen import generate

        prime = _text(request, "prime", self.limits, required=False)
        _check_length(request["length"], self.limits)
        top_p = request["top_p"] if request["top_p"] < 1 else None
        return generate(self.model, self.vocab, words=self.words, prime=prime, length=request["length"],
                        temperature=request["temperature"], top_p=top_p, seed=request.get("seed"))


@register("classify")
class ClassifyHandler(Handler):
    title = "Text classification"
    result = "probabilities"
    form = (Field("text", "Text", "textarea", "", required=True),)

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import classify

        self.classify = classify
        self.model, self.vocab, self.info_ = classify.load_run(run)

    def predict(self, request: dict) -> dict:
        text = _text(request, "text", self.limits)
        row = self.classify.predict_texts(self.model, [text], self.vocab, self.info_.settings)[0].tolist()
        labels = self.info_.facts["labels"]
        best = max(range(len(labels)), key=row.__getitem__)
        return {"label": labels[best], "probability": row[best], "probabilities": dict(zip(labels, row))}


@register("forecast")
class ForecastHandler(Handler):
    title = "Forecast"
    result = "forecast"
    form = (Field("history", "Recent history (one row per line; columns separated by commas)", "series",
                  required=True),)

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import forecast

        self.forecast = forecast
        self.model, self.info_ = forecast.load_run(run)
        self.settings = self.info_.settings
        self.columns = self.info_.facts["inputs"]
        self.example = self._example()

    def _example(self) -> list[list[float]]:
        """The end of the run's own data, as the page's starting history (empty if it cannot be read)."""
        try:
            series = self.forecast.load_series(self.settings)
        except (InputError, OSError, ValueError):
            return []
        columns = [series.names.index(c) for c in self.columns]
        return series.values[-3 * self.settings.lookback:, columns].tolist()

    def info(self) -> dict:
        info = super().info()
        info.update(columns=self.columns, targets=self.info_.facts["target_columns"],
                    lookback=self.settings.lookback, horizon=self.settings.horizon, example=self.example)
        return info

    def predict(self, request: dict) -> dict:
        import numpy as np

        from rnnkit.data.timeseries import Scaling, Series, WindowedSeries

        history = request.get("history")
        rows = [[v] if isinstance(v, (int, float)) else v for v in history] if isinstance(history, list) else None
        if not rows or not all(isinstance(r, list) and len(r) == len(self.columns) and
                               all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r) for r in rows):
            raise InputError(f"'history' must be a list of rows of {len(self.columns)} numbers ({', '.join(self.columns)})")
        if len(rows) > self.limits.max_history_rows:
            raise InputError(f"'history' has {len(rows)} rows; the limit is {self.limits.max_history_rows}")
        if len(rows) < self.settings.lookback:
            raise InputError(f"'history' has {len(rows)} rows; the model reads the last {self.settings.lookback}")
        try:
            values = np.asarray(rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64
            values = np.array([np.inf])
        if not np.isfinite(values).all():
            raise InputError("'history' holds a value that is not a finite number")
        series = Series(None, list(self.columns), values, "the request")
        settings = self.settings  # no split: only the window at the end is forecast (as `forecast predict`)
        prep = WindowedSeries(series, self.info_.facts["target_columns"], Scaling.from_dict(self.info_.facts["scaling"]),
                              settings.lookback, settings.horizon, settings.input_mode, settings.target_mode, (0, 0), {})
        forecast = self.forecast.model_forecast(self.model, prep, np.array([len(values) - 1]))[0]
        return {"targets": prep.targets, "forecast": forecast.tolist(),
                "history": values[:, [self.columns.index(t) for t in prep.targets]].tolist()}


@register("translate")
class TranslateHandler(Handler):
    title = "Translation"
    result = "translation"
    form = (Field("text", "Source text", "textarea", "", required=True),)

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import translate

        self.translate = translate
        self.model, self.vocabs, self.settings = translate.load_run(run)

    def predict(self, request: dict) -> dict:
        text = _text(request, "text", self.limits)
        source = self.translate.normalise(text, self.settings.source_level)
        ids = self.translate.encode_source(self.vocabs["source"], source, self.settings.reverse_source)
        with torch.no_grad():
            outputs, attention, tokens = self.translate.translate_pairs(self.model, self.vocabs, self.settings,
                                                                        [source], beam=1)
        source_tokens = [self.vocabs["source"].id_to_token(i) for i in ids]
        weights = attention[0].tolist() if attention[0] is not None else None
        return {"translation": outputs[0], "source_tokens": source_tokens, "output_tokens": tokens[0],
                "attention": weights}


def _sequence(request: dict, limits: Limits) -> str:
    """The request's nucleotide text: FASTA header lines (``>...``) and whitespace dropped."""
    text = _text(request, "sequence", limits)
    sequence = "".join("".join(line.split()) for line in text.splitlines() if not line.startswith(">"))
    if not sequence:
        raise InputError("'sequence' holds only FASTA headers; give the bases")
    return sequence


@register("dna")
class DnaHandler(Handler):
    """``--task classify``: class probabilities of a sequence; ``--task lm``: sampled bases, streamed."""

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import dna

        self.dna = dna
        self.model, _, self.info_ = dna.load_run(run)
        if self.info_.settings.task == "classify":
            self.title, self.result = "DNA/RNA sequence classification", "probabilities"
            self.form = (Field("sequence", "Sequence (bases, or FASTA)", "textarea", "", required=True),)
        else:
            self.title, self.result = "DNA/RNA sequence generation", "stream"
            self.form = (Field("prime", "Prime (bases to start with)", "textarea", ""),
                         Field("length", "Most bases to generate (the model may end sooner)", "integer", 200, 1, None),
                         Field("temperature", "Temperature (0: greedy)", "number", 1.0, 0.0, 5.0),
                         Field("top_p", "Top-p (1: off)", "number", 1.0, 0.01, 1.0),
                         Field("seed", "Seed (empty: random)", "integer", None, 0, 2**31 - 1))

    def predict(self, request: dict) -> dict:
        if self.result != "probabilities":
            return super().predict(request)
        sequence = _sequence(request, self.limits)
        answer = self.dna.classify_sequences(self.model, [("the request", sequence)], self.info_.facts["labels"],
                                             self.info_.settings.max_length)[0]
        return {k: answer[k] for k in ("label", "probability", "probabilities")}

    def stream(self, request: dict) -> Iterator[str]:
        if self.result != "stream":
            return super().stream(request)
        prime = "".join(_text(request, "prime", self.limits, required=False).split())
        _check_length(request["length"], self.limits)
        top_p = request["top_p"] if request["top_p"] < 1 else None
        return self.dna.stream_bases(self.model, rna=self.info_.facts["rna"], prime=prime, length=request["length"],
                                     temperature=request["temperature"], top_p=top_p, seed=request.get("seed"))


def _shown(answer: dict, result: str) -> dict:
    """An app's ``{"text"[, "probability", "probabilities"]}`` for the page's ``text`` or ``probabilities`` renderer."""
    if result == "text":
        return answer
    return {"label": answer["text"], "probability": answer["probability"], "probabilities": answer["probabilities"]}


@register("handwriting")
class HandwritingHandler(Handler):
    """An uploaded image: its class with every class's probability (``--task classify``, resized to the
    run's size), or the text of a line of digits (``--task lines``, scaled to the run's height)."""

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import handwriting

        self.handwriting = handwriting
        self.model, self.vocab, self.info_ = handwriting.load_run(run)
        facts = self.info_.facts
        if facts["task"] == "lines":
            self.title, self.result = "Handwriting: read a line", "text"
            label = f"Image of a line (scaled to {facts['height']} pixels high)"
        else:
            self.title, self.result = "Handwriting: classify an image", "probabilities"
            label = f"Image (resized to {facts['height']}x{facts['width']} pixels)"
        self.form = (Field("image", label, "image", required=True),)

    def predict(self, request: dict) -> dict:
        data = _upload(request, "image", self.limits, "image")
        with _as_file(data, ".png") as path:
            images = self.handwriting.load_user_images([path], self.info_.settings, self.info_.facts, resize=True)
        answer = self.handwriting.read_images(self.model, self.vocab, self.info_.facts, images,
                                              beam_size=self.info_.settings.beam_size)[0]
        return _shown(answer, self.result)


@register("caption")
class CaptionHandler(Handler):
    """An uploaded image (resized to the run's size) -> its caption, with each word's attention over the
    image regions (a grid of ``height >> conv_layers`` by ``width >> conv_layers``)."""

    title = "Image captioning"
    result = "caption"
    form = (Field("image", "Image", "image", required=True),
            Field("beam", "Beam size (1: greedy)", "integer", 3, 1, 10))

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import caption

        self.caption = caption
        self.model, self.vocab, self.info_ = caption.load_run(run)

    def info(self) -> dict:
        info = super().info()
        info["image_shape"] = self.info_.facts["image_shape"]
        return info

    def predict(self, request: dict) -> dict:
        data = _upload(request, "image", self.limits, "image")
        with _as_file(data, ".png") as path:
            images = self.caption.read_run_images([path], self.info_, resize=True)
        texts, words, attention = self.caption.caption_images(self.model, self.vocab, images, beam=request["beam"])
        _, height, width = self.info_.facts["image_shape"]
        layers = self.model.config.conv_layers
        return {"caption": texts[0], "words": words[0], "attention": attention[0].tolist(),
                "grid": [height >> layers, width >> layers]}


@register("speech")
class SpeechHandler(Handler):
    """An uploaded WAV clip: the word with every word's probability (``--task words``), or its
    transcription (``--task ctc``); features computed as the run's own (kept in memory, not on disk)."""

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import speech

        self.speech = speech
        self.model, self.vocab, self.info_ = speech.load_run(run)
        if self.info_.settings.dataset == "japanese_vowels":
            raise InputError(f"{run} was trained on Japanese Vowels LPC features, not audio; rnnkit serve cannot "
                             "feed it WAV files")
        if self.info_.settings.task == "ctc":
            self.title, self.result = "Speech: transcribe a clip", "text"
            self.form = (Field("audio", "WAV file", "audio", required=True),
                         Field("beam", "Beam size (1: greedy)", "integer", 1, 1, 16))
        else:
            self.title, self.result = "Speech: recognise a word", "probabilities"
            self.form = (Field("audio", "WAV file (one word)", "audio", required=True),)

    def predict(self, request: dict) -> dict:
        from rnnkit.data import audio

        data = _upload(request, "audio", self.limits, "audio")
        with _as_file(data, ".wav") as path:
            samples, rate = audio.read_wav(path)
            clip = self.speech.Utterance("the upload", "", samples=samples, rate=rate)
            frames = self.speech.prepared_frames(self.info_.settings, self.info_.facts, [clip], None)
        answer = self.speech.recognise(self.model, self.vocab, self.info_.facts, frames,
                                       beam_size=request.get("beam") or 1)[0]
        return _shown(answer, self.result)


@register("music")
class MusicHandler(Handler):
    """A sampled piece: its MIDI file (base64, for download) and its piano roll (PNG), as ``rnnkit music
    sample`` writes them (no prime: a prime names a file on the server)."""

    title = "Music generation"
    result = "music"

    def __init__(self, run: Path, limits: Limits) -> None:
        super().__init__(run, limits)
        from rnnkit.apps import music

        self.music = music
        self.model, self.vocab, self.info_ = music.load_run(run)
        melodic = self.info_.settings.mode == "melodic"
        self.form = (Field("length", "Notes to generate" if melodic else "Time steps to generate", "integer", 64, 1,
                           None),
                     Field("temperature", "Temperature (0: the likeliest choice)", "number", 1.0, 0.0, 5.0),
                     *((Field("top_p", "Top-p (1: off)", "number", 1.0, 0.01, 1.0),) if melodic else ()),
                     Field("tempo", "Tempo (beats per minute)", "number", 100.0, 20.0, 400.0),
                     Field("seed", "Seed (empty: random)", "integer", None, 0, 2**31 - 1))

    def predict(self, request: dict) -> dict:
        _check_length(request["length"], self.limits)
        top_p = request.get("top_p")
        with tempfile.TemporaryDirectory(prefix="rnnkit-serve-") as folder:
            answer = self.music.sample_model(
                self.model, self.vocab, self.info_.settings, Path(folder) / "sample.mid", length=request["length"],
                temperature=request["temperature"], top_p=top_p if top_p is not None and top_p < 1 else None,
                seed=request.get("seed"), tempo=request["tempo"])
            files = {key: base64.b64encode(Path(answer[key]).read_bytes()).decode("ascii") for key in ("midi", "png")}
        return {**files, "notes": answer["notes"], "seconds": answer["seconds"]}
