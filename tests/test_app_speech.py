"""rnnkit speech: audio reading, features against CMU Sphinx's own front end, the cache, synthesis, every bad
input the issue lists (one line, before training), and (slow) training both tasks, reproducibility and resume."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from app_support import assert_reproducible_and_resumable
from rnnkit.errors import InputError

pytest.importorskip("librosa", reason="librosa (pip install 'rnnkit[speech]')")
soundfile = pytest.importorskip("soundfile", reason="soundfile (pip install 'rnnkit[speech]')")

from rnnkit.apps import speech  # noqa: E402
from rnnkit.data import audio  # noqa: E402
from rnnkit.datasets import speech as synth  # noqa: E402

SPHINX = Path("/usr/share/pocketsphinx/test/data")
needs_sphinx_data = pytest.mark.skipif(not (SPHINX / "goforward.raw").is_file(),
                                       reason="Debian package pocketsphinx-testdata")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="Debian package espeak-ng")


def tone(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(str(path), np.stack([x] * channels, 1) if channels > 1 else x, rate)
    return path


# ---------------------------------------------------------------------------------------- reading
def test_wav_of_any_rate_and_channels_is_read_as_mono(tmp_path):
    rate = 8000
    left = np.linspace(-0.5, 0.5, 800)
    soundfile.write(str(tmp_path / "s.wav"), np.stack([left, -left * 0.5], 1), rate, subtype="FLOAT")
    samples, got = audio.read_wav(tmp_path / "s.wav")
    assert got == rate
    np.testing.assert_allclose(samples, (left - left * 0.5) / 2, atol=1e-6)


@pytest.mark.parametrize("kind, message", [
    ("missing", "does not exist"), ("empty", "is empty"), ("flac", "is not a WAV file"),
    ("text", "is not a WAV file"), ("corrupt", "damaged WAV"), ("no_samples", "holds no audio samples"),
])
def test_bad_audio_files_are_refused_in_one_line(tmp_path, kind, message):
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "flac":
        soundfile.write(str(path), np.zeros(1000), 16000, format="FLAC")
    elif kind == "text":
        path.write_text("file,text\n")
    elif kind == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 7)
    elif kind == "no_samples":
        soundfile.write(str(path), np.zeros(0), 16000)
    with pytest.raises(InputError, match=message):
        audio.read_wav(path)


def test_sphinx_feature_file_is_read_with_its_byte_order():
    path = SPHINX / "tidigits" / "man.ah.1b.mfc"
    if not path.is_file():
        pytest.skip("Debian package pocketsphinx-testdata")
    data = path.read_bytes()
    count = struct.unpack(">i", data[:4])[0]
    frames = audio.read_sphinx_mfc(path)
    assert frames.shape == (count // 13, 13)
    assert frames[0, :3].tolist() == list(struct.unpack(">3f", data[4:16]))


# --------------------------------------------------------------------------------------- features
def test_frame_count_and_a_clip_shorter_than_one_frame():
    spec = audio.FeatureSpec("logmel", 40, 16000)
    assert (spec.win_length, spec.hop_length, spec.n_fft) == (400, 160, 512)
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert audio.features(x, 16000, spec).shape == (1 + (16000 - 512) // 160, 40)
    with pytest.raises(InputError, match="too short.*less than one 32 ms analysis frame"):
        audio.features(x[:500], 16000, spec, name="tiny.wav")


def test_a_tone_lights_the_mel_band_of_its_frequency():
    rate, f = 16000, 1000.0
    x = np.sin(2 * np.pi * f * np.arange(rate) / rate).astype(np.float32)
    frames = audio.features(x, rate, audio.FeatureSpec("logmel", 40, rate))
    # Slaney mel scale (librosa's default), written out: linear below 1 kHz at 200/3 Hz per mel.
    edges = np.linspace(0, 1000 / (200 / 3) + np.log(8000 / 1000) / (np.log(6.4) / 27), 42)
    low = 20 / (200 / 3)
    edges = np.linspace(low, edges[-1], 42)
    expected = int(np.argmin(np.abs(edges[1:-1] - 1000 / (200 / 3))))
    assert abs(int(frames.mean(0).argmax()) - expected) <= 1


@needs_sphinx_data
def test_mfccs_follow_cmu_sphinx_s_front_end_on_the_same_audio():
    """goforward.raw and goforward.mfc are the same utterance: Sphinx's MFCCs are the oracle."""
    x = np.fromfile(SPHINX / "goforward.raw", dtype="<i2").astype(np.float32) / 32768
    ours = audio.normalize_utterance(audio.features(x, 16000, audio.FeatureSpec("mfcc", 13, 16000)))
    sphinx = audio.normalize_utterance(audio.read_sphinx_mfc(SPHINX / "goforward.mfc"))
    n = min(len(ours), len(sphinx))
    correlations = [np.corrcoef(ours[:n, k], sphinx[:n, k])[0, 1] for k in range(13)]
    assert min(correlations) > 0.75 and np.mean(correlations) > 0.88


