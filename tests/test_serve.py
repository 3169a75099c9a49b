"""rnnkit serve: the JSON API of every app against the apps' own Python functions (same seed, same text;
same probabilities; same forecast; same translation), its 4xx refusals, a bounded load test, the CLI."""

import base64
import json
import statistics
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="needs fastapi (pip install 'rnnkit[serve]')")
pytest.importorskip("httpx", reason="needs httpx (pip install 'rnnkit[serve]')")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from rnnkit.cli.main import main  # noqa: E402
from rnnkit.serve import Limits, create_app  # noqa: E402
from serve_support import (LiveServer, caption_run, classify_run, dna_runs, handwriting_runs,  # noqa: E402
                           music_runs, png_bytes,
                           speech_runs, textgen_run, trained_runs, wav_bytes)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return {"classify": classify_run(root), "textgen": textgen_run(root), **{f"dna_{task}": run for task, run in
                                                                              dna_runs(root).items()}}


@pytest.fixture(scope="module")
def classify_client(quick_runs):
    return TestClient(create_app(quick_runs["classify"], Limits(max_body_bytes=2_000, max_text_chars=100)))


def test_classify_probabilities_equal_the_apps_predict(classify_client, quick_runs):
    from rnnkit.apps.classify import predict

    response = classify_client.post("/api/predict", json={"text": "great film"})
    assert response.status_code == 200
    want = predict(quick_runs["classify"], ["great film"])[0]
    got = response.json()
    assert got["label"] == want["label"] and got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-7)
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


def test_page_and_assets_are_local(classify_client):
    page = classify_client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in ("/static/app.js", "/static/style.css"):
        response = classify_client.get(asset)
        assert response.status_code == 200 and "https://" not in response.text
    info = classify_client.get("/api/info").json()
    assert info["app"] == "classify" and info["result"] == "probabilities" and info["form"][0]["name"] == "text"


