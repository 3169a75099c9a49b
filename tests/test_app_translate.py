"""The translation app: a generated task is learned, runs are reused by evaluate/translate, bad input
gets one line and exit status 2, resume continues a run."""

import io
import json
import sys

import pytest
import torch

from rnnkit.apps.translate import (
    addition_pairs, collate, load_run, looks_like_header, read_pairs, reversal_pairs, translate,
)
from rnnkit.errors import InputError
from rnnkit.cli.main import main

TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--attention-size", "8", "--batch-size", "32", "--quiet"]


def write_tsv(path, pairs, header=None):
    lines = ([header] if header else []) + [f"{s}\t{t}" for s, t in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A reversal model trained once from a TSV file with a header (a few seconds)."""
    root = tmp_path_factory.mktemp("translate")
    data = write_tsv(root / "pairs.tsv", reversal_pairs(800, seed=1, alphabet="abcde", lengths=(2, 5)),
                     header="source\ttarget")
    out = root / "run"
    code = main(["translate", "train", "--data", str(data), "--out", str(out), "--hidden-size", "48",
                 "--embedding-dim", "16", "--attention-size", "16", "--max-steps", "240", "--lr", "0.01",
                 "--eval-every", "120", "--checkpoint-every", "120", "--quiet"])
    assert code == 0
    return out


@pytest.mark.slow
def test_a_generated_task_is_learned_and_the_run_holds_everything(run):
    results = json.loads((run / "results.json").read_text())
    assert results["exact_match"] >= 0.9 and results["examples"] == 80  # the header was not a pair
    assert {"bleu", "chrf", "steps", "train_seconds"} <= results.keys() and results["steps"] == 240
    app = json.loads((run / "app.json").read_text())
    assert app["app"] == "translate" and app["facts"]["pairs"] == {"train": 640, "val": 80, "test": 80}
    for name in ("config.json", "metrics.jsonl", "curves.png", "attention.png", "splits/test.tsv",
                 "model/model.safetensors", "model/vocab_source.json", "model/vocab_target.json"):
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))


@pytest.mark.slow
def test_beam_one_is_greedy_and_translate_reads_args_and_stdin(run, capsys, monkeypatch):
    sources = ["abc", "edcba", "ba", "ccdea"]
    model, vocabs, _ = load_run(run)
    batch = collate([(vocabs["source"].encode(s), [3]) for s in sources])
    greedy = model(batch["inputs"], lengths=batch["lengths"]).output
    expected = [vocabs["target"].decode(row) for row in greedy]
    assert translate(run, sources, beam=1) == expected
    assert sum(o == s[::-1] for o, s in zip(translate(run, sources, beam=4), sources)) >= 3

    assert main(["translate", "translate", "--run", str(run), "--beam", "1", *sources]) == 0
    assert capsys.readouterr().out.split() == expected
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"abc\n\nedcba\n")))
    assert main(["translate", "translate", "--run", str(run)]) == 0
    assert len(capsys.readouterr().out.split()) == 2


@pytest.mark.slow
def test_evaluate_reports_bleu_and_exact_match(run, capsys, tmp_path):
    assert main(["translate", "evaluate", "--json", "--run", str(run), "--beam", "2", "--predictions",
                 str(tmp_path / "p.tsv")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["exact_match"] >= 0.9 and 90 < result["bleu"] <= 100 + 1e-9 and result["chrf"] > 90
    assert result["bleu_tokenize"] == "char"  # one-"word" sums: word BLEU would be 0 at any accuracy
    assert len((tmp_path / "p.tsv").read_text().splitlines()) == 80
    other = write_tsv(tmp_path / "other.tsv", [("abcd", "dcba"), ("eab", "bae")])
    assert main(["translate", "evaluate", "--json", "--run", str(run), "--data", str(other), "--no-bleu"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 2
    assert main(["translate", "evaluate", "--run", str(run), "--data", str(other), "--no-bleu"]) == 0
    line = capsys.readouterr().out  # without --json: one line for people, as every other app's evaluate
    assert line.count("\n") == 1 and line.startswith(f"{other}: ") and "examples 2" in line


def bad_files(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "header_only.tsv").write_text("source\ttarget\n")
    (tmp_path / "no_tab.tsv").write_text("ab\tba\ncd\tdc\nef fe\n")
    (tmp_path / "empty_side.tsv").write_text("ab\tba\n\t x\n")
    (tmp_path / "latin1.tsv").write_bytes("caf\xe9\tcoffee\n".encode("latin-1"))
    (tmp_path / "few.tsv").write_text("ab\tba\n")
    return {
        "missing.tsv": "no such file", "empty.tsv": "is empty", "header_only.tsv": "after the header",
        "no_tab.tsv": "line 3", "empty_side.tsv": "line 2: the source is empty", "latin1.tsv": "--encoding",
        "few.tsv": "at least 10",
    }


def test_bad_training_data_gets_one_line_and_exit_2(tmp_path, capsys):
    for name, message in bad_files(tmp_path).items():
        code = main(["translate", "train", "--data", str(tmp_path / name), "--out", str(tmp_path / "r" / name), *TINY])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, (name, err)
        assert not (tmp_path / "r" / name).exists()
    code = main(["translate", "train", "--dataset", "nope", "--out", str(tmp_path / "x"), *TINY])
    assert code == 2 and "unknown --dataset 'nope'" in capsys.readouterr().err
    code = main(["translate", "train", "--dataset", "number_words", "--language", "xx", "--out", str(tmp_path / "x"),
                 *TINY])  # was a NotImplementedError traceback from num2words
    assert code == 2 and "number_words has no language 'xx'; choose one of" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_of_other_apps_newer_versions_and_bad_options_are_refused(run, tmp_path, capsys):
    (tmp_path / "classify_run").mkdir()
    (tmp_path / "classify_run" / "app.json").write_text(json.dumps({"app": "classify", "format": 2, "settings": {}}))
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "app.json").write_text(json.dumps({"app": "translate", "format": 99, "settings": {}}))
    cases = [
        (["evaluate", "--run", str(tmp_path / "classify_run")], "made by `rnnkit classify`"),
        (["translate", "--run", str(tmp_path / "classify_run"), "x"], "made by `rnnkit classify`"),
        (["evaluate", "--run", str(tmp_path / "future")], "newer rnnkit"),
        (["evaluate", "--run", str(tmp_path / "nothing")], "does not exist"),
        (["evaluate", "--run", str(tmp_path)], "no app.json"),
        (["translate", "--run", str(run), "--beam", "0", "x"], "--beam must be >= 1"),
        (["translate", "--run", str(run), "--file", str(tmp_path / "none.txt")], "no such file"),
        (["train", "--out", str(run), *TINY], "pass --resume"),
        (["train", "--out", str(tmp_path / "classify_run"), "--resume", *TINY], "made by `rnnkit classify`"),
        (["train", "--out", str(tmp_path / "fresh"), "--resume", *TINY], "holds no translate run"),
    ]
    for args, message in cases:
        code = main(["translate", *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    assert main(["translate", "translate", "--run", str(run), "--file", str(tmp_path / "bad.txt")]) == 2
    assert "--encoding" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_continues_the_run_and_refuses_changed_data(tmp_path, capsys):
    data = write_tsv(tmp_path / "pairs.tsv", reversal_pairs(200, seed=2, alphabet="abc", lengths=(2, 4)))
    args = ["translate", "train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY,
            "--eval-every", "10", "--checkpoint-every", "10"]
    assert main([*args, "--max-steps", "20"]) == 0
    capsys.readouterr()
    assert main([*args, "--max-steps", "30", "--resume", "--hidden-size", "99"]) == 2  # was silently ignored
    assert "on its own settings (--hidden-size 16)" in capsys.readouterr().err
    assert main([*args, "--max-steps", "30", "--resume"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert results["steps"] == 30 and max(steps) == 30 and steps.count(15) == 1
    assert load_run(tmp_path / "run")[0].config.hidden_size == 16
    write_tsv(data, reversal_pairs(200, seed=3, alphabet="abc", lengths=(2, 4)))
    assert main([*args, "--max-steps", "40", "--resume"]) == 2
    assert "changed since the run started" in capsys.readouterr().err


def test_pairs_headers_and_generators(tmp_path):
    pairs = addition_pairs(2000, digits=2, seed=0)
    assert all(str(eval(s)) == t for s, t in pairs)
    assert len({tuple(sorted(map(int, s.split("+")))) for s, _ in pairs}) == 2000
    with pytest.raises(ValueError, match="too many"):
        addition_pairs(60, digits=1)
    assert looks_like_header(["en", "fr"]) and looks_like_header(["Source", "Target"])
    assert not looks_like_header(["go", "va"]) and not looks_like_header(["en", "en"])
    path = write_tsv(tmp_path / "p.tsv", [("Go.", "Va !"), ("Hi.", "Salut !")], header="en\tfr\tattribution")
    assert read_pairs(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert len(read_pairs(path, header="no")) == 3
    with pytest.raises(InputError, match="line 1"):
        read_pairs(write_tsv(tmp_path / "q.tsv", [("a", "")]), header="no")
    assert torch.equal(collate([([4, 5], [6, 3]), ([7], [3])])["lengths"], torch.tensor([2, 1]))


def test_repeated_sentences_in_the_test_part_are_counted(tmp_path, capsys):
    """A file of 3 pairs repeated 50 times put only training sentences in the test part, without a word."""
    pairs = [("ab", "ba"), ("abc", "cba"), ("ca", "ac")] * 50
    data = write_tsv(tmp_path / "dup.tsv", pairs)
    assert main(["translate", "train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY,
                 "--max-steps", "2"]) == 0
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["test_sources_in_training"] == 15 == json.loads((tmp_path / "run" / "app.json").read_text())[
        "facts"]["pairs"]["test"]


@pytest.mark.slow
def test_an_outlier_pair_is_announced_and_can_be_dropped(tmp_path, capsys, cli_error):
    """One 300-word pair among short ones made decoding run to 450 tokens per sentence, silently."""
    pairs = reversal_pairs(60, seed=1, alphabet="abc", lengths=(2, 4)) + [("x " * 300, "y " * 300)]
    data = write_tsv(tmp_path / "long.tsv", pairs)
    assert main(["translate", "train", "--data", str(data), "--out", str(tmp_path / "run"),
                 *[a for a in TINY if a != "--quiet"], "--max-steps", "1", "--eval-every", "1000"]) == 0
    err = capsys.readouterr().err
    assert "the longest training target has 599 tokens" in err and "--drop-longer-than N" in err
    assert main(["translate", "train", "--data", str(data), "--out", str(tmp_path / "kept"), "--drop-longer-than",
                 "20", *[a for a in TINY if a != "--quiet"], "--max-steps", "1", "--eval-every", "1000"]) == 0
    err = capsys.readouterr().err
    assert "dropped 1 of" in err and "longest training target" not in err
    facts = json.loads((tmp_path / "kept" / "app.json").read_text())["facts"]
    assert facts["train_pairs_dropped"] == 1 and facts["max_length"] < 30  # decoding no longer runs to 900 tokens
    assert "drops every training pair" in cli_error(["translate", "train", "--data", str(data), "--out",
                                                     str(tmp_path / "none"), "--drop-longer-than", "1", *TINY])


def test_validation_loss_is_the_mean_over_real_target_tokens():
    """Targets are padded with the pad id, not IGNORE_INDEX: batches were weighted by their padded size, so a batch
    of one long and one 1-token target counted 34 tokens where it has 19 (oracle: the cross-entropy written out)."""
    import torch
    from torch.nn import functional as F

    from rnnkit.apps.translate import PairDataset, collate
    from rnnkit.data.vocab import PAD_ID, Vocabulary
    from rnnkit.models import Seq2Seq
    from rnnkit.train import TrainConfig, Trainer

    torch.manual_seed(0)
    vocab = Vocabulary(list("abcdefgh"), level="char")
    pairs = [("abc", "abcdefghabcdefgh"), ("abc", "a"), ("def", "hgfedcbahgfedcba"), ("fed", "bcdefghabcdefgha")]
    data = PairDataset(pairs, vocab, vocab)
    model = Seq2Seq(vocab_size=len(vocab), target_vocab_size=len(vocab), hidden_size=8)
    trainer = Trainer(model, data, config=TrainConfig(max_steps=1, batch_size=2), val_data=data, collate_fn=collate,
                      progress=False)
    got = trainer.evaluate()["val_loss"]
    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for start in (0, 2):
            batch = collate([data[i] for i in (start, start + 1)])
            logits = model(batch["inputs"], batch["targets"], lengths=batch["lengths"],
                           target_lengths=batch["target_lengths"]).output
            real = batch["targets"] != PAD_ID
            total += F.cross_entropy(logits[real], batch["targets"][real], reduction="sum").item()
            count += int(real.sum())
    assert got == pytest.approx(total / count, rel=1e-6)


def test_translation_progress_writes_no_carriage_returns_into_a_log(capsys):
    """Redirected stderr got 'translating: 256/5000translating: 512/5000...' on one line."""
    import torch

    from rnnkit.apps.translate import TranslateSettings, translate_pairs
    from rnnkit.data.vocab import Vocabulary
    from rnnkit.models import Seq2Seq

    torch.manual_seed(0)
    vocab = Vocabulary(list("abc"), level="char")
    model = Seq2Seq(vocab_size=len(vocab), target_vocab_size=len(vocab), hidden_size=4, max_length=3)
    outputs, _, _ = translate_pairs(model, {"source": vocab, "target": vocab}, TranslateSettings(), ["ab"] * 5,
                                    batch_size=2, progress=True)
    assert len(outputs) == 5 and "\r" not in capsys.readouterr().err
