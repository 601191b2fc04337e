"""``spmm serve`` driven end to end in headless Chromium (Playwright; Debian's ``chromium``).

One server (the real command, in a subprocess on a free localhost port) serves every test;
screenshots land in each test's ``tmp_path``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile

from tests.conftest import shared_data_dir

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

pytest.importorskip("gradio", reason="the ui extra is not installed: pip install -e '.[ui]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the ui extra is not installed: pip install -e '.[ui]'")
CHROMIUM = Path(os.environ.get("SPMM_CHROMIUM", "/usr/lib/chromium/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SPMM_CHROMIUM)", allow_module_level=True)

START_SECONDS = 90
REQUEST_MS = 30_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's GRADIO_TEMP_DIR, where uploads land."""
    return tmp_path_factory.mktemp("gradio")


@contextlib.contextmanager
def serving(log: Path, uploads: Path, *arguments: str) -> Iterator[str]:
    """The URL of ``spmm serve <arguments>`` running on a free port (stopped when the block ends)."""
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(uploads)}
    command = [sys.executable, "-c", "import sys; from spmm.cli import main; sys.exit(main())",
               "serve", "--port", str(port), *arguments]
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"spmm serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"spmm serve did not answer within {START_SECONDS} s:\n{log.read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, uploads: Path) -> Iterator[str]:
    """The URL of ``spmm serve`` running on a free port (stopped after the module)."""
    with serving(tmp_path_factory.mktemp("server") / "serve.log", uploads) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator["sync_api.Browser"]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server: str) -> Iterator["sync_api.Page"]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(REQUEST_MS)
    tab.goto(server)
    yield tab
    context.close()


def _picture(tmp_path: Path) -> Path:
    """A shared ImageNet picture, else scikit-image's chelsea."""
    folder = shared_data_dir() / "imagenet-sample"
    pictures = sorted(folder.glob("*.JPEG")) if folder.is_dir() else []
    if pictures:
        return pictures[0]
    from PIL import Image
    from skimage import data

    path = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


def _tone(path: Path, seconds: float, frequency: float = 440.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(str(path), (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), 16000)
    return path


def _huge_png(path: Path, side: int = 20_000) -> Path:
    """A valid PNG header announcing ``side`` × ``side`` pixels (400 megapixels) with almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _upload(page, component: str, path: Path) -> None:
    """Upload ``path`` into ``component``, clearing what it held first."""
    clear = page.locator(f"#{component} button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator(f"#{component} input[type=file]").set_input_files(str(path))


def _status(page, tab: str, expected: str) -> str:
    """Wait until the tab's status box contains ``expected``; its text."""
    status = page.locator(f"#{tab}-status")
    sync_api.expect(status).to_contain_text(expected, timeout=REQUEST_MS)
    return status.inner_text()


def _image_pixels(page, selector: str) -> np.ndarray:
    """The pixels of the <img> under ``selector`` (data: URL or fetched from the server)."""
    from PIL import Image

    source = page.locator(f"{selector} img").first.get_attribute("src")
    assert source, f"{selector} shows no image"
    if source.startswith("data:"):
        payload = base64.b64decode(source.split(",", 1)[1])
    else:
        payload = page.request.get(source).body()
    return np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"), dtype=np.float64)


def _explain_image(page, path: Path) -> str:
    _upload(page, "image-input", path)
    page.locator("#image-explain").click()
    return _status(page, "image", "Explained")


def test_image_heatmap_and_top1(page, tmp_path: Path) -> None:
    import spmm

    picture = _picture(tmp_path)
    expected = spmm.load("efficientnet-lite0").predict([str(picture)], k=1)[0][0].label
    status = _explain_image(page, picture)
    assert expected in status
    sync_api.expect(page.locator("#image-top")).to_contain_text(expected)
    heatmap = _image_pixels(page, "#image-heatmap")
    assert heatmap.shape[0] >= 224 and heatmap.shape[1] > 224, "the 224×224 map and its colour bar"
    assert heatmap.std() > 5.0, "the heatmap is blank"
    assert _image_pixels(page, "#image-overlay").std() > 5.0, "the overlay is blank"
    sync_api.expect(page.locator("#image-files")).to_contain_text(".json")
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "image.png"), full_page=True)


def _download_names(page, component: str) -> list[str]:
    """File names of the download links in ``component``."""
    from urllib.parse import unquote

    links = page.locator(f"#{component} a[href]")
    sync_api.expect(links.first).to_be_attached()
    return [unquote(links.nth(i).get_attribute("href").split("?")[0].rsplit("/", 1)[-1]) for i in range(links.count())]