def test_normalisations():
    rng = np.random.default_rng(1)
    frames = rng.normal(3.0, 2.0, (50, 4)).astype(np.float32)
    normed = audio.normalize_utterance(frames)
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(0), 1, atol=1e-3)
    other = rng.normal(0.0, 1.0, (30, 4)).astype(np.float32)
    standardizer = audio.Standardizer.fit([frames, other])
    both = np.concatenate([frames, other])
    np.testing.assert_allclose(standardizer(frames), (frames - both.mean(0)) / (both.std(0) + 1e-5), rtol=1e-4)


def test_feature_cache_computes_once_and_survives_a_new_process(tmp_path):
    x = np.random.default_rng(2).standard_normal(4000).astype(np.float32)
    spec = audio.FeatureSpec("logmel", 20, 16000)
    cache = audio.FeatureCache(tmp_path)
    first = cache.get(x, 16000, spec)
    again = cache.get(x, 16000, spec)
    assert (cache.misses, cache.hits) == (1, 1) and again is first
    fresh = audio.FeatureCache(tmp_path)
    np.testing.assert_array_equal(fresh.get(x, 16000, spec), first)
    assert (fresh.misses, fresh.hits) == (0, 1)
    fresh.get(x, 16000, audio.FeatureSpec("mfcc", 13, 16000))  # other settings: another entry
    assert fresh.misses == 1 and len(list(tmp_path.glob("*.npy"))) == 2


def test_frame_stacking_matches_the_ctc_model_s():
    import torch

    from rnnkit.models.ctc import CTCRecognizer

    frames = np.arange(14, dtype=np.float32).reshape(7, 2)
    model = CTCRecognizer(input_size=2, num_classes=3, hidden_size=2, subsample=3)
    expected = model._stack(torch.from_numpy(frames)[None])[0].numpy()
    np.testing.assert_array_equal(speech.stack(frames, 3), expected)


# -------------------------------------------------------------------------------------- synthesis
def test_voices_and_the_split_keep_whole_voices_apart():
    names = synth.voices()
    assert len(names) == len(set(names)) == 7 * 12 + 5
    assert {n.split("+")[0] for n in names if n.startswith("espeak")} == {f"espeak:{a}" for a in synth.ESPEAK_ACCENTS}
    train, val, test = synth.split_voices(names[:10], 2, 3, seed=4)
    assert (len(train), len(val), len(test)) == (5, 2, 3)
    assert set(train) | set(val) | set(test) == set(names[:10]) and not set(train) & (set(val) | set(test))
    assert synth.split_voices(names[:10], 2, 3, seed=4) == (train, val, test)
    with pytest.raises(InputError, match="raise --voices"):
        synth.split_voices(names[:4], 2, 2, seed=0)


def test_noise_is_added_at_the_requested_signal_to_noise_ratio():
    x = np.sin(np.arange(200_000) / 7).astype(np.float32)
    noisy = synth.add_noise(x, 10.0, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((noisy - x).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.1)


@needs_espeak
def test_synthesis_is_reproducible_and_only_renders_the_voices_asked_for():
    names = synth.voices(3)
    names = [n for n in names if n.startswith("espeak")]
    first = synth.synthesize("ctc", synth.SPOKEN_DIGITS, names, 2, seed=5, progress=False)
    again = synth.synthesize("ctc", synth.SPOKEN_DIGITS, names, 2, seed=5, progress=False)
    assert [c.text for c in first] == [c.text for c in again]
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(first, again))
    only = synth.synthesize("ctc", synth.SPOKEN_DIGITS, names, 2, seed=5, progress=False, only={names[1]})
    assert [c.text for c in only] == [c.text for c in first if c.voice == names[1]]
    assert all(1 <= len(c.text.split()) <= 4 and set(c.text.split()) <= set(synth.SPOKEN_DIGITS) for c in first)


def test_a_missing_speech_tool_names_the_install_command(monkeypatch, tmp_path, cli_error):
    monkeypatch.setattr(synth.shutil, "which", lambda program: None)
    with pytest.raises(InputError, match=r"espeak-ng is not installed.*`sudo apt-get install espeak-ng`"):
        synth.check_tools(["espeak:en-us+m1"])
    err = cli_error(["speech", "train", "--voices", "3", "--val-voices", "1", "--test-voices", "1",
                     "--out", str(tmp_path / "run")])
    assert "sudo apt-get install" in err and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ bad transcript data
