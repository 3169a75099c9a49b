"""rnnkit music: piano rolls, melody tokens and the readers against hand-worked values and music21; the
baselines and the model's loss against their formulas; bad input refused with one line; (slow) small
generated music learned better than the baselines, sampled to MIDI, and reproducible to the bit."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from app_support import assert_reproducible_and_resumable
from rnnkit.apps import music as app
from rnnkit.cli.main import main
from rnnkit.data import music as notation
from rnnkit.data.music import Note
from rnnkit.models import PianoRollModel, load_model, save_model

mido = pytest.importorskip("mido")
pytest.importorskip("music21")

CHORDS = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (57, 60, 64)]  # C F G Am, one per beat, cycling


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "data"))


def chord_midis(folder, pieces=24, seed=0):
    """MIDI files cycling through four chords from a random start: learnable, and neither baseline's kind."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(pieces):
        start, frames = rng.randrange(4), rng.randint(16, 32)
        notes = [Note(t, 1, p) for t in range(frames) for p in CHORDS[(start + t) % 4]]
        notation.write_midi(notes, folder / f"piece{i:02d}.mid")
    return folder


def scale_abc(path, tunes=30, seed=0):
    """An ABC book of scale runs (C major, eighth notes, every fourth a quarter)."""
    rng = random.Random(seed)
    books = []
    for i in range(tunes):
        start = rng.randrange(4)
        line = " ".join("CDEFGAB"[(start + k) % 7] + ("2" if k % 4 == 3 else "") for k in range(rng.randint(10, 20)))
        books.append(f"X:{i + 1}\nT:Tune {i + 1}\nM:4/4\nL:1/8\nK:C\n{line} |]\n")
    path.write_text("\n".join(books))
    return path


# ------------------------------------------------------------------------------- views of notes
def test_piano_roll_samples_each_grid_point_as_jsb_does():
    notes = [Note(0, 2, 60), Note(0.5, 0.25, 62), Note(1, 1.5, 64), Note(3, 1, 20), Note(3, 1, 108)]
    roll = notation.piano_roll(notes, step=1.0)
    expected = np.zeros((4, 88), dtype=np.uint8)
    expected[[0, 1], 60 - 21] = 1           # sounds at 0 and 1, not at 2 (its end)
    expected[[1, 2], 64 - 21] = 1           # 1 <= t < 2.5: frames 1 and 2
    expected[3, 108 - 21] = 1               # C8 is the top key; MIDI 20 is below the piano
    assert roll.tolist() == expected.tolist()  # the 62 between grid points is not sampled
    half = notation.piano_roll(notes, step=0.5)
    assert half.shape == (8, 88) and half[1, 62 - 21] == 1 and half[:, 62 - 21].sum() == 1


def test_roll_to_notes_inverts_a_roll_of_held_notes():
    notes = [Note(0, 2, 60), Note(1, 1, 64), Note(3, 1, 60), Note(2, 2, 72)]
    assert notation.roll_to_notes(notation.piano_roll(notes)) == sorted(notes, key=lambda n: (n.onset, n.pitch))


def test_melody_tokens_take_the_top_line_with_rests_and_cut_overlaps():
    notes = [Note(0, 1, 60), Note(0, 1, 67), Note(0, 4, 48, voice=1), Note(1, 1.5, 62), Note(2, 1, 64),
             Note(4, 1 / 3, 65)]
    tokens = notation.melody_tokens(notes)
    # 67 is higher than 60 at 0; 62 overlaps 64 so lasts until 2; a rest from 3 to 4; voice 1 is not the melody
    assert tokens == ["67:1", "62:1", "64:1", "r:1", "65:1/3"]
    assert [tuple(n)[:3] for n in notation.tokens_to_notes(tokens)] == [
        (0, 1, 67), (1, 1, 62), (2, 1, 64), (4, 1 / 3, 65)]
    assert notation.tokens_duration(tokens) == pytest.approx(4 + 1 / 3)


