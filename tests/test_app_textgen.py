"""rnnkit textgen: train on files, report bits per char, sample, evaluate, resume, and refuse bad input."""

import json
import math
import random

import pytest

from rnnkit.apps.textgen import split_documents
from rnnkit.cli.main import main


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("text")
    rng = random.Random(0)
    words = "the cat sat on a mat and the dog ran to the park while birds sang".split()
    path = directory / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(300)))
    return path


def _train(corpus, out, *extra):
    return main(["textgen", "train", "--data", str(corpus), "--out", str(out), "--max-steps", "120",
                 "--hidden-size", "48", "--batch-size", "8", "--chunk-length", "32", "--eval-every", "60",
                 "--quiet", "--sample-length", "40", *extra])


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "char"
    assert _train(corpus, out) == 0
    return out


@pytest.mark.slow
def test_training_learns_the_text_and_reports_bits_per_char(run, corpus):
    results = json.loads((run / "results.json").read_text())
    text = corpus.read_text()
    counts = {c: text.count(c) for c in set(text)}
    unigram = -sum(n / len(text) * math.log(n / len(text)) for n in counts.values())
    assert results["val_nats_per_char"] < 0.75 * unigram  # far better than letter frequencies alone
    assert results["val_bits_per_char"] == pytest.approx(results["val_nats_per_char"] / math.log(2))
    assert results["val_perplexity"] == pytest.approx(math.exp(results["val_nats_per_char"]))
    for name in ("app.json", "config.json", "metrics.jsonl", "curves.png", "model/config.json", "model/vocab.json"):
        assert (run / name).exists(), name


@pytest.mark.slow
def test_sample_is_reproducible_and_streams_after_the_prime(run, capsys):
    outputs = []
    for _ in range(2):
        assert main(["textgen", "sample", "--run", str(run), "--prime", "the cat", "--length", "60", "--seed", "3"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].startswith("the cat") and len(outputs[0]) > 60
    assert main(["textgen", "sample", "--run", str(run), "--length", "60", "--seed", "4"]) == 0
    assert capsys.readouterr().out != outputs[0]
    assert main(["textgen", "sample", "--run", str(run), "--length", "30", "--temperature", "0"]) == 0


@pytest.mark.slow
def test_evaluate_matches_training_report(run, corpus, capsys):
    assert main(["textgen", "evaluate", "--json", "--run", str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    results = json.loads((run / "results.json").read_text())
    assert evaluated["val_nats_per_char"] == pytest.approx(results["val_nats_per_char"], rel=1e-5)
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--data", str(corpus)]) == 0
    assert json.loads(capsys.readouterr().out)["unknown_share"] == 0.0
    foreign = corpus.with_name("foreign.txt")
    foreign.write_text("\u00e9\u00e8\u00ea\u00eb" * 300)  # letters the training text never had
    assert main(["textgen", "evaluate", "--json", "--run", str(run), "--data", str(foreign)]) == 0
    captured = capsys.readouterr()  # it scored all-<unk> text better than its own validation text, silently
    assert json.loads(captured.out)["unknown_share"] == 1.0 and "100% of the tokens" in captured.err


@pytest.mark.slow
def test_resume_continues_and_existing_runs_are_protected(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(corpus, out, "--max-steps", "30") == 0
    assert _train(corpus, out, "--max-steps", "30") == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["textgen", "train", "--out", str(out), "--resume", "--max-steps", "40", "--quiet",
                 "--sample-length", "0"]) == 0  # no --data: the run's own data and settings
    other = tmp_path / "other.txt"
    other.write_text(corpus.read_text()[::-1])
    assert main(["textgen", "train", "--data", str(other), "--out", str(out), "--resume", "--quiet"]) == 2
    assert "continues" in capsys.readouterr().err
    assert _train(corpus, out, "--max-steps", "50", "--resume") == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, 51))


@pytest.mark.parametrize("option", [["--weight-drop", "0.3"], ["--ema-decay", "0.9"]], ids=["weight-drop", "ema"])
def test_weight_drop_and_weight_average_keep_same_seed_same_bits_and_resume(corpus, tmp_path, option):
    flags = ["--num-layers", "2", "--hidden-size", "16", "--dropout", "0.2", *option, "--eval-every", "5",
             "--checkpoint-every", "5", "--sample-length", "0", "--no-tensorboard"]
    assert _train(corpus, tmp_path / "full", *flags, "--max-steps", "12") == 0
    assert _train(corpus, tmp_path / "again", *flags, "--max-steps", "12") == 0
    assert _train(corpus, tmp_path / "part", *flags, "--max-steps", "6") == 0
    assert _train(corpus, tmp_path / "part", *flags, "--max-steps", "12", "--resume") == 0

    def history(name):  # the training steps (a run stopped at step 6 also evaluates there)
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records if "loss" in r]

    weights = {name: (tmp_path / name / "model" / "model.safetensors").read_bytes() for name in ("full", "again", "part")}
    assert history("full") == history("again") == history("part") and len(history("full")) == 12
    assert weights["full"] == weights["again"] == weights["part"]


