"""The single-step path for generation (rnnkit.sampling.FastStep): the same logits and states as the
model's general ``step`` for every cell and depth, the same sampled tokens, and the models it declines."""

import pytest
import torch

from rnnkit import registry
from rnnkit.models import SequenceTagger
from rnnkit.sampling import FastStep, stream


@pytest.mark.parametrize("cell", registry.cell_names())
def test_fast_step_equals_model_step(cell):
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=11, output_size=0, hidden_size=12, num_layers=2, cell=cell).eval()
    fast = FastStep.of(model)
    assert fast is not None
    tokens = torch.randint(0, 11, (3, 6))
    with torch.no_grad():
        _, ours = fast.prime(tokens[:, :2])
        _, theirs = model.prime(tokens[:, :2])
        for t in range(2, 6):
            got, ours = fast.step(tokens[:, t], ours)
            want, theirs = model.step(tokens[:, t], theirs)
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
            for a, b in zip(ours if isinstance(ours, tuple) else (ours,), theirs if isinstance(theirs, tuple) else (theirs,)):
                assert a.shape == b.shape == (2, 3, 12)
                torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        # from no state at all (zeros), as model.step starts
        torch.testing.assert_close(fast.step(tokens[:, 0])[0], model.step(tokens[:, 0])[0], atol=1e-6, rtol=0)


def test_stream_draws_the_same_tokens_on_either_path():
    torch.manual_seed(1)
    model = SequenceTagger(vocab_size=30, output_size=0, hidden_size=32, cell="lstm").eval()
    options = dict(max_new_tokens=60, temperature=0.9, top_p=0.95, seed=5, suppress=[0, 1])
    fast = list(stream(model, [4, 7], fast=True, **options))
    assert fast == list(stream(model, [4, 7], fast=False, **options))
    assert len(fast) == 60 and not {0, 1} & set(fast)
    batched = stream(model, torch.tensor([[4, 7], [5, 6]]), fast=True, **options)
    assert isinstance(batched.model, FastStep)
    assert [t.tolist() for t in batched] == [t.tolist() for t in stream(model, torch.tensor([[4, 7], [5, 6]]),
                                                                           fast=False, **options)]


def test_models_it_does_not_cover_use_their_own_step():
    assert FastStep.of(SequenceTagger(vocab_size=9, output_size=0, hidden_size=4, bidirectional=True).eval()) is None
    assert FastStep.of(SequenceTagger(vocab_size=9, output_size=0, hidden_size=4).train()) is None
    assert FastStep.of(SequenceTagger(input_size=3, output_size=2, hidden_size=4).eval()) is None
    assert FastStep.of(SequenceTagger(vocab_size=9, output_size=0, hidden_size=4, zoneout=0.1).eval()) is None
    assert FastStep.of(torch.nn.Linear(2, 2)) is None