# ---------------------------------------------------------------------------------------- readers
def test_midi_reader_against_a_file_built_message_by_message(tmp_path):
    first = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                            mido.Message("note_on", note=60, velocity=0, time=96),       # velocity 0 ends it
                            mido.Message("note_on", note=36, velocity=90, channel=9, time=0),  # a drum: skipped
                            mido.Message("note_on", note=64, velocity=90, time=48),
                            mido.Message("note_off", note=64, time=144)])
    second = mido.MidiTrack([mido.Message("note_on", note=55, velocity=70, time=192)])     # never ended
    second.append(mido.Message("control_change", control=7, value=100, time=96))
    midi = mido.MidiFile(type=1, ticks_per_beat=96)
    midi.tracks += [first, second]
    midi.save(str(tmp_path / "hand.mid"))
    notes = notation.read_midi(tmp_path / "hand.mid")
    assert [tuple(n) for n in notes] == [(0, 1, 60, 0), (1.5, 1.5, 64, 0), (2, 1, 55, 1)]


def test_written_midi_reads_back_as_the_same_notes(tmp_path):
    notes = [Note(0, 1, 60), Note(0, 0.5, 64), Note(0.5, 1.5, 67), Note(2, 1 / 3, 72), Note(2, 1, 60)]
    notation.write_midi(notes, tmp_path / "out.mid")
    back = notation.read_midi(tmp_path / "out.mid")
    expected = sorted(notes, key=lambda n: (n.onset, n.pitch))
    assert [(n.onset, n.pitch) for n in back] == [(n.onset, n.pitch) for n in expected]
    assert [n.duration for n in back] == pytest.approx([n.duration for n in expected], abs=1 / 480)


ABC = """X:1
T:Everything at once
M:6/8
L:1/8
K:G
D|G>AB c2e|(3dcB A B2-|B2 z ^c=cf|[DG]2 {a}g f/e/d/c/ B|G3-G2|]
"""


def test_fast_abc_reader_equals_music21s_full_parse(tmp_path):
    from music21 import converter

    path = tmp_path / "tune.abc"
    path.write_text(ABC)
    fast = notation.read_abc(path)
    reference = notation._score_notes(converter.parse(str(path)))  # music21 builds the whole score
    assert len(fast) == 1 and len(fast[0].notes) == len(reference)
    for mine, theirs in zip(fast[0].notes, reference):
        assert tuple(mine) == pytest.approx(tuple(theirs))
    assert len(reference) == 23  # broken rhythm, triplet, ties, accidentals, a chord, a grace note all present


def test_score_reader_merges_ties_as_music21s_strip_ties_does(tmp_path):
    from music21 import chord, note, stream, tie

    part = stream.Part()
    first, second = note.Note("C4", quarterLength=1.5), note.Note("C4", quarterLength=0.5)
    first.tie, second.tie = tie.Tie("start"), tie.Tie("stop")
    held = chord.Chord(["E4", "G4"], quarterLength=1)
    held.notes[0].tie = tie.Tie("start")
    after = chord.Chord(["E4", "A4"], quarterLength=1)
    after.notes[0].tie = tie.Tie("stop")
    part.append([first, second, held, after, note.Rest(quarterLength=1), note.Note("D5", quarterLength=1)])
    score = stream.Score([part])
    score.write("musicxml", fp=str(tmp_path / "ties.musicxml"))
    notes = notation.read_score(tmp_path / "ties.musicxml")[0].notes
    assert [tuple(n)[:3] for n in notes] == [(0, 2, 60), (2, 2, 64), (2, 1, 67), (3, 1, 69), (5, 1, 74)]


def test_parsed_files_are_cached_by_content(tmp_path, monkeypatch):
    path = scale_abc(tmp_path / "book.abc", tunes=3)
    first = notation.read_files([path], progress=False)
    monkeypatch.setattr(notation, "read_file", lambda p: pytest.fail("parsed again instead of read from the cache"))
    assert [(p.name, p.notes) for p in notation.read_files([path], progress=False)] == [
        (p.name, p.notes) for p in first]
    assert len(list(notation.cache_dir().glob("*.json.gz"))) == 1
    path.write_text(path.read_text().replace("K:C", "K:D"))  # new content, new key: parsed again
    with pytest.raises(pytest.fail.Exception):
        notation.read_files([path], progress=False)


