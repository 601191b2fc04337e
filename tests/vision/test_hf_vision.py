"""Hugging Face image classifiers through ``spmm.load(save_pretrained folder)``: random-init tiny
ViT, DeiT (with teacher), BEiT, Swin, ConvNeXt and ResNet saved with their image processors."""

from __future__ import annotations

import warnings
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import spmm
from spmm.cli import main
from spmm.errors import SpmmInputError
from tests.forward_checks import forward_with_and_without_rules

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIDE = 32
LABELS = {0: "tabby", 1: "tiger", 2: "lynx"}
VIT_LIKE = dict(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=37)


def _processors():
    square = {"height": SIDE, "width": SIDE}
    return {
        "vit": transformers.ViTImageProcessor(size=square, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25]),
        "deit": transformers.DeiTImageProcessor(size=square, crop_size=square),
        "beit": transformers.BeitImageProcessor(size=square, image_mean=[0.485, 0.456, 0.406],
                                                image_std=[0.229, 0.224, 0.225]),
        "swin": transformers.ViTImageProcessor(size=square),
        "convnext": transformers.ConvNextImageProcessor(size={"shortest_edge": SIDE}, crop_pct=1.0),
        "resnet": transformers.ConvNextImageProcessor(size={"shortest_edge": SIDE}, crop_pct=1.0,
                                                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]),
    }


# name -> (model class, config factory, the module Grad-CAM must read)
CASES = {
    "vit": ("ViTForImageClassification", lambda: transformers.ViTConfig(**VIT_LIKE), "vit.layers.1.layernorm_before"),
    "deit": ("DeiTForImageClassificationWithTeacher", lambda: transformers.DeiTConfig(**VIT_LIKE),
             "deit.layers.1.layernorm_before"),
    "beit": ("BeitForImageClassification", lambda: transformers.BeitConfig(**VIT_LIKE),
             "beit.layers.1.layernorm_before"),
    "swin": ("SwinForImageClassification", lambda: transformers.SwinConfig(
        image_size=SIDE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4), "swin.layernorm"),
    "convnext": ("ConvNextForImageClassification", lambda: transformers.ConvNextConfig(
        hidden_sizes=[8, 16], depths=[1, 1], num_stages=2), "convnext.encoder.stages.1"),
    "resnet": ("ResNetForImageClassification", lambda: transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"), "resnet.encoder.stages.1"),
}
TOKEN_CAMS = {"vit": 1, "deit": 2, "beit": 1, "swin": 0}
"""Token models -> prefix tokens (class, distillation) before the patch tokens."""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> a save_pretrained folder (model + image processor) of each tiny architecture."""
    torch.manual_seed(0)
    processors = _processors()
    out = {}
    for name, (class_name, make_config, _) in CASES.items():
        config = make_config()
        config.id2label, config.label2id = LABELS, {v: k for k, v in LABELS.items()}
        model = getattr(transformers, class_name)(config).eval()
        for module in model.modules():  # non-trivial batch-norm statistics (ResNet)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        processors[name].save_pretrained(folder)
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def image(shared_data_module):
    """A real photograph (a Siamese cat) already at the processors' size."""
    return Image.open(shared_data_module / "imagenet-sample" / _first_image(shared_data_module)).convert("RGB").resize(
        (SIDE, SIDE), Image.BICUBIC)


@pytest.fixture(scope="module")
def shared_data_module():
    from tests.conftest import shared_data_dir

    path = shared_data_dir()
    if not (path / "imagenet-sample").is_dir():
        pytest.skip(f"real data folder {path} is absent")
    return path


def _first_image(root) -> str:
    return "n02123597_Siamese_cat.JPEG"


def _module(model, path):
    for step in path.split("."):
        model = model[int(step)] if step.isdigit() else getattr(model, step)
    return model


@pytest.mark.parametrize("name", CASES)
def test_pixel_values_equal_the_hf_processor_and_labels_come_from_id2label(folders, image, name):
    m = spmm.load(str(folders[name]))
    processor = transformers.AutoImageProcessor.from_pretrained(folders[name], local_files_only=True)
    expected = processor(images=image, return_tensors="pt")["pixel_values"]
    seen = []
    hf_model = m.model.model
    handle = hf_model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw["pixel_values"].detach()),
                                                with_kwargs=True)
    try:
        ex = m.explain(image, method="soft_pullback")
    finally:
        handle.remove()
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=0)
    with torch.no_grad():
        logits = hf_model(pixel_values=expected).logits
    top = int(logits.argmax())
    assert ex.predictions[0][0].label == LABELS[top] and m.labels == [LABELS[i] for i in range(3)]
    assert ex.target_label(0) == LABELS[top]


