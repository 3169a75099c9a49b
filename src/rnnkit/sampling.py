"""Sampling from language models and generators: temperature, top-k, top-p, streaming.

Given next-token logits ``z``, sampling draws from ``softmax(z / T)`` after optional filtering:

- ``top_k``: keep the ``k`` largest logits (Fan et al. 2018);
- ``top_p`` (nucleus, Holtzman et al. 2020): keep the smallest set of most probable tokens whose
  probabilities sum to at least ``p``; the most probable token is always kept.

Filters apply in this order: temperature, then top-k, then top-p on the distribution renormalised
over the top-k survivors (the order of Hugging Face's logits warpers).

``temperature=0`` means arg-max (greedy). :func:`stream` runs a priming prefix through the model
once, in one call (``model.prime``), then feeds each sampled token with ``model.step``, carrying
the recurrent state: the prefix is never re-run (min-char-rnn's and nanoGPT's sample loops).
Models: :class:`~rnnkit.models.SequenceTagger` (language model; state ``None`` starts from zeros),
:class:`~rnnkit.models.SequenceGenerator` (state from ``model.initial_state(condition)``, prefix
starting with ``BOS``) and :class:`~rnnkit.models.Seq2Seq` (state from ``model.encode(source)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F


def _check(temperature, top_k, top_p) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


def filter_logits(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> Tensor:
    """Logits ``z / T`` with everything outside the top-k / top-p set at ``-inf``.

    Args:
        logits: ``(..., vocab)``.
        temperature: ``T > 0`` (use :func:`sample_next` for ``T = 0``). top_k, top_p: see the module docstring.

    >>> filter_logits(torch.tensor([1.0, 3.0, 2.0, 0.0]), top_k=2)
    tensor([-inf, 3., 2., -inf])
    """
    _check(temperature, top_k, top_p)
    if temperature == 0:
        raise ValueError("filter_logits needs temperature > 0; temperature=0 (greedy) is handled by sample_next")
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (so the first one always stays)
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Draw one token per row of ``logits`` ``(batch, vocab)``; ``temperature=0`` takes the arg-max."""
    _check(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.double(), temperature=temperature, top_k=top_k, top_p=top_p).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class TokenStream:
    """Iterator over sampled tokens that carries the model's state; made by :func:`stream`.

    Attributes:
        state: the model state after the prefix and every yielded token *except the last one*, which
            has not been fed yet; continue with ``stream(model, [last], state=s.state)``.
        tokens: every token yielded so far.
    """

    def __init__(self, model, prefix: Tensor, state, *, max_new_tokens: int, temperature: float,
                 top_k: int | None, top_p: float | None, seed: int | None, eos_id: int | None, pad_id: int,
                 unbatched: bool, suppress: Sequence[int] = ()) -> None:
        _check(temperature, top_k, top_p)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        self.model, self.prefix, self.state = model, prefix, state
        self.max_new_tokens, self.eos_id, self.pad_id, self.unbatched = max_new_tokens, eos_id, pad_id, unbatched
        self.options = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        self.generator = None if seed is None else torch.Generator(device=prefix.device).manual_seed(seed)
        self.suppress = _suppressed(suppress, prefix.device)
        self.tokens: list = []
        self._last: Tensor | None = None
        self._finished = torch.zeros(prefix.shape[0], dtype=torch.bool, device=prefix.device)

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        # Without eos_id no row ever finishes: skip reading the flags back (a sync per token on a GPU).
        if len(self.tokens) >= self.max_new_tokens or (self.eos_id is not None and bool(self._finished.all())):
            raise StopIteration
        with torch.no_grad():
            if self._last is None:
                logits, self.state = self.model.prime(self.prefix, self.state)
            else:
                logits, self.state = self.model.step(self._last, self.state)
            if self.suppress is not None:
                logits = logits.index_fill(-1, self.suppress, float("-inf"))
            token = sample_next(logits, generator=self.generator, **self.options)
        emitted = token
        if self.eos_id is not None:
            emitted = torch.where(self._finished, torch.full_like(token, self.pad_id), token)
            self._finished |= token == self.eos_id
        self._last = token
        result = int(emitted[0]) if self.unbatched else emitted
        self.tokens.append(result)
        return result


def _suppressed(ids, device) -> Tensor | None:
    ids = list(ids)
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
        raise ValueError(f"suppress must be token ids (integers >= 0), got {ids!r}")
    return torch.tensor(sorted(set(ids)), dtype=torch.int64, device=device) if ids else None