# ------------------------------------------------------------------------------ baselines, model
def test_roll_baselines_follow_their_formulas():
    rolls = [np.array([[1, 0], [1, 1], [0, 1]], dtype=np.uint8), np.array([[0, 0]], dtype=np.uint8),
             np.array([[1, 0], [1, 0]], dtype=np.uint8)]
    fitted = app.fit_roll_baselines(rolls)
    assert fitted["key_frequencies"] == pytest.approx([(4 + 1) / (6 + 2), (2 + 1) / (6 + 2)])
    # from silence, keys kept: piece 1: 3 of 6, piece 2: 2 of 2, piece 3: 3 of 4
    a = (8 + 1) / (12 + 2)
    assert fitted["repeat_probability"] == pytest.approx(a)
    test = [np.array([[1, 1], [1, 0]], dtype=np.uint8)]
    p0, p1 = 5 / 8, 3 / 8
    frequency = -(math.log(p0) + math.log(p1) + math.log(p0) + math.log(1 - p1)) / 2
    repeat = -(math.log(a) + 3 * math.log(1 - a)) / 2  # both keys change at t0, key 1 changes at t1
    assert app.roll_baseline_nll(test, fitted) == pytest.approx(
        {"frequency_baseline_nll": frequency, "repeat_baseline_nll": repeat})


def test_unigram_baseline_is_add_one_over_the_target_tokens():
    counts = [0, 0, 0, 3, 5, 1]  # pad, unk, bos, eos, two tokens
    total = 3 + 5 + 1 + 0 + 4  # unk, eos and the two tokens can be targets, each +1
    expected = -(math.log(6 / total) + math.log(2 / total) + math.log(4 / total)) / 3
    assert app.unigram_nll([[4, 5], [3]], counts) == pytest.approx(expected)


def test_model_loss_is_the_bernoulli_nll_per_valid_frame_and_padding_is_invisible():
    torch.manual_seed(0)
    model = PianoRollModel(keys=5, hidden_size=6, cell="gru", backend="reference").eval()
    frames = (torch.rand(2, 4, 5) > 0.5).float()
    targets = (torch.rand(2, 4, 5) > 0.5).float()
    lengths = torch.tensor([4, 2])
    with torch.no_grad():
        out = model(frames, targets, lengths=lengths)
        alone = model(frames[1:, :2], targets[1:, :2])
    p = torch.sigmoid(out.output.double())
    per_frame = -(targets * p.log() + (1 - targets) * (1 - p).log()).sum(-1)
    assert out.loss.item() == pytest.approx(float((per_frame[0].sum() + per_frame[1, :2].sum()) / 6), rel=1e-5)
    assert torch.allclose(alone.output, out.output[1:, :2], atol=1e-6)


def test_generate_is_seeded_and_temperature_zero_takes_the_likelier_value(tmp_path):
    torch.manual_seed(0)
    model = PianoRollModel(keys=88, hidden_size=8, backend="reference").eval()
    prefix = torch.zeros(1, 1, 88)
    draw = lambda seed: model.generate(prefix, 6, generator=torch.Generator().manual_seed(seed))
    assert draw(3).equal(draw(3)) and not draw(3).equal(draw(4))
    greedy = model.generate(prefix, 3, temperature=0)
    logits, state = model.prime(prefix)
    assert greedy[0, 0].equal((logits[0] > 0).float())
    logits, _ = model.step(greedy[:, 0], state)
    assert greedy[0, 1].equal((logits[0] > 0).float())
    save_model(model, tmp_path / "m")
    assert load_model(tmp_path / "m").generate(prefix, 3, temperature=0).equal(greedy)


