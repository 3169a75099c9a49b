"""How each task model exports: its parts (wrapper modules with tensor inputs and outputs), registered by
class name with :func:`rnnkit.export.register`. A new model adds one function here."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.export import Part, register

# ------------------------------------------------------------------------------ the parts
def _tokens_or_features(vocab_size: int, input_size: int):
    def draw(batch: int, steps: int, generator: torch.Generator) -> Tensor:
        if vocab_size:
            return torch.randint(0, vocab_size, (batch, steps), generator=generator)
        return torch.randn(batch, steps, input_size, generator=generator)
    return draw


def _lengths(batch: int, steps: int, generator: torch.Generator) -> Tensor:
    """Random lengths in [1, steps], the first row full (the padded batch is as long as its longest)."""
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    return lengths


def _states(layer, batch: int, generator: torch.Generator) -> tuple[Tensor, ...]:
    sizes = [layer.proj_size or layer.hidden_size, layer.hidden_size][: layer.cell_type.num_states]
    rows, dtype = layer.num_layers * layer.num_directions, layer.flat_weights()[0].dtype
    return tuple(0.5 * torch.randn(rows, batch, size, generator=generator).to(dtype) for size in sizes)


def _state_names(layer, suffix: str = "") -> list[str]:
    return ["h", "c"][: layer.cell_type.num_states] if not suffix else \
        [f"h{suffix}", f"c{suffix}"][: layer.cell_type.num_states]


class _LayerCall(nn.Module):
    def __init__(self, layer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths, *state):
        output, final = self.layer(x, state if len(state) > 1 else state[0], lengths=lengths)
        return (output, *(final if isinstance(final, tuple) else (final,)))


def layer_part(layer) -> Part:
    time_axis, batch_axis = (1, 0) if layer.batch_first else (0, 1)
    states = _state_names(layer)

    def example(batch, steps, generator):
        shape = (batch, steps) if layer.batch_first else (steps, batch)
        x = torch.randn(*shape, layer.input_size, generator=generator).to(layer.flat_weights()[0].dtype)
        return (x, _lengths(batch, steps, generator), *_states(layer, batch, generator))

    dynamic = {"input": {batch_axis: "batch", time_axis: "time"}, "output": {batch_axis: "batch", time_axis: "time"},
               "lengths": {0: "batch"}}
    dynamic.update({n: {1: "batch"} for n in [*(f"{s}0" for s in states), *(f"{s}_n" for s in states)]})
    return Part("model", _LayerCall(layer), ["input", "lengths", *(f"{s}0" for s in states)],
                ["output", *(f"{s}_n" for s in states)], dynamic, example)


class _Tagger(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths, *state):
        result = self.model(inputs, lengths=lengths, state=state if len(state) > 1 else state[0])
        final = result.state if isinstance(result.state, tuple) else (result.state,)
        return (result.output, *final)


@register("SequenceTagger")
def _tagger_parts(model) -> list[Part]:
    """Language models and taggers: ``(inputs, lengths, h[, c]) -> (output, h_n[, c_n])``; a text generator
    feeds one token at a time (time = 1) and carries the state, or a whole prime at once."""
    layer, config = model.encoder.rnn, model.config
    draw, states = _tokens_or_features(config.vocab_size, config.input_size), _state_names(layer)

    def example(batch, steps, generator):
        return (draw(batch, steps, generator), _lengths(batch, steps, generator), *_states(layer, batch, generator))

    dynamic = {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "output": {0: "batch", 1: "time"}}
    dynamic.update({n: {1: "batch"} for n in [*states, *(f"{s}_n" for s in states)]})
    return [Part("model", _Tagger(model), ["inputs", "lengths", *states], ["output", *(f"{s}_n" for s in states)],
                 dynamic, example)]


@register("PianoRollModel")
def _pianoroll_parts(model) -> list[Part]:
    """Music: ``(frames (batch, time, keys) 0/1 floats, lengths, h[, c]) -> (logits per key, h_n[, c_n])``;
    generate by feeding one frame at a time (time = 1) and drawing each key from its sigmoid."""
    layer, keys, states = model.rnn, model.config.keys, _state_names(model.rnn)

    def example(batch, steps, generator):
        frames = (torch.rand(batch, steps, keys, generator=generator) < 0.2).float()
        return (frames, _lengths(batch, steps, generator), *_states(layer, batch, generator))

    dynamic = {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "output": {0: "batch", 1: "time"}}
    dynamic.update({n: {1: "batch"} for n in [*states, *(f"{s}_n" for s in states)]})
    return [Part("model", _Tagger(model), ["inputs", "lengths", *states], ["output", *(f"{s}_n" for s in states)],
                 dynamic, example)]


class _Classifier(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths, subwords=None):
        result = self.model(inputs, lengths=lengths, subwords=subwords)
        return result.output if result.attention is None else (result.output, result.attention)


@register("SequenceClassifier")
@register("ClassifierEnsemble")
def _classifier_parts(model) -> list[Part]:
    """Classifiers and forecasters: ``(inputs, lengths) -> output`` (plus ``attention`` with attention pooling);
    a classifier that reads subwords takes ``subwords`` (batch, time, grams) n-gram ids as a third input. An
    ensemble is one graph whose ``output`` is the log of its members' mean probabilities."""
    config = model.config
    draw = _tokens_or_features(config.vocab_size, config.input_size)
    inputs = ["inputs", "lengths"] + (["subwords"] if config.subword_buckets else [])
    outputs = ["output"] + (["attention"] if config.summary == "attention" else [])
    dynamic = {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "output": {0: "batch"},
               "attention": {0: "batch", 1: "time"}, "subwords": {0: "batch", 1: "time", 2: "grams"}}

    def example(batch, steps, generator):
        drawn = (draw(batch, steps, generator), _lengths(batch, steps, generator))
        if not config.subword_buckets:
            return drawn
        return (*drawn, torch.randint(0, config.subword_buckets + 1, (batch, steps, 5), generator=generator))

    return [Part("model", _Classifier(model), inputs, outputs,
                 {k: v for k, v in dynamic.items() if k in [*inputs, *outputs]}, example)]


