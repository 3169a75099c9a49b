"""Many-to-one: a sequence in, one prediction out (classification or regression).

The recurrent outputs are summarised into one vector, always over the valid steps only:

- ``last``: the final state of each direction: the forward direction at the last valid step and,
  when bidirectional, the backward direction at step 0 (both are the layer's ``h_n`` under ``lengths``);
- ``mean``: ``(1/n) sum_{t<n} o_t``; ``max``: the element-wise ``max_{t<n} o_t``;
- ``max_mean``: ``[max_{t<n} o_t ; (1/n) sum_{t<n} o_t]`` (the two concatenated, twice the features);
- ``attention``: ``sum_t a_t o_t`` with ``a = softmax(v^T tanh(W o_t + b))`` over valid steps.

With ``subword_buckets > 0`` the model reads words and their characters together: each step's input is
``e_w + (1/|G_w|) sum_{g in G_w} z_g``, the word's embedding plus the mean vector of its hashed character
n-grams ``G_w`` (fastText's subword vectors, :mod:`rnnkit.data.subwords`), so an unknown word (``e_<unk>``)
still carries its spelling. The n-gram ids come in as ``subwords``, ``(batch, T, grams)``.
``word_dropout`` replaces tokens by ``<unk>`` while training (Iyyer et al. 2015), so that the model learns
to read a word it does not know: from its spelling, or from the words around it.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.data.vocab import SPECIALS, UNK_ID
from rnnkit.models.attention import AttentionPooling
from rnnkit.types import ModelOutput
from rnnkit.models.common import (
    TASKS, SequenceEncoder, SequenceInputConfig, SubwordEmbedding, build_config, check_non_negative_int,
    classification_loss, option, regression_loss,
)

SUMMARIES = ("last", "mean", "max", "max_mean", "attention")
FIRST_WORD = len(SPECIALS)  # ids below are <pad>, <unk>, <bos>, <eos>: word dropout leaves them alone


@dataclasses.dataclass
class SequenceClassifierConfig(SequenceInputConfig):
    """Configuration of :class:`SequenceClassifier`."""

    summary: str = option("last", "how the sequence is summarised: 'last', 'mean', 'max', 'max_mean' "
                                         "(both concatenated) or 'attention'")
    attention_size: int = option(64, "hidden size of the attention-pooling scorer")
    bag_of_tokens: bool = option(False, "also give the head the mean of the input embeddings (a bag of tokens, "
                                        "as fastText; token inputs only) beside the recurrent summary")
    subword_buckets: int = option(0, "also read each word's characters: hash its character 3- to 6-grams into "
                                     "this many buckets and add their mean vector to the word's embedding "
                                     "(fastText's subwords; unknown words keep their spelling); 0 = words only")
    word_dropout: float = option(0.0, "while training, replace each token by <unk> (id 1) with this probability, "
                                      "so the model learns to read unknown words (from their spelling with "
                                      "subword_buckets, else from context)")
    output_size: int = option(2, "classes (classification) or output features (regression)", derived=True)
    task: str = option("classification", "'classification' (cross-entropy) or 'regression' (MSE)", derived=True)

    def validate(self) -> None:
        super().validate()
        _checks.choice("summary", self.summary, SUMMARIES)
        _checks.positive_int("attention_size", self.attention_size)
        _checks.positive_int("output_size", self.output_size)
        _checks.choice("task", self.task, TASKS)
        if not isinstance(self.bag_of_tokens, bool):
            raise ValueError(f"bag_of_tokens must be True or False, got {self.bag_of_tokens!r}")
        check_non_negative_int("subword_buckets", self.subword_buckets)
        _checks.probability("word_dropout", self.word_dropout, closed=False)


def valid_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``(batch, T, F)`` values averaged over the steps where the ``(batch, T)`` mask is true."""
    valid = mask.unsqueeze(-1).to(values.dtype)
    return (values * valid).sum(1) / valid.sum(1).clamp_min(1)


