"""Conformance of Hugging Face image classifiers: each tiny architecture, saved with its own image
processor class (defaults: crop_pct, channel flip, include_top…), loads with ``spmm.load(folder)``; the
model's logits on spmm's prepared input equal ``model(**processor(image))`` on the same PIL image
(non-square synthetic images always, ImageNet photos under ``real_data``); the forward is
bit-identical under the rules; the audit is clean; units and shapes are right."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import spmm

from tests.forward_checks import forward_with_and_without_rules
from tests.hf.vision_models import LABELS, VISION_CELLS, save_vision_cell

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RELATIVE = 1e-5
"""‖spmm's logits − the processor pipeline's logits‖ / ‖the pipeline's logits‖ (float32 round trip ~1e-6)."""
PHOTOS = ("n02123597_Siamese_cat.JPEG", "n01440764_tench.JPEG", "n01514859_hen.JPEG")


@pytest.fixture(scope="session")
def vision_folders(tmp_path_factory):
    """name -> save_pretrained folder, built on first use."""
    built: dict[str, str] = {}

    def folder(name: str) -> str:
        if name not in built:
            path = tmp_path_factory.mktemp(f"hf-{name}")
            save_vision_cell(transformers, name, path)
            built[name] = str(path)
        return built[name]

    return folder


@pytest.fixture(scope="session")
def loaded(vision_folders):
    """name -> (spmm model, the processor loaded as a user would, the Hugging Face model)."""
    cache: dict[str, tuple] = {}

    def load(name: str):
        if name not in cache:
            folder = vision_folders(name)
            m = spmm.load(folder)
            processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
            cache[name] = (m, processor, m.model.model)
        return cache[name]

    return load


def _synthetic_images() -> list[Image.Image]:
    """Non-square RGB images (wide, tall) and a greyscale one, with structure at every scale."""
    rng = np.random.default_rng(0)
    wide = (np.linspace(0, 255, 70)[None, :, None] * 0.6 + rng.integers(0, 100, (45, 70, 3))).astype(np.uint8)
    tall = rng.integers(0, 256, (90, 33, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (50, 61), dtype=np.uint8)
    return [Image.fromarray(wide), Image.fromarray(tall), Image.fromarray(grey, mode="L")]


def _relative(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).norm() / reference.norm())


def _pipeline_logits(processor, hf_model, image: Image.Image) -> torch.Tensor:
    rgb = image.convert("RGB")  # the processors take RGB; spmm converts other modes the same way
    with torch.no_grad():
        return hf_model(**processor(images=rgb, return_tensors="pt")).logits


@pytest.mark.parametrize("name", VISION_CELLS)
def test_logits_on_spmm_input_equal_the_processor_pipeline_on_non_square_images(loaded, name):
    m, processor, hf_model = loaded(name)
    assert m.labels == [LABELS[i] for i in range(len(LABELS))]
    for image in _synthetic_images():
        x = m.prepare(image).inputs
        assert x.min() >= -1 and x.max() <= 1
        with torch.no_grad():
            ours = m.model(x)
        assert _relative(ours, _pipeline_logits(processor, hf_model, image)) <= RELATIVE


@pytest.mark.real_data
@pytest.mark.parametrize("name", VISION_CELLS)
def test_logits_equal_the_processor_pipeline_on_photos(loaded, shared_data, name):
    m, processor, hf_model = loaded(name)
    for photo in PHOTOS:
        image = Image.open(shared_data / "imagenet-sample" / photo).convert("RGB")
        assert image.width != image.height
        with torch.no_grad():
            ours = m.model(m.prepare(image).inputs)
        assert _relative(ours, _pipeline_logits(processor, hf_model, image)) <= RELATIVE


@pytest.mark.parametrize("name", VISION_CELLS)
def test_forward_bit_identical_under_the_rules_audit_clean_units_and_shape(loaded, name):
    m, processor, _ = loaded(name)
    image = _synthetic_images()[0]
    x = m.prepare(image).inputs
    plain, under_rules = forward_with_and_without_rules(m.model, x, m.rules.for_model(m.model))
    assert torch.equal(plain, under_rules)
    assert m.audit(image).unhandled == []
    side = processor(images=image, return_tensors="pt")["pixel_values"].shape[-1]
    explanation = m.explain(image, target=1)
    record = explanation.to_dict()
    assert explanation.attributions.shape == (1, 3, side, side)
    assert record["units"] == "pixels" and record["items"][0]["shape"] == [side, side]
    assert record["items"][0]["target"]["label"] == LABELS[1] and record["rules"]["name"] == "vision"


def test_tensors_outside_the_unit_range_are_refused_not_taken_as_pixel_values(loaded):
    from spmm.errors import SpmmInputError

    m, processor, _ = loaded("vit")
    pixel_values = processor(images=_synthetic_images()[0], return_tensors="pt")["pixel_values"] * 3
    with pytest.raises(SpmmInputError, match=r"must lie in \[−1, 1\]"):
        m.explain(pixel_values)


def test_a_processor_mixing_colour_channels_is_refused_in_one_line():
    from spmm.adapters.hf.vision import colour_map
    from spmm.errors import SpmmInputError

    class GreyProcessor:
        def __call__(self, images, return_tensors="pt"):
            values = torch.stack([torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
                                  for image in images])
            return {"pixel_values": values.mean(1, keepdim=True).expand(-1, 3, -1, -1) / 255}

    with pytest.raises(SpmmInputError, match="mixes colour channels") as error:
        colour_map(GreyProcessor())
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["convnext", "mobilevit"])
def test_the_bench_scores_the_image_the_processor_makes(loaded, tmp_path, name):
    """``spmm bench`` on an image folder feeds the model what its processor makes (crop_pct, channel
    flip, non-square resize), not spmm's own resize: logits equal the processor pipeline's."""
    m, processor, hf_model = loaded(name)
    images = _synthetic_images()
    for i, image in enumerate(images):
        image.convert("RGB").save(tmp_path / f"img{i}.png")
    (tmp_path / "labels.csv").write_text("file,class_index\n" + "".join(f"img{i}.png,{i % 2}\n" for i in range(3)))
    batches = m.modality.bench_batches(m.model, tmp_path, "faithfulness", 3, 3, 0)
    with torch.no_grad():
        ours = m.model(batches[0].inputs)
    for i in range(3):
        reference = _pipeline_logits(processor, hf_model, Image.open(tmp_path / f"img{i}.png"))
        assert _relative(ours[i : i + 1], reference) <= RELATIVE