def test_preview_hint_overlay_controls_and_download_names(page, tmp_path: Path) -> None:
    from spmm.methods.registry import get_method

    picture = _picture(tmp_path)
    _upload(page, "image-input", picture)
    assert _image_pixels(page, "#image-preview").std() > 5.0, "no preview of the upload"
    hint = page.locator("#image-method-hint")
    sync_api.expect(hint).to_contain_text(get_method("soft_pullback").summary)
    page.locator("#image-method input").click()
    page.get_by_role("option", name="gradient", exact=True).click()
    sync_api.expect(hint).to_contain_text(get_method("gradient").summary)
    page.locator("#image-explain").click()
    status = _status(page, "image", "Explained")
    target = re.search(r"Explained (.+) with", status).group(1).strip()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", target).strip("_.")[:40]
    names = _download_names(page, "image-files")
    assert f"{picture.stem}-efficientnet-lite0-gradient-{stem}.json" in names, names
    assert f"{picture.stem}-efficientnet-lite0-gradient-{stem}.png" in names, names
    before = _image_pixels(page, "#image-overlay")
    slider = page.locator("#image-opacity input[type=number]")
    slider.fill("0")
    slider.press("Enter")
    page.wait_for_timeout(1500)
    faded = _image_pixels(page, "#image-overlay")
    assert np.abs(faded - before).mean() > 1.0, "the opacity slider did not redraw the overlay"
    picture_part = faded[10:200, 10:200]
    assert np.abs(picture_part - picture_part.mean(axis=2, keepdims=True)).max() < 2.0, \
        "at opacity 0 the overlay is the greyed picture"
    slider.fill("1")
    slider.press("Enter")
    page.wait_for_timeout(1500)
    inferno = _image_pixels(page, "#image-overlay")
    page.locator("#image-cmap input").click()
    page.get_by_role("option", name="viridis", exact=True).click()
    page.wait_for_timeout(1500)
    assert np.abs(_image_pixels(page, "#image-overlay") - inferno).mean() > 1.0, "the colour map did not change"
    page.screenshot(path=str(tmp_path / "controls.png"), full_page=True)


def test_sampling_method_shows_its_samples_as_progress(page, tmp_path: Path) -> None:
    _upload(page, "image-input", _picture(tmp_path))
    page.locator("#image-method input").click()
    page.get_by_role("option", name="smooth_pullback", exact=True).click()
    page.locator("#image-explain").click()
    sync_api.expect(page.get_by_text(re.compile(r"smooth_pullback: samples")).first).to_be_visible()
    _status(page, "image", "Explained")


def _step_logit(page) -> tuple[int, float]:
    caption = re.search(r"step (\d+): .* logit (-?[\d.]+)", page.locator("#ascent-caption").inner_text())
    assert caption, "no step caption"
    return int(caption.group(1)), float(caption.group(2))


def test_counterfactual_slider_walks_the_ascent(page, tmp_path: Path) -> None:
    _upload(page, "image-input", _picture(tmp_path))
    page.get_by_text("Counterfactual: PullbackAscent").click()
    page.locator("#image-ascent").click()
    sync_api.expect(page.locator("#ascent-status")).to_contain_text("PullbackAscent done")
    last, last_logit = _step_logit(page)
    last_frame = _image_pixels(page, "#ascent-frame")
    assert last == 5
    slider = page.locator("#ascent-step input[type=number]")
    slider.fill("0")
    slider.press("Enter")
    sync_api.expect(page.locator("#ascent-caption")).to_contain_text("step 0:")
    first, first_logit = _step_logit(page)
    assert last_logit > first_logit, "the ascent did not raise the target's logit"
    assert np.abs(_image_pixels(page, "#ascent-frame") - last_frame).mean() > 0.5, "x_0 and x_K look the same"
    page.screenshot(path=str(tmp_path / "counterfactual.png"), full_page=True)