# ------------------------------------------------------------------------------------- bad input
def test_bad_files_get_one_line_each(tmp_path, cli_error):
    def train_on(*paths):
        return cli_error(["music", "train", "--data", *map(str, paths), "--out", str(tmp_path / "run"), "--quiet"])

    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    assert "broken.mid is not a readable MIDI file" in train_on(broken)
    silent = mido.MidiFile(type=1)
    silent.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)]))
    silent.save(str(tmp_path / "silent.mid"))
    assert "silent.mid has no notes" in train_on(tmp_path / "silent.mid")
    drums = mido.MidiFile(type=1)
    drums.tracks.append(mido.MidiTrack([mido.Message("note_on", note=36, channel=9, time=0),
                                        mido.Message("note_off", note=36, channel=9, time=480)]))
    drums.save(str(tmp_path / "drums.mid"))
    assert "drums.mid has no notes (only rests, drums" in train_on(tmp_path / "drums.mid")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("C D E")
    assert "holds no music files" in train_on(tmp_path / "empty")
    assert "unknown music file type .txt" in train_on(tmp_path / "empty" / "notes.txt")
    assert "does not exist" in train_on(tmp_path / "missing.mid")
    bad_abc = tmp_path / "bad.xml"
    bad_abc.write_text("<score-partwise><part id='P1'><measure>")
    assert "bad.xml could not be read as a score" in train_on(bad_abc)
    few = chord_midis(tmp_path / "few", pieces=2)
    assert "too few to split" in train_on(few)
    assert not (tmp_path / "run").exists()


def test_bad_options_are_refused_before_reading_data(tmp_path, cli_error, monkeypatch):
    monkeypatch.setattr(app, "load_pieces", lambda *a, **k: pytest.fail("read the data before refusing the options"))
    out = str(tmp_path / "run")
    assert "unknown --monitor 'val_acc'" in cli_error(["music", "train", "--monitor", "val_acc", "--out", out])
    assert "step must be a positive number" in cli_error(["music", "train", "--step", "0", "--out", out])
    assert "--val-fraction + --test-fraction" in cli_error(["music", "train", "--val-fraction", "0.5",
                                                        "--test-fraction", "0.5", "--out", out])
    assert "mode must be 'polyphonic' or 'melodic'" in cli_error(["music", "train", "--mode", "jazz", "--out", out])
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ learning (slow)
FAST = ["--hidden-size", "24", "--batch-size", "4", "--lr", "2e-2", "--eval-every", "50", "--quiet"]


@pytest.fixture(scope="module")
def polyphonic(tmp_path_factory):
    root = tmp_path_factory.mktemp("poly")
    data, run = chord_midis(root / "midi"), root / "run"
    torch.set_num_threads(1)
    assert main(["music", "train", "--data", str(data), "--out", str(run), "--max-steps", "200", *FAST]) == 0
    return data, run