class _Encoder(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths):
        state = self.model.encode(inputs, lengths)
        hidden = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        return (*hidden, state.keys, state.mask)


class _DecoderStep(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens, *rest):
        from rnnkit.models.seq2seq import Seq2SeqState

        hidden, keys, mask = rest[:-2], rest[-2], rest[-1]
        logits, state = self.model.step(tokens, Seq2SeqState(hidden if len(hidden) > 1 else hidden[0], keys, mask))
        new = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        weights = state.attention if state.attention is not None else torch.zeros_like(mask, dtype=logits.dtype)
        return (logits, *new, weights)


@register("Seq2Seq")
def _seq2seq_parts(model) -> list[Part]:
    """The translator: ``encoder (inputs, lengths) -> (h[, c], keys, mask)`` and one decoder step
    ``decoder_step (tokens, h[, c], keys, mask) -> (logits, h_n[, c_n], attention)``; decode by feeding
    ``BOS`` and then each chosen token until ``EOS``."""
    config = model.config
    draw = _tokens_or_features(config.vocab_size, config.input_size)
    states = _state_names(model.rnn)
    encoder = _Encoder(model)

    def encoder_example(batch, steps, generator):
        return (draw(batch, steps, generator), _lengths(batch, steps, generator))

    def step_example(batch, steps, generator):
        with torch.no_grad():
            encoded = encoder(*encoder_example(batch, steps, generator))
        tokens = torch.randint(0, config.target_vocab_size, (batch,), generator=generator)
        hidden = tuple(h + 0.1 * torch.randn(h.shape, generator=generator) for h in encoded[:-2])
        return (tokens, *hidden, *encoded[-2:])

    keys = {"keys": {0: "batch", 1: "source_time"}, "mask": {0: "batch", 1: "source_time"}}
    hidden = {n: {1: "batch"} for n in [*states, *(f"{s}_n" for s in states)]}
    return [
        Part("encoder", encoder, ["inputs", "lengths"], [*states, "keys", "mask"],
             {"inputs": {0: "batch", 1: "source_time"}, "lengths": {0: "batch"}, **keys,
              **{n: {1: "batch"} for n in states}}, encoder_example),
        Part("decoder_step", _DecoderStep(model), ["tokens", *states, "keys", "mask"],
             ["logits", *(f"{s}_n" for s in states), "attention"],
             {"tokens": {0: "batch"}, "logits": {0: "batch"}, "attention": {0: "batch", 1: "source_time"},
              **keys, **hidden}, step_example),
    ]


class _Recognizer(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths):
        return self.model(inputs, lengths=lengths).output


@register("CTCRecognizer")
def _ctc_parts(model) -> list[Part]:
    """Speech/handwriting CTC: ``(inputs (batch, time, features), lengths) -> log_probs (batch, frames, classes)``;
    decode greedily by collapsing repeats and dropping class 0 (the blank)."""
    size = model.config.input_size
    return [Part("model", _Recognizer(model), ["inputs", "lengths"], ["log_probs"],
                 {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "log_probs": {0: "batch", 1: "frames"}},
                 lambda batch, steps, g: (torch.randn(batch, steps, size, generator=g), _lengths(batch, steps, g)))]


class _ImageEncoder(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, images):
        state = self.model.encode(images)
        hidden = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        return (*hidden, state.keys)


class _CaptionStep(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens, *rest):
        from rnnkit.models.captioner import CaptionState

        hidden, keys = rest[:-1], rest[-1]
        logits, state = self.model.step(tokens, CaptionState(hidden if len(hidden) > 1 else hidden[0], keys))
        new = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        return (logits, *new, state.attention)


@register("Captioner")
def _captioner_parts(model) -> list[Part]:
    """Image captioning: ``encoder (images) -> (h[, c], keys)`` and ``decoder_step (tokens, h[, c], keys) ->
    (logits, h_n[, c_n], attention)``, decoded like the translator's."""
    config, states = model.config, _state_names(model.rnn)
    encoder = _ImageEncoder(model)

    def images(batch, steps, generator):  # "steps" sets the image size: regions vary like a time axis
        side = 2 ** config.conv_layers * (2 + steps % 3)  # at least 2x2 regions (the encoder branches on 1)
        return (torch.rand(batch, config.image_channels, side, side + 2 ** config.conv_layers, generator=generator),)

    def step_example(batch, steps, generator):
        with torch.no_grad():
            encoded = encoder(*images(batch, steps, generator))
        return (torch.randint(0, config.vocab_size, (batch,), generator=generator), *encoded)

    regions = {"keys": {0: "batch", 1: "regions"}}
    return [
        Part("encoder", encoder, ["images"], [*states, "keys"],
             {"images": {0: "batch", 2: "height", 3: "width"}, **regions, **{n: {1: "batch"} for n in states}}, images),
        Part("decoder_step", _CaptionStep(model), ["tokens", *states, "keys"],
             ["logits", *(f"{s}_n" for s in states), "attention"],
             {"tokens": {0: "batch"}, "logits": {0: "batch"}, "attention": {0: "batch", 1: "regions"}, **regions,
              **{n: {1: "batch"} for n in [*states, *(f"{s}_n" for s in states)]}}, step_example),
    ]

