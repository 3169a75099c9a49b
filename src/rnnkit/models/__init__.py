"""Task models for the four patterns of recurrent networks, their decoding and saving.

- one-to-one: :class:`OneToOne` (the feed-forward baseline)
- one-to-many: :class:`SequenceGenerator`
- many-to-one: :class:`SequenceClassifier` (classification or regression); :class:`ClassifierEnsemble`
  averages several of them
- many-to-many, aligned: :class:`SequenceTagger` (taggers, language models, per-step forecasts);
  :class:`PianoRollModel` (independent Bernoulli outputs per step: polyphonic music)
- many-to-many, encoder-decoder: :class:`Seq2Seq`
- one-to-many with attention over image regions: :class:`Captioner` (image captioning)
- many-to-many, unaligned (CTC): :class:`CTCRecognizer`
- a language model's memory of the text it has just read: :class:`ContinuousCache`
"""

from rnnkit.models.attention import AdditiveAttention, Attention, AttentionPooling, DotAttention, GeneralAttention
from rnnkit.types import IGNORE_INDEX, ModelOutput
from rnnkit.models.cache import ContinuousCache
from rnnkit.models.captioner import Captioner, CaptionerConfig
from rnnkit.models.classifier import (
    ClassifierEnsemble, ClassifierEnsembleConfig, SequenceClassifier, SequenceClassifierConfig,
)
from rnnkit.models.ctc import CTCRecognizer, CTCRecognizerConfig
from rnnkit.models.decoding import Decoded, beam_search, greedy_decode, length_penalty
from rnnkit.models.feedforward import OneToOne, OneToOneConfig
from rnnkit.models.generator import SequenceGenerator, SequenceGeneratorConfig
from rnnkit.models.pianoroll import PianoRollModel, PianoRollModelConfig
from rnnkit.models.io import MODEL_CLASSES, load_model, load_vocab, save_model
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig, Seq2SeqState
from rnnkit.models.tagger import SequenceTagger, SequenceTaggerConfig

__all__ = [
    "ModelOutput", "IGNORE_INDEX",
    "OneToOne", "OneToOneConfig",
    "SequenceGenerator", "SequenceGeneratorConfig",
    "SequenceClassifier", "SequenceClassifierConfig", "ClassifierEnsemble", "ClassifierEnsembleConfig",
    "SequenceTagger", "SequenceTaggerConfig",
    "Seq2Seq", "Seq2SeqConfig", "Seq2SeqState",
    "PianoRollModel", "PianoRollModelConfig",
    "Captioner", "CaptionerConfig",
    "CTCRecognizer", "CTCRecognizerConfig",
    "Attention", "AdditiveAttention", "DotAttention", "GeneralAttention", "AttentionPooling", "ContinuousCache",
    "Decoded", "greedy_decode", "beam_search", "length_penalty",
    "save_model", "load_model", "load_vocab", "MODEL_CLASSES",
]
