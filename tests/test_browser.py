"""rnnkit serve in a real browser: headless Chromium (Debian's chromium + chromedriver, via Selenium) types a
prime, gets the text streamed, and the page shows exactly what `textgen sample` writes for that seed; the
classify, forecast and translate pages render their answers. Screenshots go to $RNNKIT_SCREENSHOTS (default:
a folder under pytest's temporary directory, printed). The newer apps' pages (dna, handwriting, caption,
speech, music) take their uploads through the page's file input and show the apps' own answers."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install 'rnnkit[serve]')")
pytest.importorskip("uvicorn", reason="needs uvicorn (pip install 'rnnkit[serve]')")
CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("needs the Debian packages chromium and chromium-driver (make system-packages)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from serve_support import (LiveServer, caption_run, dna_runs, handwriting_runs, music_runs,  # noqa: E402
                           png_bytes, speech_runs, trained_runs, wav_bytes)

SHOTS = Path(os.environ.get("RNNKIT_SCREENSHOTS") or Path(tempfile.mkdtemp(prefix="rnnkit-screenshots-")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    print(f"\nscreenshots: {SHOTS}")


def _open(browser, server):
    browser.get(server.url)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "run").is_enabled())


def _run_and_wait(browser):
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#output[data-done=true]") or d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "error").text == ""


def test_textgen_page_streams_the_sample(browser, runs):
    from rnnkit.apps.textgen import sample

    with LiveServer(runs["textgen"]) as server:
        _open(browser, server)
        assert browser.find_element(By.ID, "title").text == "Text generation"
        prime = browser.find_element(By.ID, "prime")
        prime.clear()
        prime.send_keys("the cat")
        for name, value in (("length", "120"), ("seed", "7"), ("temperature", "0.8")):
            field = browser.find_element(By.ID, name)
            field.clear()
            field.send_keys(value)
        browser.find_element(By.ID, "run").click()
        # streamed: some text shows before the whole answer has arrived
        WebDriverWait(browser, 60).until(lambda d: len(d.find_element(By.ID, "output").text) > len("the cat"))
        browser.save_screenshot(str(SHOTS / "textgen_streaming.png"))
        WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#output[data-done=true]"))
        shown = browser.find_element(By.ID, "output").get_property("textContent")
        browser.save_screenshot(str(SHOTS / "textgen_done.png"))
    expected = "".join(sample(runs["textgen"], prime="the cat", length=120, temperature=0.8, seed=7))
    assert shown == "the cat" + expected


def test_textgen_page_shows_a_refusal(browser, runs):
    with LiveServer(runs["textgen"]) as server:
        _open(browser, server)
        field = browser.find_element(By.ID, "length")
        field.clear()
        field.send_keys("999999")
        browser.find_element(By.ID, "run").click()
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").text)
        assert "422" in browser.find_element(By.ID, "error").text and "limit" in browser.find_element(By.ID, "error").text
        browser.save_screenshot(str(SHOTS / "textgen_refusal.png"))


def test_classify_forecast_translate_pages(browser, runs):
    from rnnkit.apps.classify import predict
    from rnnkit.apps.translate import translate

    with LiveServer(runs["classify"]) as server:
        _open(browser, server)
        browser.find_element(By.ID, "text").send_keys("the great film")
        _run_and_wait(browser)
        assert browser.find_element(By.ID, "label").text == predict(runs["classify"], ["the great film"])[0]["label"]
        assert len(browser.find_elements(By.CSS_SELECTOR, "#output .bar")) == 2
        browser.save_screenshot(str(SHOTS / "classify.png"))
    with LiveServer(runs["forecast"]) as server:
        _open(browser, server)
        assert browser.find_element(By.ID, "history").get_property("value").count("\n") == 35  # the run's last rows
        _run_and_wait(browser)
        assert browser.find_elements(By.CSS_SELECTOR, "#output canvas")
        browser.save_screenshot(str(SHOTS / "forecast.png"))
    with LiveServer(runs["translate"]) as server:
        _open(browser, server)
        browser.find_element(By.ID, "text").send_keys("12+34")
        _run_and_wait(browser)
        assert browser.find_element(By.ID, "translation").text == translate(runs["translate"], ["12+34"], beam=1)[0]
        assert browser.find_elements(By.CSS_SELECTOR, "#output canvas")  # the attention heatmap
        browser.save_screenshot(str(SHOTS / "translate.png"))


@pytest.fixture(scope="module")
def new_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("newer")
    return {"dna_lm": dna_runs(root)["lm"], "handwriting": handwriting_runs(root)["classify"],
            "caption": caption_run(root), "speech": speech_runs(root)["words"], "music": music_runs(root)["polyphonic"]}


def _upload(browser, field: str, path: Path) -> None:
    browser.find_element(By.ID, field).send_keys(str(path))


def test_newer_apps_pages(browser, new_runs, tmp_path):
    import numpy as np

    from rnnkit.apps import caption, dna, handwriting, speech

    with LiveServer(new_runs["dna_lm"]) as server:
        _open(browser, server)
        browser.find_element(By.ID, "prime").send_keys("ACGU")
        for name, value in (("length", "80"), ("seed", "3")):
            browser.find_element(By.ID, name).clear()
            browser.find_element(By.ID, name).send_keys(value)
        _run_and_wait(browser)
        shown = browser.find_element(By.ID, "output").get_property("textContent")
        assert shown == "ACGU" + dna.sample(new_runs["dna_lm"], prime="ACGU", length=80, seed=3)[0]  # prime shown once
        browser.save_screenshot(str(SHOTS / "dna_lm.png"))
    image = np.zeros((16, 16), np.uint8)
    image[3:13, 7:9] = 255
    (tmp_path / "digit.png").write_bytes(png_bytes(image))
    with LiveServer(new_runs["handwriting"]) as server:
        _open(browser, server)
        _upload(browser, "image", tmp_path / "digit.png")
        _run_and_wait(browser)
        want = handwriting.read(new_runs["handwriting"], [tmp_path / "digit.png"], resize=True)[0]["text"]
        assert browser.find_element(By.ID, "label").text == want
        assert len(browser.find_elements(By.CSS_SELECTOR, "#output .bar")) == 3
        browser.save_screenshot(str(SHOTS / "handwriting.png"))
    (tmp_path / "picture.png").write_bytes(png_bytes((np.random.default_rng(2).random((20, 24, 3)) * 255)
                                                     .astype(np.uint8), "RGB"))
    with LiveServer(new_runs["caption"]) as server:
        _open(browser, server)
        _upload(browser, "image", tmp_path / "picture.png")
        _run_and_wait(browser)
        want = caption.caption(new_runs["caption"], [tmp_path / "picture.png"], beam=3, resize=True)[0][1]
        assert browser.find_element(By.ID, "caption").text == want
        assert browser.find_elements(By.CSS_SELECTOR, "#output figure.attention canvas")
        browser.save_screenshot(str(SHOTS / "caption.png"))
    (tmp_path / "clip.wav").write_bytes(wav_bytes())
    with LiveServer(new_runs["speech"]) as server:
        _open(browser, server)
        _upload(browser, "audio", tmp_path / "clip.wav")
        _run_and_wait(browser)
        want = speech.transcribe(new_runs["speech"], [str(tmp_path / "clip.wav")])[0]["text"]
        assert browser.find_element(By.ID, "label").text == want
        browser.save_screenshot(str(SHOTS / "speech.png"))
        _upload(browser, "audio", tmp_path / "digit.png")  # not a WAV file: the page shows the refusal
        browser.find_element(By.ID, "run").click()
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").text)
        assert "415" in browser.find_element(By.ID, "error").text
    with LiveServer(new_runs["music"]) as server:
        _open(browser, server)
        browser.find_element(By.ID, "seed").send_keys("4")
        _run_and_wait(browser)
        assert browser.find_element(By.ID, "midi").get_attribute("href").startswith("data:audio/midi;base64,")
        assert browser.execute_script("return document.getElementById('roll').naturalWidth") > 100  # the PNG decoded
        browser.save_screenshot(str(SHOTS / "music.png"))