def _as_prefix(prefix, device) -> tuple[Tensor, bool]:
    if isinstance(prefix, Tensor):
        if prefix.dim() not in (1, 2) or prefix.is_floating_point() or prefix.shape[-1] == 0:
            raise ValueError(f"prefix must be non-empty token ids of shape (P,) or (batch, P), got "
                             f"{prefix.dtype} of shape {tuple(prefix.shape)}")
        return (prefix.long().unsqueeze(0), True) if prefix.dim() == 1 else (prefix.long(), False)
    if isinstance(prefix, Sequence) and prefix and all(isinstance(t, int) and not isinstance(t, bool) for t in prefix):
        return torch.tensor([list(prefix)], dtype=torch.int64, device=device), True
    raise ValueError(f"prefix must be a non-empty list of token ids or an integer tensor, got {prefix!r}; "
                     "a language model needs at least one token to start from (e.g. [BOS_ID])")


class FastStep:
    """The single-step path of a left-to-right language model (:class:`~rnnkit.models.SequenceTagger`).

    Generating spends its time on one token at a time; the general ``model.step`` pays per call for
    what a sequence needs (input checks that read the ids back, lengths, the backend's choice, stacking
    and packing). This object does only the per-token work, with the model's own parameters: the
    embedding row, each layer's step (torch's fused cell kernel for the LSTM/GRU/RNN cells, the cell's
    ``generation_step`` where it has one (minGRU/minLSTM: the engine's step kernel), its own
    ``input_projection`` + ``recurrence`` for the others) and the output layer. It takes and returns
    the state in torch.nn layout like ``model.step``, and its logits equal ``model.step``'s
    (tests/test_sampling.py). ``prime`` runs the prefix through the model itself, in one call.

    Use :meth:`of`, which returns ``None`` for a model it does not cover (bidirectional, feature inputs,
    zoneout, training mode); :func:`stream` then uses the model's own ``step``.
    """

    _KERNELS = {"LSTM": torch.lstm_cell, "GRU": torch.gru_cell, "RNN_TANH": torch.rnn_tanh_cell,
                "RNN_RELU": torch.rnn_relu_cell}

    def __init__(self, model) -> None:
        layer = model.encoder.rnn
        self.model, self.layer = model, layer
        self.cell, self.options = layer.cell_type, layer.step_options()
        self.kernel = self._KERNELS.get(layer.cell_type.torch_kernel(self.options)) if not layer.proj_size else None
        self.num_states = layer.cell_type.num_states
        self.generation_step = getattr(layer.cell_type, "generation_step", None)
        # The parameter tensors themselves (load_state_dict and optimizers update them in place).
        self.groups = layer.parameter_groups()
        self.weights = [tuple(group.values()) for group in self.groups]
        self.embedding, self.head = model.encoder.embedding.weight, model.head

    @classmethod
    def of(cls, model) -> FastStep | None:
        from rnnkit.models import SequenceTagger

        if type(model) is not SequenceTagger or model.training or model.config.vocab_size == 0:
            return None
        layer = model.encoder.rnn
        if layer.bidirectional or layer.zoneout or not isinstance(layer.backend, str):
            return None
        return cls(model)

    def parameters(self):
        return self.model.parameters()

    def prime(self, tokens: Tensor, state=None):
        return self.model.prime(tokens, state)

    def step(self, tokens: Tensor, state=None) -> tuple[Tensor, object]:
        """``tokens`` ``(batch,)`` -> ``(logits (batch, vocab), state)``, as ``model.step``."""
        x = self.embedding[tokens]
        if state is None:
            zeros = x.new_zeros(self.layer.num_layers, x.shape[0], self.layer.hidden_size)
            state = (zeros, zeros) if self.num_states == 2 else zeros
        parts = state if isinstance(state, tuple) else (state,)
        finals = []
        for k, weights in enumerate(self.weights):
            if self.kernel is torch.lstm_cell:
                current = self.kernel(x, (parts[0][k], parts[1][k]), *weights)
            elif self.kernel is not None:
                current = (self.kernel(x, parts[0][k], *weights),)
            elif self.generation_step is not None:  # a cell's own step kernel (minGRU/minLSTM: the engine's)
                current = self.generation_step(self.cell.input_projection(x, self.groups[k]),
                                               tuple(p[k] for p in parts))
            else:
                params = self.groups[k]
                current = self.cell.recurrence(self.cell.input_projection(x, params), tuple(p[k] for p in parts),
                                               params, **self.options)
            finals.append(current)
            x = current[0]
        if len(finals) == 1:
            new = tuple(part.unsqueeze(0) for part in finals[0])
        else:
            new = tuple(torch.stack([f[i] for f in finals]) for i in range(self.num_states))
        return F.linear(x, self.head.weight, self.head.bias), (new if self.num_states == 2 else new[0])