def prediction_loss(task: str, output: Tensor, targets: Tensor | None) -> Tensor | None:
    """Cross-entropy (classification) or squared error (regression) of one prediction per sequence."""
    if targets is None:
        return None
    if task == "classification":
        return classification_loss(output, targets)
    return regression_loss(output, targets.reshape(output.shape) if targets.numel() == output.numel() else targets)


class SequenceClassifier(nn.Module):
    """Recurrent encoder, a summary over the valid steps, a linear head.

    Args:
        config: a :class:`SequenceClassifierConfig`; keyword arguments override its fields.

    Shape:
        inputs: ``(batch, T)`` token ids or ``(batch, T, input_size)`` features, padded past ``lengths``.
        targets: ``(batch,)`` class ids (``IGNORE_INDEX`` skipped) or ``(batch, output_size)`` values.
        state: optional initial state in torch.nn layout.
        subwords: ``(batch, T, grams)`` character n-gram bucket ids of each token (0 = padding); required
        exactly when ``subword_buckets > 0``.
        output: ``(batch, output_size)``; ``ModelOutput.attention`` holds the ``(batch, T)`` pooling
        weights when ``summary='attention'``. The model is stateless (``state`` in the result is ``None``).

    >>> model = SequenceClassifier(vocab_size=10, hidden_size=8, bidirectional=True, output_size=3)
    >>> out = model(torch.tensor([[4, 5, 6], [7, 8, 0]]), torch.tensor([2, 0]), lengths=torch.tensor([3, 2]))
    >>> out.output.shape
    torch.Size([2, 3])
    """

    config_class = SequenceClassifierConfig

    def __init__(self, config: SequenceClassifierConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(SequenceClassifierConfig, config, overrides)
        self.encoder = SequenceEncoder(config, "SequenceClassifier")
        features = (2 if config.bidirectional else 1) * config.hidden_size if config.summary == "last" \
            else self.encoder.output_size * (2 if config.summary == "max_mean" else 1)
        if config.bag_of_tokens and not config.vocab_size:
            raise ValueError("bag_of_tokens needs token inputs (vocab_size > 0): float features have no bag")
        if config.word_dropout and not config.vocab_size:
            raise ValueError("word_dropout needs token inputs (vocab_size > 0): float features have no <unk>")
        if config.subword_buckets and not config.vocab_size:
            raise ValueError("subword_buckets needs word inputs (vocab_size > 0): float features have no spelling")
        self.subwords = SubwordEmbedding(config.subword_buckets, config.embedding_dim) \
            if config.subword_buckets else None
        self.pooling = AttentionPooling(features, config.attention_size) if config.summary == "attention" else None
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(features + (config.embedding_dim if config.bag_of_tokens else 0), config.output_size)

    def summarize(self, outputs: Tensor, state, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """The ``(batch, features)`` summary (and attention weights or ``None``)."""
        summary = self.config.summary
        if summary == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            directions = 2 if self.config.bidirectional else 1
            return torch.cat(list(h_n[-directions:]), dim=-1), None  # top layer's directions
        if summary == "attention":
            return self.pooling(outputs, mask)
        mean = valid_mean(outputs, mask) if summary != "max" else None
        if summary == "mean":
            return mean, None
        largest = outputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        return (largest, None) if summary == "max" else (torch.cat([largest, mean], dim=-1), None)

    def spelling(self, inputs: Tensor, subwords: Tensor | None) -> Tensor | None:
        """The subword vectors added to the token embeddings (``None`` for a words-only model)."""
        if self.subwords is None:
            if subwords is not None:
                raise ValueError("SequenceClassifier got subwords but has subword_buckets=0; build it with "
                                 "subword_buckets > 0 to read them, or drop the subwords")
            return None
        if subwords is None:
            raise ValueError(f"SequenceClassifier has subword_buckets={self.subwords.buckets} and needs subwords, "
                             "the (batch, T, grams) n-gram ids of each token (rnnkit.data.subwords.pad_subwords)")
        if not isinstance(inputs, Tensor) or inputs.dim() != 2:
            return None  # the encoder names what is wrong with the inputs
        return self.subwords(subwords, tuple(inputs.shape), "SequenceClassifier")

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                subwords: Tensor | None = None, **extra) -> ModelOutput:
        added = self.spelling(inputs, subwords)
        if self.training and self.config.word_dropout and isinstance(inputs, Tensor) and inputs.dim() == 2:
            drawn = torch.rand(inputs.shape, device=inputs.device) < self.config.word_dropout
            inputs = inputs.masked_fill(drawn & (inputs >= FIRST_WORD), UNK_ID)
        outputs, final, _, mask = self.encoder(inputs, lengths, state, added=added)
        summary, weights = self.summarize(outputs, final, mask)
        if self.config.bag_of_tokens:
            # A linear view of the token counts next to the recurrence: with the head this is fastText's model,
            # so the network starts from what a bag-of-n-grams baseline sees and the recurrence adds order.
            summary = torch.cat([summary, valid_mean(self.encoder.embed(inputs, added), mask)], dim=-1)
        output = self.head(self.dropout(summary))
        return ModelOutput(output, prediction_loss(self.config.task, output, targets), None, weights)


@dataclasses.dataclass
class ClassifierEnsembleConfig(SequenceClassifierConfig):
    """Configuration of :class:`ClassifierEnsemble`: every member's configuration, and how many there are."""

    members: int = option(5, "classifiers of this configuration whose predictions are averaged", derived=True)

    def validate(self) -> None:
        super().validate()
        _checks.positive_int("members", self.members)

    def member(self) -> SequenceClassifierConfig:
        """One member's configuration."""
        return SequenceClassifierConfig(**{f.name: getattr(self, f.name)
                                           for f in dataclasses.fields(SequenceClassifierConfig)})


class ClassifierEnsemble(nn.Module):
    """``members`` :class:`SequenceClassifier` of one configuration that predict together (a deep ensemble,
    Lakshminarayanan et al. 2017): the ensemble's class probabilities are the mean of theirs,
    ``p(y | x) = (1/K) sum_k p_k(y | x)`` (``output`` holds ``log p``), a regression's output the mean of
    theirs, and attention weights (``summary='attention'``) their mean.

    Members differ by their initial weights and, as rnnkit trains them, by their data order and dropout:
    each is trained on its own with its own early stopping (:func:`rnnkit.apps.lifecycle.train`), which
    averages out the choices a single small-data run makes by chance. Called with ``targets`` the loss is
    that of the mixture (``-log p``, or the mean's squared error), the measure a validation reports.

    >>> ensemble = ClassifierEnsemble(members=3, vocab_size=10, hidden_size=4, output_size=2)
    >>> probabilities = ensemble(torch.tensor([[4, 5, 6]])).output.exp()
    >>> bool(torch.allclose(probabilities.sum(-1), torch.ones(1)))
    True
    """

    config_class = ClassifierEnsembleConfig

    def __init__(self, config: ClassifierEnsembleConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = build_config(ClassifierEnsembleConfig, config, overrides)
        self.members = nn.ModuleList(SequenceClassifier(config.member()) for _ in range(config.members))

    def forward(self, inputs: Tensor, targets: Tensor | None = None, *, lengths=None, state=None,
                subwords: Tensor | None = None, **extra) -> ModelOutput:
        results = [member(inputs, lengths=lengths, state=state, subwords=subwords) for member in self.members]
        # bf16 outputs are averaged in float32; float64 stays float64
        outputs = torch.stack([r.output.to(torch.promote_types(r.output.dtype, torch.float32)) for r in results])
        if self.config.task == "classification":
            output = torch.logsumexp(outputs.log_softmax(-1), 0) - math.log(len(results))
        else:
            output = outputs.mean(0)
        weights = None if results[0].attention is None else torch.stack([r.attention for r in results]).mean(0)
        return ModelOutput(output, prediction_loss(self.config.task, output, targets), None, weights)


def classifier_or_ensemble(config: SequenceClassifierConfig,
                           members: int = 1) -> SequenceClassifier | ClassifierEnsemble:
    """A :class:`SequenceClassifier` of ``config``, or with ``members > 1`` an ensemble of that many."""
    if members == 1:
        return SequenceClassifier(config)
    return ClassifierEnsemble(ClassifierEnsembleConfig(**dataclasses.asdict(config), members=members))