def write_transcripts(tmp_path, rows, name="clips.csv") -> Path:
    path = tmp_path / name
    path.write_text("file,text\n" + "".join(f"{f},{t}\n" for f, t in rows))
    return path


def test_bad_clips_in_a_transcript_file_stop_before_training(tmp_path, cli_error):
    tone(tmp_path / "ok.wav")
    (tmp_path / "notes.wav").write_text("not audio")
    soundfile.write(str(tmp_path / "blip.wav"), np.zeros(300), 16000)
    cases = {
        "missing.wav": "does not exist",
        "notes.wav": "is not a WAV file",
        "blip.wav": "too short",
    }
    for file, message in cases.items():
        data = write_transcripts(tmp_path, [("ok.wav", "one"), (file, "two")] * 3)
        err = cli_error(["speech", "train", "--data", str(data), "--out", str(tmp_path / f"run-{file}")])
        assert message in err and file in err
        assert not (tmp_path / f"run-{file}" / "app.json").exists()


def test_a_character_outside_the_alphabet_and_a_transcript_too_long_for_its_frames(tmp_path, cli_error):
    tone(tmp_path / "a.wav", seconds=0.3)
    data = write_transcripts(tmp_path, [("a.wav", "one two")] * 4 + [("a.wav", "caf\u00e9 two")])
    err = cli_error(["speech", "train", "--task", "ctc", "--unit", "char", "--data", str(data), "--val-fraction", "0",
                     "--test-fraction", "0", "--out", str(tmp_path / "run1")])
    assert "outside the alphabet" in err and "'\u00e9'" in err and "--alphabet" in err
    long = " ".join(["seven"] * 12)
    data = write_transcripts(tmp_path, [("a.wav", "one")] * 4 + [("a.wav", long)], "long.csv")
    err = cli_error(["speech", "train", "--task", "ctc", "--subsample", "4", "--data", str(data), "--val-fraction",
                     "0", "--test-fraction", "0", "--out", str(tmp_path / "run2")])
    assert "needs 23 CTC frames" in err and "--subsample" in err


def test_a_word_list_of_one_word_is_refused_before_any_audio(tmp_path, cli_error):
    err = cli_error(["speech", "train", "--words", "yes", "--out", str(tmp_path / "r")])
    assert "at least two comma-separated words" in err and not (tmp_path / "r").exists()


def test_japanese_vowels_is_a_words_task_only(tmp_path, cli_error):
    err = cli_error(["speech", "train", "--dataset", "japanese_vowels", "--task", "ctc", "--out", str(tmp_path / "r")])
    assert "--task words" in err


# ----------------------------------------------------------------------------------- slow: training
SMALL = ["--voices", "5", "--val-voices", "1", "--test-voices", "1", "--clips-per-voice", "6", "--hidden-size", "12",
         "--num-layers", "1", "--batch-size", "6", "--quiet"]


def _train(out, *extra):
    from rnnkit.cli.main import main

    assert main(["speech", "train", *SMALL, "--out", str(out), *extra]) == 0
    return json.loads((Path(out) / "results.json").read_text())