class WithCache:
    """A language model sampled with a continuous cache: ``prime`` and ``step`` give the log-probabilities of
    ``(1 - mix) p_model + mix p_cache`` (:class:`~rnnkit.models.ContinuousCache`), so temperature and the
    filters act on the mixture. The cache remembers the prefix and every token fed since, one memory per row.

    ``model``: a language model with a ``head`` layer (:class:`~rnnkit.models.SequenceTagger`), in evaluation mode.
    """

    def __init__(self, model, *, size: int, theta: float, mix: float) -> None:
        from rnnkit.models import ContinuousCache

        self.model, self.cache = model, ContinuousCache(size, theta, mix)
        self._pending: Tensor | None = None  # the last output, whose next token is the next one fed

    def parameters(self):
        return self.model.parameters()

    def _run(self, method, tokens: Tensor, state):
        from rnnkit.models.cache import head_inputs

        with head_inputs(self.model) as seen:
            logits, state = method(tokens, state)
        return logits, state, seen[-1]

    def _mixed(self, logits: Tensor, features: Tensor) -> Tensor:
        from rnnkit.models.cache import mixed_log_probability

        cached, held = self.cache.distribution(features, logits.shape[-1])
        return mixed_log_probability(logits.double().log_softmax(dim=-1), cached, held.unsqueeze(-1), self.cache.mix)

    def prime(self, tokens: Tensor, state=None):
        """Start a new text: the memory is emptied, then holds the prime."""
        self.cache.clear()
        logits, state, features = self._run(self.model.prime, tokens, state)
        self.cache.remember(features[:, :-1], tokens[:, 1:])
        self._pending = features[:, -1]
        return self._mixed(logits, self._pending), state

    def step(self, tokens: Tensor, state=None):
        self.cache.remember(self._pending.unsqueeze(1), tokens.unsqueeze(1))
        logits, state, features = self._run(self.model.step, tokens, state)
        self._pending = features[:, -1]
        return self._mixed(logits, self._pending), state


def stream(model, prefix, *, state=None, max_new_tokens: int = 100, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
           eos_id: int | None = None, pad_id: int = 0, suppress: Sequence[int] = (), fast: bool = True) -> TokenStream:
    """Sample tokens one at a time, carrying the recurrent state.

    Args:
        model: an object with ``prime(tokens (batch, P), state)`` and ``step(tokens (batch,), state)``,
            both returning ``(logits, state)``.
        prefix: priming tokens: a list of ids (yields ints) or a ``(P,)`` / ``(batch, P)`` tensor
            (yields ``(batch,)`` tensors). Run through the model once.
        state: the state before the prefix (``None``: the model's default).
        max_new_tokens: most tokens to yield. temperature, top_k, top_p: see the module docstring.
        seed: seeds a private ``torch.Generator``; the same seed gives the same tokens.
        eos_id: stop once every row has emitted it (rows that finished earlier yield ``pad_id``).
        suppress: token ids never drawn (their logits become ``-inf`` before temperature and filtering),
            e.g. padding and unknown-token markers that mean nothing in generated text.
        fast: step a language model through :class:`FastStep` (same logits, less per-token overhead)
            when it covers the model.

    >>> from rnnkit.models import SequenceTagger
    >>> lm = SequenceTagger(vocab_size=10, output_size=0, hidden_size=8).eval()
    >>> tokens = list(stream(lm, [2, 5], max_new_tokens=4, seed=0, top_k=3))
    >>> len(tokens), tokens == list(stream(lm, [2, 5], max_new_tokens=4, seed=0, top_k=3))
    (4, True)
    """
    device = next(model.parameters()).device if hasattr(model, "parameters") else torch.device("cpu")
    prefix, unbatched = _as_prefix(prefix, device)
    if fast:
        model = FastStep.of(model) or model
    return TokenStream(model, prefix, state, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                       top_p=top_p, seed=seed, eos_id=eos_id, pad_id=pad_id, unbatched=unbatched,
                       suppress=suppress)


def generate(model, prefix, **options):
    """The prefix followed by the sampled tokens: a list for a list prefix, else a ``(batch, P + N)`` tensor.

    Takes :func:`stream`'s keyword arguments.
    """
    tokens = stream(model, prefix, **options)
    generated = list(tokens)
    if tokens.unbatched and not isinstance(prefix, Tensor):
        return list(prefix) + generated
    full = torch.cat([tokens.prefix, *(t.reshape(-1, 1) for t in generated)], dim=1) if generated else tokens.prefix
    return full[0] if tokens.unbatched else full
