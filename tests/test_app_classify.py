"""rnnkit classify: learns keyword sentiment, round-trips predict, refuses bad input with one line."""

import json
import random

import pytest
import torch

from app_support import write_run_marker
from rnnkit.cli.main import main

POSITIVE, NEGATIVE = ["great", "excellent", "love", "wonderful"], ["awful", "terrible", "hate", "boring"]
FILLER = "the a movie film this it was is and plot acting story really very quite".split()
FAST = ["--hidden-size", "16", "--embedding-dim", "16", "--batch-size", "16", "--eval-every", "20", "--dropout", "0.1", "--quiet"]


def keyword_csv(path, rows=160, seed=0, positive=POSITIVE, negative=NEGATIVE):
    rng = random.Random(seed)
    lines = ["text,label"]
    for _ in range(rows):
        label = rng.choice(["pos", "neg"])
        words = rng.choices(FILLER, k=6) + [rng.choice(positive if label == "pos" else negative)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    data, run = keyword_csv(root / "kw.csv"), root / "run"
    assert main(["classify", "train", "--data", str(data), "--out", str(run), "--max-steps", "200", "--lr", "5e-3", *FAST]) == 0
    return data, run


@pytest.mark.slow
def test_learns_keywords_and_beats_majority(trained):
    _, run = trained
    result = json.loads((run / "results.json").read_text())
    assert result["accuracy"] >= 0.9 > result["majority_baseline_accuracy"] + 0.2
    assert result["labels"] == ["neg", "pos"] and result["macro_f1"] >= 0.9
    assert (run / "confusion_matrix.png").stat().st_size > 0 and (run / "model" / "vocab.json").exists()
    saved = json.loads((run / "app.json").read_text())
    assert saved["facts"]["labels"] == ["neg", "pos"] and saved["settings"]["level"] == "word"
    assert saved["settings"]["model"]["cell"] == "gru" and saved["settings"]["model"]["bidirectional"] is True


@pytest.mark.slow
def test_predict_round_trip(trained, capsys, tmp_path, monkeypatch):
    _, run = trained
    assert main(["classify", "predict", "--run", str(run), "I love this wonderful film", "a terrible boring plot"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]
    texts = tmp_path / "texts.txt"
    texts.write_text("great acting\n\nawful story\n")
    assert main(["classify", "predict", "--run", str(run), "--file", str(texts), "--json"]) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [i["label"] for i in items] == ["pos", "neg"] and abs(sum(items[0]["probabilities"].values()) - 1) < 1e-5
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO("really excellent\n"))
    assert main(["classify", "predict", "--run", str(run)]) == 0
    assert capsys.readouterr().out.startswith("pos\t")


@pytest.mark.slow
def test_evaluate_on_own_split_and_new_file(trained, capsys, tmp_path):
    data, run = trained
    assert main(["classify", "evaluate", "--run", str(run), "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert own["accuracy"] == json.loads((run / "results.json").read_text())["accuracy"]
    other = keyword_csv(tmp_path / "other.csv", rows=40, seed=5)
    assert main(["classify", "evaluate", "--run", str(run), "--data", str(other)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "true \\ predicted" in out


@pytest.mark.slow
def test_evaluate_on_an_excel_csv_with_a_byte_order_mark(trained, capsys, tmp_path):
    _, run = trained
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + keyword_csv(tmp_path / "plain.csv", rows=20, seed=3).read_bytes())
    assert main(["classify", "evaluate", "--run", str(run), "--data", str(excel), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0.8


@pytest.mark.slow
def test_bad_input_one_line(trained, cli_error, tmp_path):
    data, run = trained
    out = str(tmp_path / "x")
    train = ["classify", "train", "--out", out, "--max-steps", "2", *FAST]
    assert "no such file" in cli_error([*train, "--data", str(tmp_path / "missing.csv")])
    err = cli_error([*train, "--data", str(data), "--text-column", "review"])
    assert "'review'" in err and "available columns: text, label" in err
    (tmp_path / "empty.csv").write_text("")
    assert "empty" in cli_error([*train, "--data", str(tmp_path / "empty.csv")])
    (tmp_path / "header.csv").write_text("text,label\n")
    assert "no data rows" in cli_error([*train, "--data", str(tmp_path / "header.csv")])
    (tmp_path / "nolabel.csv").write_text("text,label\ngood film,pos\nbad film,\n")
    err = cli_error([*train, "--data", str(tmp_path / "nolabel.csv")])
    assert "data row 2" in err and "empty label" in err and "--skip-empty" in err
    (tmp_path / "one.csv").write_text("text,label\ngood,pos\nfine,pos\n")
    assert "at least two" in cli_error([*train, "--data", str(tmp_path / "one.csv")])
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\xe9 great,pos\nbad,neg\n".encode("latin-1"))
    assert "--encoding" in cli_error([*train, "--data", str(tmp_path / "latin.csv")])
    assert "--resume" in cli_error(["classify", "train", "--out", str(run), "--data", str(data), *FAST])


@pytest.mark.slow
def test_foreign_or_newer_run_refused(trained, cli_error, tmp_path):
    write_run_marker(tmp_path / "fc", "forecast")
    err = cli_error(["classify", "predict", "--run", str(tmp_path / "fc"), "hello"])
    assert "rnnkit forecast" in err
    newer = tmp_path / "newer"
    write_run_marker(newer, "classify", format=99)
    assert "newer rnnkit" in cli_error(["classify", "evaluate", "--run", str(newer)])
    assert "does not exist" in cli_error(["classify", "predict", "--run", str(tmp_path / "none"), "hi"])


@pytest.mark.slow
def test_resume_continues_to_more_steps(tmp_path, capsys):
    data, run = keyword_csv(tmp_path / "kw.csv", rows=60), tmp_path / "run"
    base = ["classify", "train", "--data", str(data), "--out", str(run), *FAST]
    assert main([*base, "--max-steps", "6", "--checkpoint-every", "3"]) == 0
    assert main([*base, "--max-steps", "12", "--checkpoint-every", "3", "--resume"]) == 0
    assert json.loads((run / "results.json").read_text())["steps"] == 12
    assert main([*base, "--max-steps", "12", "--resume", "--lr", "0.1"]) == 2  # was ignored: the optimizer kept 2e-3
    assert "with its own --lr (the run's: 0.002)" in capsys.readouterr().err
    assert json.loads((run / "app.json").read_text())["train"]["lr"] == 0.002
    assert main(["classify", "train", "--out", str(tmp_path / "fresh"), "--resume", "--data", str(data)]) == 2
    assert "no classify run" in capsys.readouterr().err
    # Another data source is refused, even the built-in default written out (it was taken for "not given")
    other = keyword_csv(tmp_path / "other.csv", rows=60, seed=1)
    for flags in (["--dataset", "tweets"], ["--data", str(other)]):
        assert main(["classify", "train", "--out", str(run), "--resume", *flags]) == 2
        err = capsys.readouterr().err
        assert f"on its own data (--data {data})" in err and f"drop {flags[0]}" in err, err


def test_init_from_extends_the_vocabulary_and_carries_every_weight(trained, tmp_path):
    import torch

    from rnnkit.apps import classify

    _, source_run = trained
    source, source_vocab, _ = classify.load_run(source_run)
    data = keyword_csv(tmp_path / "new.csv", 40, 1, ["great", "superb"], ["awful", "dreadful"])
    config = classify.APP.default_config()
    for labels, head_carried in (("pos", True), ("good", False)):
        if labels == "good":
            data.write_text(data.read_text().replace(",pos\n", ",good\n"))
        settings = classify.APP.normalize(classify.ClassifySettings(
            data=str(data), init_from=str(source_run), model=source.config))
        classify.APP.check(settings, config)
        prepared = classify.APP.prepare(settings, config, tmp_path)
        vocab = prepared.vocab
        assert vocab.tokens[: len(source_vocab)] == source_vocab.tokens  # the earlier ids are kept
        assert {"superb", "dreadful"} <= set(vocab.tokens[len(source_vocab):])  # new frequent words appended
        model = classify.APP.build_model(settings, prepared)
        theirs, mine = source.state_dict(), model.state_dict()
        assert torch.equal(mine["encoder.embedding.weight"][: len(source_vocab)], theirs["encoder.embedding.weight"])
        assert torch.equal(mine["encoder.rnn.weight_hh_l0_reverse"], theirs["encoder.rnn.weight_hh_l0_reverse"])
        assert torch.equal(mine["head.weight"], theirs["head.weight"]) is head_carried
        assert prepared.facts["transfer"] == {"tokens_carried": len(source_vocab) - 4,
                                              "tokens_new": len(vocab) - len(source_vocab),
                                              "head_carried": head_carried}


def test_init_from_refuses_another_architecture_or_app(trained, cli_error, tmp_path):
    data, run = trained
    base = ["classify", "train", "--data", str(data), "--out", str(tmp_path / "x"), "--max-steps", "2", *FAST,
            "--init-from", str(run)]
    err = cli_error([*base[:-2], "--hidden-size", "32", "--init-from", str(run)])
    assert "was trained with --hidden-size 16 (not 32)" in err and "give the same" in err
    assert "--level word (not char)" in cli_error([*base, "--level", "char"])
    write_run_marker(tmp_path / "fc", "forecast")
    assert "rnnkit forecast" in cli_error([*base[:-1], str(tmp_path / "fc")])
    assert "is a file, not a run directory" in cli_error([*base[:-1], str(data)])
    assert not (tmp_path / "x").exists()  # refused before anything was written


@pytest.mark.slow
def test_init_from_transfers_what_the_earlier_run_learned(trained, tmp_path):
    """The new data's training part names only two of the keywords; its test rows only the other six, which
    the earlier run learned. From scratch they are unknown words (chance); carried over they are known."""
    from rnnkit.apps import classify

    _, source_run = trained
    train_rows = keyword_csv(tmp_path / "train.csv", 80, 2, ["great"], ["awful"])
    test_rows = keyword_csv(tmp_path / "test.csv", 200, 3, POSITIVE[1:], NEGATIVE[1:])
    accuracy = {}
    for name, extra in (("scratch", []), ("transfer", ["--init-from", str(source_run)])):
        run = tmp_path / name
        assert main(["classify", "train", "--data", str(train_rows), "--out", str(run), "--max-steps", "40",
                     "--lr", "5e-3", "--test-fraction", "0.1", *FAST, *extra]) == 0
        accuracy[name] = classify.evaluate(run, data=str(test_rows))["accuracy"]
    assert accuracy["transfer"] >= 0.8 and accuracy["scratch"] <= 0.65, accuracy


def test_without_validation_the_saved_model_is_the_weight_average(tmp_path):
    from safetensors.torch import load_file

    data, run = keyword_csv(tmp_path / "kw.csv"), tmp_path / "run"
    assert main(["classify", "train", "--data", str(data), "--out", str(run), "--max-steps", "12", "--val-fraction", "0",
                 "--ema-decay", "0.5", "--checkpoint-every", "12", *FAST]) == 0
    saved = load_file(run / "model" / "model.safetensors")
    final = run / "checkpoints" / "step-00000012"
    average, live = load_file(final / "model.safetensors"), load_file(final / "state.safetensors")
    assert not (run / "checkpoints" / "best.json").exists()
    assert all(torch.equal(saved[k], average[k]) for k in average)
    assert any(not torch.equal(saved[k], live[f"training_weights.{k}"]) for k in average)


def test_quiet_reaches_the_steps_an_app_calls(tmp_path, monkeypatch):
    """--quiet is seen by what prepare and report call deep down (rendering a data set, a baseline's search:
    caption, music, speech and dna printed their progress through --quiet)."""
    from rnnkit.apps import classify
    from rnnkit.train.progress import is_shown

    seen = []
    original = classify.Classify.prepare

    def prepare(self, *args, **kwargs):
        seen.append(is_shown())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(classify.Classify, "prepare", prepare)
    data = keyword_csv(tmp_path / "kw.csv", rows=40)
    base = ["classify", "train", "--data", str(data), "--max-steps", "2", *FAST]
    assert main([*base, "--out", str(tmp_path / "quiet")]) == 0  # FAST has --quiet
    assert main([*[a for a in base if a != "--quiet"], "--out", str(tmp_path / "loud")]) == 0
    assert seen == [False, True] and is_shown()


def test_careless_flags_are_refused_in_one_line(tmp_path, cli_error):
    data = keyword_csv(tmp_path / "kw.csv", rows=40)
    base = ["classify", "train", "--data", str(data), "--max-steps", "2", *FAST]
    # the model read the label column to predict the label column
    assert "--text-column and --label-column both name 'label'" in cli_error(
        [*base, "--text-column", "label", "--out", str(tmp_path / "a")])
    # --dataset was silently ignored beside --data
    assert "pass --data or --dataset, not both" in cli_error(
        [*base, "--dataset", "tweets", "--out", str(tmp_path / "b")])
    assert main([*base, "--out", str(tmp_path / "run")]) == 0
    # a different architecture on --resume was ignored: the run went on with its own
    err = cli_error([*base, "--out", str(tmp_path / "run"), "--resume", "--hidden-size", "32"])
    assert "on its own settings (--hidden-size 16)" in err
    assert main([*base, "--out", str(tmp_path / "run"), "--resume", "--max-steps", "4"]) == 0  # the same flags: resumes


def test_python_callers_keep_the_apps_training_defaults_with_changes():
    """A TrainConfig given to train() is used as it is (TrainConfig's own defaults); default_config keeps the app's."""
    from rnnkit.apps.classify import APP
    from rnnkit.train import TrainConfig

    config = APP.default_config(max_steps=7)
    assert config.max_steps == 7 and config != TrainConfig(max_steps=7)
    assert all(getattr(config, name) == value for name, value in APP.train_defaults.items() if name != "max_steps")