@pytest.mark.parametrize("send, status, message", [
    (dict(content=b'{"text": "great', headers={"Content-Type": "application/json"}), 400, "not valid JSON"),
    (dict(json=["great"]), 422, "must be a JSON object"),
    (dict(json={"txt": "great"}), 422, "unknown field(s) ['txt']"),
    (dict(json={"text": ""}), 422, "'text' is empty"),
    (dict(json={"text": 5}), 422, "'text' must be a string"),
    (dict(json={"text": "x" * 101}), 422, "the limit is 100"),
    (dict(json={"text": "y" * 3000}), 413, "over the limit of 2000 bytes"),
    (dict(content=b"text=great", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415, "JSON"),
    (dict(content=b'{"text": NaN}', headers={"Content-Type": "application/json"}), 400, "NaN is not a JSON number"),
])
def test_refusals_are_one_json_line_with_a_4xx(classify_client, send, status, message):
    response = classify_client.post("/api/predict", **send)
    assert response.status_code == status and message in response.json()["error"]


def test_a_deeply_nested_body_is_a_400_not_a_crash(quick_runs):
    client = TestClient(create_app(quick_runs["classify"]))  # 64 kB bodies: room for 20,000 brackets
    response = client.post("/api/predict", content=b"[" * 20_000 + b"]" * 20_000,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]


def test_unknown_paths_methods_and_missing_length(classify_client):
    assert classify_client.get("/api/nothing").status_code == 404
    assert "no such page" in classify_client.get("/api/nothing").json()["error"]
    assert classify_client.get("/api/predict").status_code == 405
    streamed = classify_client.post("/api/stream", json={"text": "great"})  # classify does not stream
    assert streamed.status_code == 422 and "/api/predict" in streamed.json()["error"]

    def chunks():
        yield b'{"text": "great"}'
    response = classify_client.post("/api/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 411


def test_textgen_streams_what_textgen_sample_writes(quick_runs):
    from rnnkit.apps.textgen import sample

    client = TestClient(create_app(quick_runs["textgen"], Limits(max_generate_tokens=50)))
    body = {"prime": "the c", "length": 40, "temperature": 0.7, "top_p": 1.0, "seed": 3}
    with client.stream("POST", "/api/stream", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        pieces = list(response.iter_text())
    text = "".join(pieces)
    assert text == "".join(sample(quick_runs["textgen"], prime="the c", length=40, temperature=0.7, seed=3))
    assert len(text) == 40
    for bad, message in [({"length": 51}, "over the limit of 50"), ({"temperature": -1}, "'temperature' must be in"),
                         ({"length": 2.5}, "must be an integer"), ({"prime": "x" * 2001}, "the limit is 2000"),
                         ({"top_p": 10**400}, "'top_p' must be a finite number")]:
        response = client.post("/api/stream", json={**body, **bad})
        assert response.status_code == 422 and message in response.json()["error"], bad


def test_dna_classifier_probabilities_equal_the_apps_predict(quick_runs):
    from rnnkit.apps.dna import predict

    client = TestClient(create_app(quick_runs["dna_classify"], Limits(max_text_chars=300)))
    info = client.get("/api/info").json()
    assert info["result"] == "probabilities" and [f["name"] for f in info["form"]] == ["sequence"]
    fasta = ">hsa-x\nACGUacgu\nNNRY GATTACA\n"  # header dropped; case, U, ambiguity codes as the app reads them
    response = client.post("/api/predict", json={"sequence": fasta})
    assert response.status_code == 200
    want = predict(quick_runs["dna_classify"], [("x", "ACGUACGUNNRYGATTACA")])[0]
    got = response.json()
    assert got["label"] == want["label"] and got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-7)
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    for bad, status, message in [({"sequence": "MKVLAAGIV"}, 422, "not nucleotide codes"),
                                 ({"sequence": ">only a header"}, 422, "only FASTA headers"),
                                 ({"sequence": "A" * 301}, 422, "the limit is 300"),
                                 ({"prime": "ACG"}, 422, "unknown field(s) ['prime']")]:
        response = client.post("/api/predict", json=bad)
        assert response.status_code == status and message in response.json()["error"], bad
    assert client.post("/api/stream", json={"sequence": "ACGT"}).status_code == 422  # a classifier does not stream


def test_dna_language_model_streams_what_the_app_samples(quick_runs):
    from rnnkit.apps import dna

    run = quick_runs["dna_lm"]
    client = TestClient(create_app(run, Limits(max_generate_tokens=60)))
    assert client.get("/api/info").json()["result"] == "stream"
    body = {"prime": "acgu", "length": 60, "temperature": 0.9, "top_p": 1.0, "seed": 5}
    with client.stream("POST", "/api/stream", json=body) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    assert text == dna.sample(run, prime="acgu", length=60, temperature=0.9, seed=5)[0]
    assert text.startswith("ACGU") and set(text) <= set("ACGUN") and len(text) <= 4 + 60  # an RNA run shows U
    for bad, message in [({"length": 61}, "over the limit of 60"), ({"prime": "ACGZ"}, "not nucleotide codes"),
                         ({"top_p": 0}, "'top_p' must be in")]:
        response = client.post("/api/stream", json={**body, **bad})
        assert response.status_code == 422 and message in response.json()["error"], bad
    assert client.post("/api/predict", json={"prime": "A"}).status_code == 422


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def upload_runs(tmp_path_factory):
    pytest.importorskip("PIL", reason="needs Pillow (pip install 'rnnkit[vision]')")
    root = tmp_path_factory.mktemp("uploads")
    return {"caption": caption_run(root),
            **{f"handwriting_{task}": run for task, run in handwriting_runs(root).items()}}


def _refused_uploads(client, field: str, good: bytes, limit: int, *, kind: str):
    """Status codes of the bad uploads every upload page must refuse, in one line each."""
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, limit + 10, dtype=np.uint8).tobytes()
    cases = [({field: "not base64!"}, 422, "not valid base64"),
             ({field: b64(b"plain text, not a file at all")}, 415, "not an image" if kind == "image" else "not a WAV"),
             ({field: b64(good[:-20] if kind == "image" else good[:30])}, 422, "damaged"),  # cut short
             ({field: b64(noise)}, 413, f"upload limit of {limit} bytes"),
             ({}, 422, f"'{field}' is required"),
             ({field: 5}, 422, "base64")]
    for body, status, message in cases:
        response = client.post("/api/predict", json=body)
        assert response.status_code == status and message in response.json()["error"], (body.keys(), response.text)
    too_big = client.post("/api/predict", content=b"{" + b" " * (Limits().max_body_bytes + 2 * limit) + b"}",
                          headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413 and "request body is over the limit" in too_big.json()["error"]


def test_handwriting_class_of_an_uploaded_image_equals_the_apps_read(upload_runs, tmp_path):
    import numpy as np

    from rnnkit.apps.handwriting import read

    run = upload_runs["handwriting_classify"]
    client = TestClient(create_app(run, Limits(max_upload_bytes=5_000)))
    info = client.get("/api/info").json()
    assert info["result"] == "probabilities" and info["form"][0]["kind"] == "image"
    image = np.zeros((16, 16), np.uint8)  # 16x16, resized to the run's 8x8 as `read --resize` does
    image[3:13, 7:9] = 255
    data = png_bytes(image)
    (tmp_path / "one.png").write_bytes(data)
    response = client.post("/api/predict", json={"image": "data:image/png;base64," + b64(data)})
    assert response.status_code == 200
    got, want = response.json(), read(run, [tmp_path / "one.png"], resize=True)[0]
    assert got["label"] == want["text"] and got["probability"] == pytest.approx(want["probability"], abs=1e-7)
    assert set(got["probabilities"]) == {"zero", "one", "two"}
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert max(got["probabilities"].values()) == got["probability"]
    _refused_uploads(client, "image", data, 5_000, kind="image")
    small = TestClient(create_app(run, Limits(max_image_pixels=255)))  # 16 x 16 = 256 pixels
    response = small.post("/api/predict", json={"image": b64(data)})
    assert response.status_code == 413 and "16x16 pixels, over the limit of 255" in response.json()["error"]


def test_handwriting_text_of_an_uploaded_line_equals_the_apps_read(upload_runs, tmp_path):
    import numpy as np

    from rnnkit.apps.handwriting import read

    run = upload_runs["handwriting_lines"]
    client = TestClient(create_app(run))
    assert client.get("/api/info").json()["result"] == "text"
    line = (np.random.default_rng(1).random((16, 60)) * 255).astype(np.uint8)  # scaled to 8 pixels high
    (tmp_path / "line.png").write_bytes(png_bytes(line))
    response = client.post("/api/predict", json={"image": b64(png_bytes(line))})
    assert response.status_code == 200
    got = response.json()["text"]
    assert got == read(run, [tmp_path / "line.png"])[0]["text"] and set(got) <= set("0123456789")


def test_caption_of_an_uploaded_image_with_its_attention_equals_the_apps_caption(upload_runs, tmp_path):
    import numpy as np

    from rnnkit.apps.caption import caption

    run = upload_runs["caption"]
    client = TestClient(create_app(run, Limits(max_upload_bytes=8_000)))
    info = client.get("/api/info").json()
    assert info["result"] == "caption" and info["image_shape"] == [3, 16, 16]
    image = (np.random.default_rng(2).random((20, 24, 3)) * 255).astype(np.uint8)  # resized to 16x16
    data = png_bytes(image, "RGB")
    (tmp_path / "picture.png").write_bytes(data)
    for beam in (1, 2):
        response = client.post("/api/predict", json={"image": b64(data), "beam": beam})
        assert response.status_code == 200
        got = response.json()
        assert got["caption"] == caption(run, [tmp_path / "picture.png"], beam=beam, resize=True)[0][1]
        assert got["grid"] == [4, 4] and len(got["attention"]) == len(got["words"]) >= 1
        assert all(len(row) == 16 and sum(row) == pytest.approx(1.0, abs=1e-5) for row in got["attention"])
    response = client.post("/api/predict", json={"image": b64(data), "beam": 11})
    assert response.status_code == 422 and "'beam' must be in [1, 10]" in response.json()["error"]
    _refused_uploads(client, "image", data, 8_000, kind="image")


@pytest.fixture(scope="module")
def speech_client_runs(tmp_path_factory):
    pytest.importorskip("soundfile", reason="needs soundfile (pip install 'rnnkit[speech]')")
    pytest.importorskip("librosa", reason="needs librosa (pip install 'rnnkit[speech]')")
    return speech_runs(tmp_path_factory.mktemp("speech"))


def test_speech_word_of_an_uploaded_wav_equals_the_apps_transcribe(speech_client_runs, tmp_path):
    from rnnkit.apps.speech import transcribe

    run = speech_client_runs["words"]
    client = TestClient(create_app(run, Limits(max_upload_bytes=40_000)))
    info = client.get("/api/info").json()
    assert info["result"] == "probabilities" and info["form"][0]["kind"] == "audio"
    data = wav_bytes()
    (tmp_path / "clip.wav").write_bytes(data)
    response = client.post("/api/predict", json={"audio": "data:audio/wav;base64," + b64(data)})
    assert response.status_code == 200
    got, want = response.json(), transcribe(run, [str(tmp_path / "clip.wav")], top=3)[0]
    assert got["label"] == want["text"] and got["probability"] == pytest.approx(want["probability"], abs=1e-7)
    assert [(w, pytest.approx(p, abs=1e-7)) for w, p in want["top"]] == \
        sorted(got["probabilities"].items(), key=lambda item: -item[1])
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert not (run / "features").exists() or len(list((run / "features").iterdir())) == 1  # the app's cache only
    _refused_uploads(client, "audio", data, 40_000, kind="audio")


def test_speech_transcription_of_an_uploaded_wav_equals_the_apps_transcribe(speech_client_runs, tmp_path):
    from rnnkit.apps.speech import transcribe

    run = speech_client_runs["ctc"]
    client = TestClient(create_app(run))
    assert client.get("/api/info").json()["result"] == "text"
    data = wav_bytes(seconds=1.0, seed=1)
    (tmp_path / "clip.wav").write_bytes(data)
    for beam in (1, 4):
        response = client.post("/api/predict", json={"audio": b64(data), "beam": beam})
        assert response.status_code == 200
        got = response.json()["text"]
        assert got == transcribe(run, [str(tmp_path / "clip.wav")], beam_size=beam)[0]["text"]
    short = client.post("/api/predict", json={"audio": b64(wav_bytes(seconds=0.001))})
    assert short.status_code == 422 and "the upload is too short" in short.json()["error"], short.text
    broken = client.post("/api/predict", json={"audio": b64(b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * 40)})
    assert broken.status_code == 422 and "damaged WAV" in broken.json()["error"]


@pytest.mark.parametrize("mode", ["polyphonic", "melodic"])
def test_music_sample_is_the_midi_and_piano_roll_the_app_writes(tmp_path_factory, tmp_path, mode):
    pytest.importorskip("mido", reason="needs mido (pip install 'rnnkit[music]')")
    from rnnkit.apps.music import sample

    run = music_runs(tmp_path_factory.mktemp("music"))[mode]
    client = TestClient(create_app(run, Limits(max_generate_tokens=40)))
    info = client.get("/api/info").json()
    assert info["result"] == "music" and ("top_p" in [f["name"] for f in info["form"]]) == (mode == "melodic")
    body = {"length": 24, "temperature": 1.0, "seed": 4, "tempo": 120}
    response = client.post("/api/predict", json=body)
    assert response.status_code == 200, response.text
    got = response.json()
    want = sample(run, tmp_path / "want.mid", length=24, temperature=1.0, seed=4, tempo=120)
    assert base64.b64decode(got["midi"]) == (tmp_path / "want.mid").read_bytes()  # the same notes, to the byte
    assert base64.b64decode(got["png"]).startswith(b"\x89PNG") and got["notes"] == want["notes"] >= 1
    assert got["seconds"] == want["seconds"]
    for bad, message in [({"length": 41}, "over the limit of 40"), ({"tempo": 0}, "'tempo' must be in"),
                         ({"prime": "bach/bwv66.6"}, "unknown field(s) ['prime']")]:
        response = client.post("/api/predict", json={**body, **bad})
        assert response.status_code == 422 and message in response.json()["error"], bad


def test_cli_refuses_an_unknown_run_in_one_line(tmp_path, capsys):
    assert main(["serve", "--run", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit serve: error:") and "not a finished rnnkit run" in err and "\n" not in err
    assert main(["serve", "--run", str(tmp_path), "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "127.0.0.1" in out and "--max-upload-bytes" in out
    for app in ("dna", "handwriting", "caption", "speech", "music"):
        assert f"# {app}:" in out, app


def test_cli_passes_the_upload_limit_to_the_handler(quick_runs, monkeypatch):
    import rnnkit.serve

    seen = {}
    monkeypatch.setattr(rnnkit.serve, "serve", lambda run, **kwargs: seen.update(kwargs))
    assert main(["serve", "--run", str(quick_runs["classify"]), "--max-upload-bytes", "1234"]) == 0
    assert seen["limits"].max_upload_bytes == 1234 and seen["handler"].limits.max_upload_bytes == 1234
    assert main(["serve", "--run", str(quick_runs["classify"]), "--max-upload-bytes", "0"]) == 2


# ----------------------------------------------------------------------------- slow: real runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory.mktemp("trained"))


@pytest.mark.slow
def test_every_apps_run_exports_through_the_cli(runs, capsys):
    """`rnnkit export --run` on real runs of the four apps: each file checked against PyTorch to 1e-5."""
    for app, run in runs.items():
        assert main(["export", "--run", str(run), "--tolerance", "1e-5", "--json"]) == 0, app
        manifest = json.loads(capsys.readouterr().out)
        assert manifest["app"] == app and max(manifest["max_difference"].values()) < 1e-5
        expected = {"encoder", "decoder_step"} if app == "translate" else {"model"}
        assert set(manifest["files"]) == expected


@pytest.mark.slow
def test_forecast_equals_the_apps_predict(runs):
    from rnnkit.apps import forecast

    client = TestClient(create_app(runs["forecast"]))
    info = client.get("/api/info").json()
    assert info["result"] == "forecast" and len(info["example"]) == 36 and info["horizon"] == 6
    response = client.post("/api/predict", json={"history": info["example"]})
    assert response.status_code == 200
    # the app's own predict on the run's data forecasts after the same last rows
    want = forecast.predict(runs["forecast"])
    got = response.json()["forecast"]
    assert len(got) == 6 and [v for row in got for v in row] == pytest.approx([v for row in want["values"] for v in row],
                                                                              rel=1e-6)
    short = client.post("/api/predict", json={"history": info["example"][:5]})
    assert short.status_code == 422 and "reads the last 12" in short.json()["error"]
    nan = client.post("/api/predict", json={"history": [["x"]] * 12})
    assert nan.status_code == 422 and "list of rows of 1 numbers" in nan.json()["error"]
    huge = client.post("/api/predict", json={"history": [10**400] + info["example"]})  # beyond float64
    assert huge.status_code == 422 and "not a finite number" in huge.json()["error"]


@pytest.mark.slow
def test_translation_with_attention_equals_the_apps_translate(runs):
    from rnnkit.apps.translate import translate

    client = TestClient(create_app(runs["translate"]))
    response = client.post("/api/predict", json={"text": "12+34"})
    assert response.status_code == 200
    got = response.json()
    assert got["translation"] == translate(runs["translate"], ["12+34"], beam=1)[0]
    assert got["source_tokens"] == list("12+34")
    rows = got["attention"]
    assert len(rows) == len(got["output_tokens"]) and all(len(r) == 5 for r in rows)
    assert all(sum(r) == pytest.approx(1.0, abs=1e-5) for r in rows)  # each output step's weights sum to one


@pytest.mark.slow
@pytest.mark.parametrize("app, path, body", [
    ("classify", "/api/predict", {"text": "the great film"}),
    ("textgen", "/api/stream", {"prime": "the ", "length": 30, "seed": 1}),
])
def test_load_200_requests_from_8_clients(runs, app, path, body, capsys):
    """A bounded load test on localhost: 200 requests from 8 concurrent clients, no errors, every answer
    equal to the one a single request gets; latency percentiles printed."""
    with LiveServer(runs[app]) as server:
        expected = httpx.post(server.url + path, json=body, timeout=60).text
        latencies, failures, lock = [], [], threading.Lock()

        def client():
            with httpx.Client(base_url=server.url, timeout=60) as session:
                for _ in range(25):
                    started = time.perf_counter()
                    response = session.post(path, json=body)
                    elapsed = time.perf_counter() - started
                    with lock:
                        latencies.append(elapsed)
                        if response.status_code != 200 or response.text != expected:
                            failures.append((response.status_code, response.text[:80]))

        threads = [threading.Thread(target=client) for _ in range(8)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    assert not failures and len(latencies) == 200
    q = statistics.quantiles(sorted(latencies), n=100)
    line = (f"serve load {app}: 200 requests, 8 clients, {wall:.1f} s, {200 / wall:.0f} req/s; latency p50 "
            f"{1000 * q[49]:.0f} ms, p90 {1000 * q[89]:.0f} ms, p99 {1000 * q[98]:.0f} ms, max {1000 * max(latencies):.0f} ms")
    with capsys.disabled():
        print("\n" + line)
    assert json.dumps(line)


@pytest.fixture(scope="module")
def newer_trained(tmp_path_factory):
    """Real tiny runs (a few steps) of dna classify, handwriting classify and music: their app.json and
    facts as training writes them, not as the quick tests' hand-written runs say."""
    import random

    import numpy as np

    from rnnkit.data import music as notation

    root = tmp_path_factory.mktemp("newer_trained")
    rng = random.Random(0)
    (root / "seqs.fa").write_text("".join(f">{'up' if i % 2 else 'down'}|s{i}\n{''.join(rng.choices('ACGT', k=30))}\n"
                                          for i in range(60)))
    (root / "midi").mkdir()
    for i in range(8):
        notes = [notation.Note(t, 1, p) for t in range(12 + i) for p in ((60, 64, 67), (62, 65, 69))[t % 2]]
        notation.write_midi(notes, root / "midi" / f"p{i}.mid")
    images = root / "images"
    images.mkdir()
    lines = ["file,label"]
    for i in range(40):
        picture = np.zeros((12, 12), np.uint8)
        picture[2:10, 5 + i % 2: 7 + i % 2] = 255
        (images / f"i{i}.png").write_bytes(png_bytes(picture))
        lines.append(f"i{i}.png,{'left' if i % 2 == 0 else 'right'}")
    (images / "labels.csv").write_text("\n".join(lines) + "\n")
    quick = ["--max-steps", "4", "--eval-every", "4", "--quiet", "--no-tensorboard", "--hidden-size", "8"]
    commands = {"dna": ["dna", "train", "--data", str(root / "seqs.fa"), "--label-pattern", r"^(\w+)\|",
                        "--batch-size", "8"],
                "music": ["music", "train", "--data", str(root / "midi"), "--batch-size", "2"],
                "handwriting": ["handwriting", "train", "--data", str(images), "--batch-size", "8"]}
    for app, command in commands.items():
        assert main([*command, "--out", str(root / app), *quick]) == 0, app
    return root


@pytest.mark.slow
def test_newer_apps_real_runs_answer_as_their_apps(newer_trained):
    from rnnkit.apps import dna, handwriting, music

    root = newer_trained
    client = TestClient(create_app(root / "dna"))
    got = client.post("/api/predict", json={"sequence": "ACGTACGTAC"}).json()
    assert got["probabilities"] == pytest.approx(dna.predict(root / "dna", [("x", "ACGTACGTAC")])[0]["probabilities"],
                                                 abs=1e-7) and set(got["probabilities"]) == {"down", "up"}
    client = TestClient(create_app(root / "handwriting"))
    image = root / "images" / "i3.png"
    got = client.post("/api/predict", json={"image": b64(image.read_bytes())}).json()
    assert got["label"] == handwriting.read(root / "handwriting", [image])[0]["text"]
    client = TestClient(create_app(root / "music"))
    assert "top_p" not in [f["name"] for f in client.get("/api/info").json()["form"]]  # polyphonic, from the data
    response = client.post("/api/predict", json={"length": 16, "seed": 2})
    want = music.sample(root / "music", root / "want.mid", length=16, seed=2)
    assert response.status_code == 200 and base64.b64decode(response.json()["midi"]) == (root / "want.mid").read_bytes()
    assert response.json()["notes"] == want["notes"]
