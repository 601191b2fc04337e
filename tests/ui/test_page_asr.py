"""``spmm serve --model <tiny Whisper folder>`` in headless Chromium: the speech-to-text tab asks
for a clip when none is given, then transcribes and explains one, shows the transcript as a strip
of tokens over the spectrogram (the explanation's own HTML), the chosen token's map enlarged with
its sonified clip, and the downloads."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.ui.test_page import (  # noqa: F401
    REQUEST_MS,
    _download_names,
    _open_tab,
    _status,
    _upload,
    browser,
    serving,
    sync_api,
    uploads,
)

pytestmark = pytest.mark.slow
pytest.importorskip("transformers")

TOKENS = 3


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.audio.speech_models import save_tiny_whisper

    return save_tiny_whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
def asr_server(tmp_path_factory: pytest.TempPathFactory, uploads: Path, whisper_folder: Path) -> Iterator[str]:  # noqa: F811
    with serving(tmp_path_factory.mktemp("server") / "serve.log", uploads, "--model", str(whisper_folder)) as url:
        yield url


def test_speech_to_text_tab_strip_chosen_token_wav_and_downloads(browser, asr_server, whisper_folder, tmp_path):  # noqa: F811
    import spmm
    from tests.audio.audio_signals import speechlike
    from tests.audio.speech_models import RATE

    clip = tmp_path / "speech.wav"
    soundfile.write(str(clip), speechlike(0.5, RATE, seed=3).numpy(), RATE)
    expected = spmm.load(str(whisper_folder)).explain(str(clip), method="soft_pullback",
                                                      target=spmm.Continuation(max_new_tokens=TOKENS))
    token_wav = tmp_path / "token2.wav"
    expected.per_token([1]).save(token_wav)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(REQUEST_MS)
    try:
        page.goto(asr_server)
        _open_tab(page, "Speech-to-text")
        page.locator("#asr-explain").click()
        assert "\n" not in _status(page, "asr", "upload or record a clip").strip()
        _upload(page, "asr-input", clip)
        tokens = page.locator("#asr-tokens input[type=number]")
        tokens.fill(str(TOKENS))
        tokens.press("Enter")
        page.locator("#asr-explain").click()
        assert expected.transcript in _status(page, "asr", "Transcribed")
        strip = page.locator("#asr-strip .spmm-strip figure")
        sync_api.expect(strip).to_have_count(TOKENS)
        assert strip.locator("figcaption").all_inner_texts() == [t.replace(" ", "·") for t in expected.row_tokens]
        sources = [image.get_attribute("src") for image in strip.locator("img").all()]
        assert all(source.startswith("data:image/png;base64,") for source in sources)
        page.locator("#asr-token").get_by_label(f"2. {expected.row_tokens[1]}").check()
        chosen = page.locator("#asr-chosen img")
        sync_api.expect(chosen).to_have_attribute("src", sources[1])
        assert chosen.get_attribute("width") == "640"
        link = page.locator("#asr-sonified").get_by_test_id("download-link")
        sync_api.expect(link).to_have_attribute("href", re.compile(r"-token2\.wav$"))
        played, rate = soundfile.read(io.BytesIO(page.request.get(link.get_attribute("href")).body()))
        wanted, _ = soundfile.read(str(token_wav))
        assert rate == RATE
        np.testing.assert_array_equal(played, wanted)
        names = _download_names(page, "asr-files")
        stem = f"speech-{whisper_folder.name}-soft_pullback-generate{TOKENS}"
        assert sorted(names) == sorted(f"{stem}{suffix}" for suffix in (".html", ".json", ".wav"))
        page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / "asr.png"), full_page=True)
    finally:
        context.close()