@pytest.mark.slow
def test_word_level(corpus, tmp_path, capsys):
    assert _train(corpus, tmp_path / "words", "--level", "word") == 0
    capsys.readouterr()
    assert "val_nats_per_word" in json.loads((tmp_path / "words" / "results.json").read_text())
    assert main(["textgen", "sample", "--run", str(tmp_path / "words"), "--length", "5", "--seed", "0"]) == 0
    assert len(capsys.readouterr().out.split()) == 5


def test_split_keeps_the_last_fraction():
    train, val = split_documents(["a" * 90, "b" * 10], 0.2)
    assert train == ["a" * 80] and val == ["a" * 10, "b" * 10]


@pytest.mark.parametrize("case", ["missing", "latin1", "empty", "foreign", "not_a_run", "unknown_dataset"])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    if case == "missing":
        argv = ["textgen", "train", "--data", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")]
        expected = "no such file"
    elif case == "latin1":
        (tmp_path / "l.txt").write_bytes("café crème\n".encode("latin-1") * 50)
        argv = ["textgen", "train", "--data", str(tmp_path / "l.txt"), "--out", str(tmp_path / "o")]
        expected = "pass --encoding"
    elif case == "empty":
        (tmp_path / "e.txt").write_text("  \n")
        argv = ["textgen", "train", "--data", str(tmp_path / "e.txt"), "--out", str(tmp_path / "o")]
        expected = "is empty"
    elif case == "foreign":
        (tmp_path / "r").mkdir()
        (tmp_path / "r" / "app.json").write_text(json.dumps({"app": "classify", "format": 1, "settings": {}}))
        argv = ["textgen", "sample", "--run", str(tmp_path / "r")]
        expected = "was made by `rnnkit classify`"
    elif case == "not_a_run":
        argv = ["textgen", "sample", "--run", str(tmp_path)]
        expected = "not an rnnkit run directory"
    else:
        argv = ["textgen", "train", "--dataset", "nope", "--out", str(tmp_path / "o")]
        expected = "unknown text dataset 'nope'"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_sample_never_writes_special_tokens_unless_unknown_is_allowed(run, monkeypatch):
    import torch

    from rnnkit.apps import textgen
    from rnnkit.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

    model, vocab, info = textgen.load_run(run)
    with torch.no_grad():  # a model that all but always wants a special token next
        model.head.bias[[PAD_ID, UNK_ID, BOS_ID, EOS_ID]] += 30.0
    monkeypatch.setattr(textgen, "load_run", lambda _run: (model, vocab, info))
    text = "".join(textgen.sample(run, prime="the", length=50, seed=0))
    assert len(text) == 50 and "<" not in text  # every step drew a real character
    allowed = "".join(textgen.sample(run, prime="the", length=50, seed=0, allow_unknown=True))
    assert allowed.count("<unk>") > 40


def test_preset_hour_fills_in_what_the_command_line_does_not_say(corpus, tmp_path, capsys):
    from rnnkit.apps.textgen import APP

    out = tmp_path / "preset"
    # --hidden is an abbreviation of --hidden-size; --lr 3e-3 equals textgen's default and must still win.
    assert main(["textgen", "train", "--data", str(corpus), "--out", str(out), "--preset", "hour", "--hidden", "16",
                 "--num-layers", "1", "--lr", "3e-3", "--max-steps", "4", "--batch-size=4", "--chunk-length", "16",
                 "--eval-every", "2", "--quiet", "--sample-length", "0", "--no-tensorboard"]) == 0
    model = json.loads((out / "app.json").read_text())["settings"]["model"]
    train = json.loads((out / "config.json").read_text())["train"]
    preset = APP.presets["hour"]["values"]
    assert (model["hidden_size"], model["num_layers"], train["lr"], train["max_steps"], train["batch_size"]) == \
        (16, 1, 3e-3, 4, 4)
    for name in ("dropout", "cell", "embedding_dim"):
        assert model[name] == preset[name]
    for name in ("optimizer", "weight_decay", "schedule", "min_lr", "max_minutes", "eval_batches", "warmup_steps",
                 "bf16"):
        assert train[name] == preset[name]
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 4 and 0 < results["train_seconds"] < 600
    with pytest.raises(SystemExit):
        main(["textgen", "train", "--data", str(corpus), "--out", str(tmp_path / "x"), "--preset", "day"])
    assert "--preset: invalid choice: 'day'" in capsys.readouterr().err


def test_the_hour_recipe_uses_bfloat16_only_where_the_cpu_has_it():
    from rnnkit.apps.textgen import APP, hour_recipe
    from rnnkit.train import native_bfloat16

    assert APP.presets["hour"]["values"] == hour_recipe(native_bfloat16())
    fast, slow = hour_recipe(True), hour_recipe(False)
    assert fast["bf16"] and not slow["bf16"]  # emulated bfloat16 would be slower than float32 (docs/training.md)
    assert fast["max_minutes"] == slow["max_minutes"] == 60.0
    assert (fast["cell"], slow["cell"]) == ("ln_lstm", "lstm")  # each the held-out search's choice on its host
    differ = {"bf16", "cell", "dropout", "max_steps", "eval_every", "checkpoint_every"}
    assert set(fast) == set(slow) and all(fast[k] == slow[k] for k in set(fast) - differ)  # the same optimisation


def test_a_preset_naming_an_option_the_command_lacks_is_refused():
    import argparse

    from rnnkit.cli.common import apply_preset

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=1.0)
    args = parser.parse_args(["--lr", "2"])
    args.command_line = ["--lr", "2"]
    with pytest.raises(TypeError, match="hidden_size"):
        apply_preset(parser, args, {"lr": 3.0, "hidden_size": 8})
    apply_preset(parser, args, {"lr": 3.0})
    assert args.lr == 2.0  # written on the command line: the preset does not override it


def test_a_character_model_reads_a_newline_before_the_prime():
    import torch

    from rnnkit.apps.textgen import generate
    from rnnkit.data.vocab import Vocabulary
    from rnnkit.models import SequenceTagger
    from rnnkit.sampling import stream

    vocab = Vocabulary.build(["the cat\nsat on the mat\n"], level="char")
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=len(vocab), output_size=0, hidden_size=8).eval()
    with torch.no_grad():  # large weights, so that one more token of context shows in what is drawn
        for parameter in model.parameters():
            parameter.normal_(0.0, 2.0)
    special = [0, 1, 2, 3]

    def expected(text):
        return vocab.decode(list(stream(model, vocab.encode(text), max_new_tokens=30, temperature=1.0, seed=3,
                                        suppress=special)))

    def written(prime):
        return "".join(generate(model, vocab, words=False, prime=prime, length=30, temperature=1.0, seed=3))

    assert written("the") == expected("\nthe") != expected("the")
    assert written("") == written(None) == expected("\n")