@pytest.mark.slow
def test_polyphonic_model_beats_both_baselines_and_evaluate_agrees(polyphonic, capsys):
    data, run = polyphonic
    test = json.loads((run / "results.json").read_text())["test"]
    facts = json.loads((run / "app.json").read_text())["facts"]
    assert test["beats_baselines"] and test["pieces"] == facts["pieces"]["test"] >= 4
    assert (run / "prediction.png").stat().st_size > 0 and (run / "curves.png").exists()
    assert test["nll_per_step"] < 0.7 * min(test["frequency_baseline_nll"], test["repeat_baseline_nll"])
    assert main(["music", "evaluate", "--run", str(run), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["nll_per_step"] == pytest.approx(test["nll_per_step"]) and again["frames"] == test["frames"]
    assert main(["music", "evaluate", "--run", str(run), "--data", str(data / "piece00.mid")]) == 0
    assert "nll_per_step" in capsys.readouterr().out


@pytest.mark.slow
def test_polyphonic_sample_writes_midi_and_png_continuing_the_prime(polyphonic, tmp_path, cli_error):
    data, run = polyphonic
    out = tmp_path / "sample.mid"
    argv = ["music", "sample", "--run", str(run), "--prime", str(data / "piece03.mid"), "--prime-length", "4",
            "--length", "12", "--seed", "5", "--temperature", "0.5", "--out", str(out)]
    assert main(argv) == 0
    roll = notation.piano_roll(notation.read_midi(out))
    assert roll.shape[0] <= 16 and out.with_suffix(".png").stat().st_size > 0
    prime = notation.piano_roll(notation.read_midi(data / "piece03.mid"))[:4]
    assert roll[:4].tolist() == prime.tolist()
    first = out.read_bytes()
    assert main(argv) == 0 and out.read_bytes() == first  # same seed, same music
    assert "use --temperature only" in cli_error(["music", "sample", "--run", str(run), "--top-p", "0.9",
                                                  "--out", str(out)])
    assert "no such file, nor a work" in cli_error(["music", "sample", "--run", str(run), "--prime", "nowhere.mid",
                                                    "--out", str(out)])
    assert "--temperature must be" in cli_error(["music", "sample", "--run", str(run), "--temperature", "-1",
                                                 "--out", str(out)])


@pytest.mark.slow
def test_melodic_model_beats_unigram_and_samples_with_top_p(tmp_path, one_thread):
    book, run = scale_abc(tmp_path / "scales.abc"), tmp_path / "run"
    assert main(["music", "train", "--data", str(book), "--mode", "melodic", "--embedding-dim", "8",
                 "--out", str(run), "--max-steps", "120", *FAST]) == 0
    test = json.loads((run / "results.json").read_text())["test"]
    assert test["nats_per_token"] < 0.5 * test["unigram_baseline_nats"]
    out = tmp_path / "tune.mid"
    assert main(["music", "sample", "--run", str(run), "--prime", f"{book}#2", "--prime-length", "3",
                 "--top-p", "0.9", "--seed", "0", "--out", str(out)]) == 0
    notes = notation.read_midi(out)
    opening = notation.read_abc(book)[1].notes[:3]
    assert [n.pitch for n in notes[:3]] == [n.pitch for n in opening]
    assert all(n.pitch in (60, 62, 64, 65, 67, 69, 71, 72) for n in notes)  # C major, as every tune


@pytest.mark.slow
def test_same_seed_same_run_and_a_killed_run_resumes_to_the_same_bits(tmp_path, monkeypatch, one_thread):
    data = chord_midis(tmp_path / "midi", pieces=12)
    argv = lambda out, *extra: ["music", "train", "--data", str(data), "--hidden-size", "8", "--batch-size", "4",
                                "--dropout", "0.1", "--out", str(out), "--seed", "7", "--max-steps", "12",
                                "--eval-every", "5", "--checkpoint-every", "5", "--quiet", *extra]
    assert_reproducible_and_resumable(lambda out, *extra: main(argv(out, *extra)), tmp_path, monkeypatch)


@pytest.mark.parametrize("verb", ["train", "evaluate", "sample"])
def test_every_verb_shows_examples(verb, capsys):
    with pytest.raises(SystemExit):
        main(["music", verb, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "rnnkit music sample --run" in out


def test_a_bach_chorale_roll_matches_music21s_own_offset_query():
    from music21 import corpus

    from rnnkit.datasets import music as corpora

    assert len(corpora.chorale_files()) == 371 and len(corpora.essen_files()) == 31
    score = corpus.parse("bach/bwv66.6")
    roll = notation.piano_roll(notation._score_notes(score))  # what read_score does after parsing
    assert roll.shape == (int(score.highestTime), 88)
    flat = score.flatten().notes
    for t in range(roll.shape[0]):
        sounding = flat.getElementsByOffset(t, mustBeginInSpan=False, includeElementsThatEndAtStart=False)
        expected = sorted({p.midi for n in sounding for p in n.pitches})
        assert (np.flatnonzero(roll[t]) + 21).tolist() == expected, t