def test_text_words_match_typed_text(page, tmp_path: Path) -> None:
    typed = "a gripping , funny film that never drags"
    _open_tab(page, "Text")
    page.locator("#text-input textarea").fill(typed)
    page.locator("#text-explain").click()
    _status(page, "text", "Predicted")
    spans = page.locator("#text-words span[title]")
    words = spans.all_inner_texts()
    assert words == typed.split()
    assert all(float(score) == float(score) for score in (spans.nth(i).get_attribute("title")
                                                            for i in range(len(words))))
    styles = [spans.nth(i).get_attribute("style") for i in range(len(words))]
    assert all(re.search(r"color:\s*rgb\((0,\s*0,\s*0|255,\s*255,\s*255)\)", style) for style in styles), styles
    heading = page.locator("#text-words h3").inner_text()
    other = next(label for label in ("negative", "positive") if label not in heading.split("'")[1])
    page.locator("#text-label").get_by_label(other).check()
    sync_api.expect(page.locator("#text-words h3")).to_contain_text(f"'{other}'")
    assert page.locator("#text-words span[title]").all_inner_texts() == typed.split()
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "text.png"), full_page=True)


def test_zero_shot_explains_the_typed_labels(page, tmp_path: Path) -> None:
    typed = "the striker scored twice in the final"
    _open_tab(page, "Text")
    page.locator("#text-model input").click()
    page.get_by_role("option", name="minilm-zero-shot").click()
    page.locator("#text-labels textarea").fill("sports, politics, cooking")
    page.locator("#text-input textarea").fill(typed)
    page.locator("#text-explain").click()
    _status(page, "text", "Predicted")
    choices = sorted(page.locator("#text-label label").all_inner_texts())
    assert [choice.strip() for choice in choices] == ["cooking", "politics", "sports"]
    assert page.locator("#text-words span[title]").all_inner_texts() == typed.split()
    page.screenshot(path=str(tmp_path / "zero-shot.png"), full_page=True)


def test_audio_player_has_source(page, tmp_path: Path) -> None:
    _open_tab(page, "Audio")
    assert page.locator("#audio-model input").input_value() == "kws-res8"  # the shipped keyword spotter
    page.locator("#audio-model input").click()
    page.get_by_role("option", name="crepe-tiny").click()
    _upload(page, "audio-input", _tone(tmp_path / "tone.wav", 1.0))
    page.locator("#audio-explain").click()
    _status(page, "audio", "Explained")
    names = _download_names(page, "audio-files")
    assert any(re.fullmatch(r"tone-crepe-tiny-soft_pullback-[0-9.]+Hz\.json", n) for n in names), names
    player = page.locator("#audio-sonified")
    sync_api.expect(player.locator("#duration")).to_have_text("0:01")
    source = player.get_by_test_id("download-link").get_attribute("href")
    assert source and source.endswith(".wav")
    played, rate = soundfile.read(io.BytesIO(page.request.get(source).body()))
    assert rate == 16000 and len(played) == 16000
    assert np.sqrt(np.mean(played ** 2)) > 1e-3, "the sonified clip is silent"
    assert _image_pixels(page, "#audio-spectrogram").std() > 5.0
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "audio.png"), full_page=True)


def _text_file(path: Path) -> Path:
    path.write_text("this is not a picture")
    return path


def _long_tone(path: Path) -> Path:
    return _tone(path, 12.0)


def _empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("name, make, message", [
    ("renamed.jpg", _text_file, "not an image"),
    ("huge.png", _huge_png, "decompression bomb"),
], ids=["text-renamed-jpg", "400-megapixel-png"])
def test_bad_image_gives_a_message_and_the_next_request_works(page, tmp_path: Path, uploads: Path, name, make,
                                                              message) -> None:
    _upload(page, "image-input", make(tmp_path / name))
    page.locator("#image-explain").click()
    status = _status(page, "image", message)
    assert "Error:" in status and name in status
    assert str(uploads) not in status, "the message shows the server's upload path"
    page.screenshot(path=str(tmp_path / "bad-image.png"), full_page=True)
    _explain_image(page, _picture(tmp_path))
    assert _image_pixels(page, "#image-heatmap").std() > 5.0


def test_bad_audio_gives_a_message_and_the_next_request_works(page, tmp_path: Path, uploads: Path) -> None:
    _open_tab(page, "Audio")
    for name, make, message in [("empty.wav", _empty_file, "cannot read"), ("long.wav", _long_tone, "at most 10 s")]:
        _upload(page, "audio-input", make(tmp_path / name))
        page.locator("#audio-explain").click()
        status = _status(page, "audio", message)
        assert "Error:" in status and name in status
        assert str(uploads) not in status, "the message shows the server's upload path"
        page.screenshot(path=str(tmp_path / f"bad-{name}.png"), full_page=True)
    _upload(page, "audio-input", _tone(tmp_path / "tone.wav", 1.0))
    page.locator("#audio-explain").click()
    _status(page, "audio", "Explained")
