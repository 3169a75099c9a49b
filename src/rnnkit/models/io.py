"""Save a task model as one directory and load it back without executing any code.

The directory holds:

- ``config.json``: ``{"format": "rnnkit-model", "kind": <class name>, "rnnkit_version": ...,
  "config": {...}, "vocab": {name: file}}``; ``kind`` must name a class in :data:`MODEL_CLASSES`
  and ``config`` its config dataclass, which rebuilds the model;
- ``model.safetensors``: the ``state_dict`` in the safetensors format (plain tensors, no pickle);
- ``vocab.json`` (one vocabulary) or ``vocab_<name>.json`` (several, e.g. source and target).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from rnnkit._files import replace_atomically, write_json_atomic
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.captioner import Captioner
from rnnkit.models.classifier import ClassifierEnsemble, SequenceClassifier
from rnnkit.models.ctc import CTCRecognizer
from rnnkit.models.feedforward import OneToOne
from rnnkit.models.generator import SequenceGenerator
from rnnkit.models.pianoroll import PianoRollModel
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.tagger import SequenceTagger

#: Every model ``load_model`` can rebuild, by class name (the ``kind`` in config.json).
MODEL_CLASSES: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (OneToOne, SequenceGenerator, SequenceClassifier, ClassifierEnsemble, SequenceTagger,
                                  Seq2Seq, Captioner, CTCRecognizer, PianoRollModel)
}
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
_FORMAT = "rnnkit-model"


def save_model(model: nn.Module, directory: str | Path,
               vocab: Vocabulary | dict[str, Vocabulary] | None = None) -> Path:
    """Write ``model`` (and its vocabulary or vocabularies) to ``directory`` (created if needed).

    Args:
        model: an instance of a class in :data:`MODEL_CLASSES`.
        directory: target directory; existing files of the same names are overwritten.
        vocab: a :class:`~rnnkit.data.vocab.Vocabulary`, or a dict of them by name (``{"source": ...,
            "target": ...}``), or ``None``.

    Returns:
        The directory as a ``Path``.

    >>> import tempfile
    >>> from rnnkit.models import SequenceTagger
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = save_model(SequenceTagger(vocab_size=9, output_size=0, hidden_size=4), tmp)
    ...     type(load_model(tmp)).__name__
    'SequenceTagger'
    """
    from safetensors.torch import save_file

    import rnnkit

    kind = type(model).__name__
    if MODEL_CLASSES.get(kind) is not type(model):
        raise TypeError(f"save_model saves the rnnkit task models {sorted(MODEL_CLASSES)}, got {kind}")
    vocabularies = {"": vocab} if isinstance(vocab, Vocabulary) else dict(vocab or {})
    files = {}
    for name, value in vocabularies.items():
        if not isinstance(value, Vocabulary):
            raise TypeError(f"vocab {name!r} must be a rnnkit Vocabulary, got {type(value).__name__}")
        if name and (not name.isidentifier() or not name.isascii()):
            raise ValueError(f"vocabulary names must be ASCII identifiers (they name files), got {name!r}")
        files[name] = f"vocab_{name}.json" if name else "vocab.json"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    # One metadata key: safetensors keeps the metadata in a hash map whose order changes from process to
    # process, so two keys made same-seed runs write different bytes (the kind is in config.json anyway).
    # Each file is written beside its place and renamed into it, so a kill leaves the old file or the new one.
    replace_atomically(directory / WEIGHTS_FILE,
                       lambda path: save_file(tensors, str(path), metadata={"format": _FORMAT}))
    for name, value in vocabularies.items():
        replace_atomically(directory / files[name], value.save)
    config = {"format": _FORMAT, "kind": kind, "rnnkit_version": rnnkit.__version__,
              "config": dataclasses.asdict(model.config), "vocab": files}
    write_json_atomic(directory / CONFIG_FILE, config, indent=2)
    return directory


def _read_config(directory: Path) -> dict:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: not a saved rnnkit model directory "
                                "(save one with rnnkit.models.save_model)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not an rnnkit model config: expected \"format\": \"{_FORMAT}\"")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in MODEL_CLASSES:
        raise ValueError(f"{str(path)!r} names an unknown model kind {kind!r}; known kinds: {sorted(MODEL_CLASSES)}")
    if not isinstance(data.get("config"), dict) or not isinstance(data.get("vocab", {}), dict):
        raise ValueError(f"{str(path)!r}: \"config\" and \"vocab\" must be JSON objects")
    return data


def load_model(directory: str | Path) -> nn.Module:
    """Rebuild a model saved by :func:`save_model` (in eval mode); never unpickles or runs code.

    Raises:
        FileNotFoundError: a file is missing (the message names it).
        ValueError: a file is corrupt, names an unknown kind or holds weights that do not fit the config.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    directory = Path(directory)
    data = _read_config(directory)
    cls = MODEL_CLASSES[data["kind"]]
    config_class = cls.config_class
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(data["config"]) - known)
    if unknown:
        raise ValueError(f"{str(directory / CONFIG_FILE)!r}: unknown {config_class.__name__} field(s) {unknown}")
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: the model weights are missing")
    try:
        config = config_class(**data["config"])
        with torch.device("meta"):  # shapes only: an edited config cannot make it allocate
            expected = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
    except (TypeError, ValueError) as error:
        raise ValueError(f"{str(directory / CONFIG_FILE)!r} holds an invalid config: {error}") from None
    try:
        with safe_open(str(path), framework="pt") as weights:  # reads the header, not the tensors
            stored = {k: tuple(weights.get_slice(k).get_shape()) for k in weights.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{str(path)!r} is not a readable safetensors file: {error}") from None
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    wrong = [k for k in expected if k in stored and stored[k] != expected[k]]
    if missing or extra or wrong:
        raise ValueError(f"{str(path)!r} does not match the config in {CONFIG_FILE}: missing {missing}, "
                         f"unexpected {extra}, wrong shape {wrong}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{str(path)!r} is not a readable safetensors file: {error}") from None
    model = cls(config)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def load_vocab(directory: str | Path) -> Vocabulary | dict[str, Vocabulary] | None:
    """The vocabulary saved with a model: one ``Vocabulary``, a dict of them by name, or ``None``."""
    directory = Path(directory)
    files = _read_config(directory).get("vocab", {})
    vocabularies = {}
    for name, file in files.items():
        if not isinstance(file, str) or Path(file).name != file:
            raise ValueError(f"{str(directory / CONFIG_FILE)!r}: vocabulary file {file!r} must be a plain file name")
        vocabularies[name] = Vocabulary.load(directory / file)
    if not vocabularies:
        return None
    return vocabularies[""] if set(vocabularies) == {""} else vocabularies