@pytest.mark.parametrize("name", CASES)
def test_forward_identical_under_the_rules_audit_clean_and_sp_differs_from_gradient(folders, image, name):
    m = spmm.load(str(folders[name]))
    x = m.prepare(image).inputs
    plain, under_rules = forward_with_and_without_rules(m.model, x, m.rules.for_model(m.model))
    assert torch.equal(plain, under_rules)
    assert m.audit(image).unhandled == []
    sp = m.explain(image, target=1, method="soft_pullback").attributions
    grad = m.explain(image, target=1, method="gradient").attributions
    assert sp.shape == (1, 3, SIDE, SIDE) and sp.abs().sum() > 0
    assert not torch.allclose(sp, grad, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_gradcam_reads_the_last_block_or_stage_and_leaves_the_model_as_it_was(folders, image, name):
    m = spmm.load(str(folders[name]))
    expected = _module(m.model.model, CASES[name][2])
    before = [type(module) for module in m.model.modules()]
    maps = []
    with m.rules.gradcam_layer(m.model) as layer:
        if name in TOKEN_CAMS:
            tap = next(module for module in m.model.modules() if getattr(module, "grid", None) is layer)
            assert tap.module is expected and tap.prefix_tokens == TOKEN_CAMS[name]
        else:
            assert layer is expected
        handle = layer.register_forward_hook(lambda _m, _i, out: maps.append(out))
        with torch.no_grad():
            m.model(m.prepare(image).inputs)
        handle.remove()
    side = SIDE // 8
    assert maps[0].shape[-2:] == (side, side)
    assert [type(module) for module in m.model.modules()] == before
    for method in ("guided_pb_cam", "guided_gradcam"):
        attributions = m.explain(image, method=method).attributions
        assert torch.isfinite(attributions).all() and attributions.abs().sum() > 0


def test_a_transformers_class_without_gradcam_facts_is_refused_not_given_its_patch_embedding(tmp_path, image):
    config = transformers.Dinov2Config(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=37, num_labels=3)
    transformers.Dinov2ForImageClassification(config).save_pretrained(tmp_path)
    transformers.ViTImageProcessor(size={"height": SIDE, "width": SIDE}).save_pretrained(tmp_path)
    m = spmm.load(str(tmp_path))
    assert m.explain(image).attributions.shape == (1, 3, SIDE, SIDE)
    with pytest.raises(SpmmInputError, match="no Grad-CAM layer known for Dinov2ForImageClassification"):
        m.explain(image, method="guided_pb_cam")


def test_a_loaded_model_with_its_processor_is_not_changed(folders, image):
    model = transformers.ViTForImageClassification.from_pretrained(folders["vit"], local_files_only=True)
    model.train()
    processor = transformers.AutoImageProcessor.from_pretrained(folders["vit"], local_files_only=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    m = spmm.load(model, processor=processor)
    assert model.training and all(p.requires_grad for p in model.parameters())
    with pytest.warns(UserWarning, match="training mode"):
        m.explain(image)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(SpmmInputError, match="processor="):
        spmm.load(model)


def test_a_folder_without_an_image_processor_is_a_one_line_error(tmp_path):
    transformers.ViTForImageClassification(transformers.ViTConfig(**VIT_LIKE)).save_pretrained(tmp_path)
    with pytest.raises(SpmmInputError, match="no image processor saved"):
        spmm.load(str(tmp_path))


def test_cli_explains_a_real_image_with_a_saved_vit(folders, shared_data_module, tmp_path, capsys):
    photo = shared_data_module / "imagenet-sample" / _first_image(shared_data_module)
    code = main(["explain", str(folders["vit"]), str(photo), "--out", str(tmp_path), "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["schema"] == "spmm.explanation/1" and record["modality"] == "image"
    assert record["rules"]["name"] == "vision" and record["units"] == "pixels"
    (item,) = record["items"]
    assert item["shape"] == [SIDE, SIDE] and item["target"]["label"] in LABELS.values()
    assert sorted(f.rsplit(".", 1)[-1] for f in record["files"]) == ["json", "png"]
    saved = json.loads(open(next(f for f in record["files"] if f.endswith(".json"))).read())
    assert np.asarray(saved["items"][0]["scores"]).shape == (SIDE, SIDE)


@pytest.mark.parametrize("name", ["convnext", "resnet"])
def test_convolutional_models_load_without_an_attention_warning(folders, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning about eager attention here would be noise: no attention
        spmm.load(folders[name])