@pytest.mark.slow
@needs_espeak
def test_word_recognition_learns_and_its_verbs_agree(tmp_path, one_thread, capsys):
    from rnnkit.cli.main import main

    # seed 1 holds out espeak voices for validation and test, and trains on 4 espeak and 2 flite voices
    result = _train(tmp_path / "run", "--words", "yes,no", "--voices", "8", "--max-steps", "60", "--lr", "0.01",
                    "--seed", "1")
    assert result["accuracy"] > result["majority_baseline_accuracy"]
    confusion = np.array(result["confusion"])
    assert confusion.sum() == result["test"] and np.trace(confusion) / confusion.sum() == result["accuracy"]
    assert (tmp_path / "run" / "confusion_matrix.png").stat().st_size > 0
    again = speech.evaluate(tmp_path / "run")  # the test split rebuilt from the run's settings and seed
    assert again["accuracy"] == result["accuracy"] and again["confusion"] == result["confusion"]
    capsys.readouterr()
    wav = tmp_path / "clip.wav"
    samples, rate = synth.speak("espeak:en-us+m3", "yes")
    soundfile.write(str(wav), samples, rate)
    assert main(["speech", "transcribe", "--run", str(tmp_path / "run"), str(wav), "--json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["text"] in ("yes", "no") and sum(p for _, p in item["top"]) == pytest.approx(1, abs=1e-5)
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "b.wav").write_bytes(wav.read_bytes())
    (folder / "a.wav").write_bytes(wav.read_bytes())
    assert main(["speech", "transcribe", "--run", str(tmp_path / "run"), str(folder), "--json"]) == 0
    assert [json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()] == \
        [str(folder / "a.wav"), str(folder / "b.wav")]  # a folder was "does not exist"
    assert main(["speech", "transcribe", "--run", str(tmp_path / "run"), str(wav), "--plot", "x.png"]) == 2
    assert "--plot draws a CTC alignment" in capsys.readouterr().err  # it wrote nothing and said nothing


@pytest.mark.slow
@needs_espeak
def test_ctc_on_wav_transcripts_decodes_and_reports_error_rates(tmp_path, one_thread, capsys):
    from rnnkit.cli.main import main

    rows = []
    for i, voice in enumerate(synth.voices(8)):
        for text in ("one two", "three", "two one three"):
            samples, rate = synth.speak(voice, text)
            soundfile.write(str(tmp_path / f"{i}-{len(rows)}.wav"), samples, rate)
            rows.append((f"{i}-{len(rows)}.wav", text))
    data = write_transcripts(tmp_path, rows)
    result = _train(tmp_path / "run", "--task", "ctc", "--unit", "char", "--data", str(data), "--max-steps", "20",
                    "--subsample", "2", "--beam-size", "3")
    for key in ("greedy_cer", "greedy_wer", "beam_cer", "beam_wer"):
        assert result[key] >= 0
    assert (tmp_path / "run" / "ctc_alignment.png").stat().st_size > 0
    assert (tmp_path / "run" / "features").is_dir() and any((tmp_path / "run" / "features").iterdir())
    again = speech.evaluate(tmp_path / "run", beam_size=3)
    assert again["greedy_cer"] == result["greedy_cer"] and again["beam_wer"] == result["beam_wer"]
    capsys.readouterr()
    assert main(["speech", "transcribe", "--run", str(tmp_path / "run"), str(tmp_path / rows[0][0]),
                 "--plot", str(tmp_path / "a.png")]) == 0
    assert capsys.readouterr().out.startswith(str(tmp_path / rows[0][0]))
    assert (tmp_path / "a.png").stat().st_size > 0
    assert main(["speech", "transcribe", "--run", str(tmp_path / "run"), str(tmp_path / rows[0][0]),
                 "--plot", str(tmp_path / "none" / "a.png")]) == 2  # refused before the work, not after
    assert "does not exist; create it first" in capsys.readouterr().err


@pytest.mark.slow
@needs_espeak
@needs_sphinx_data
def test_tidigits_check_reads_all_31_utterances(tmp_path, one_thread):
    result = _train(tmp_path / "run", "--task", "ctc", "--features", "mfcc", "--max-steps", "5", "--beam-size", "2")
    assert result["tidigits"]["examples"] == 31
    assert speech.evaluate(tmp_path / "run", tidigits=True, beam_size=2)["greedy_wer"] == \
        result["tidigits"]["greedy_wer"]


@pytest.mark.slow
def test_japanese_vowels_keeps_its_own_test_split(tmp_path, one_thread):
    pytest.importorskip("sktime", reason="sktime (pip install sktime)")
    result = _train(tmp_path / "run", "--dataset", "japanese_vowels", "--max-steps", "10")
    assert result["test"] == 370 and result["train"] + result["val"] == 270 and len(result["labels"]) == 9
    assert json.loads((tmp_path / "run" / "app.json").read_text())["facts"]["normalization"] == "train"


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("task", ["words", "ctc"])
def test_same_seed_same_run_and_a_killed_run_resumes_to_the_same_bits(task, tmp_path, monkeypatch, one_thread):
    from rnnkit.cli.main import main

    common = ["--task", task, "--dropout", "0.2", "--num-layers", "2", "--seed", "7", "--max-steps", "12",
              "--eval-every", "5", "--checkpoint-every", "5", "--cache-dir", str(tmp_path / "cache")]
    assert_reproducible_and_resumable(
        lambda out, *more: main(["speech", "train", *SMALL, "--out", str(out), *common, *more]), tmp_path, monkeypatch)


def test_an_emitted_eos_class_does_not_cut_the_transcript(monkeypatch):
    """CTC has no end: an untrained network's <eos> class ended the text, hiding the insertions after it from
    CER and WER (and so from the checkpoint choice)."""
    import torch

    from rnnkit.data.vocab import EOS_ID

    vocab = speech.build_vocab(speech.SpeechSettings(task="ctc", unit="char"), [])
    a, b, c = (vocab.token_to_id(x) for x in "abc")
    best_path = [a, 0, EOS_ID, 0, b, 0, c]  # blank is 0
    lp = torch.full((len(best_path), len(vocab)), -10.0)
    lp[torch.arange(len(best_path)), best_path] = 0.0
    monkeypatch.setattr(speech, "log_probs_of", lambda model, frames: [lp.log_softmax(-1)])
    assert speech.decode_texts(None, vocab, [None]) == ["abc"]
    assert speech.decode_texts(None, vocab, [None], beam_size=4) == ["abc"]
