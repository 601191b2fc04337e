"""load_model: random init only on request, local checkpoints in every wrapper, the user's cache,
and clear messages when weights are missing or wrong."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from spmm import SpmmInputError
from spmm.adapters.vision import UnitRangeInput, class_index, load_efficientnet_lite0, load_model


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Point the torch hub and Hugging Face caches at empty folders."""
    import huggingface_hub.constants

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


@pytest.mark.parametrize(("name", "mean"), [
    ("resnet18", (0.485, 0.456, 0.406)), ("pvt_v2_b1", (0.485, 0.456, 0.406)),
    ("vit_small_patch16_224", (0.5, 0.5, 0.5)),
])
def test_random_init_builds_a_wrapped_model_with_its_own_normalisation(name, mean):
    model = load_model(name, random_init=True)
    assert isinstance(model, UnitRangeInput) and not model.training
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(mean))


def test_unit_range_wrapper_normalises_with_mean_and_std():
    inner = torchvision.models.resnet18(weights=None).eval()
    wrapped = UnitRangeInput(inner, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    by_hand = ((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), inner(by_hand))


def test_missing_weights_name_what_to_pass(empty_caches):
    with pytest.raises(SpmmInputError, match=r"weights=PATH.*random_init=True"):
        load_model("resnet18")
    with pytest.raises(SpmmInputError, match="weights=PATH"):
        load_model("pvt_v2_b1")


def test_missing_and_wrong_checkpoint_files_are_reported(tmp_path):
    with pytest.raises(SpmmInputError, match="no checkpoint file"):
        load_model("resnet18", weights=tmp_path / "absent.pth")
    other = tmp_path / "vgg.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), other)
    with pytest.raises(SpmmInputError, match="does not fit this ResNet"):
        load_model("resnet18", weights=other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(SpmmInputError, match="not a checkpoint"):
        load_model("resnet18", weights=text)
    with pytest.raises(SpmmInputError, match="not both"):
        load_model("resnet18", weights=other, random_init=True)


def test_unknown_names_get_suggestions():
    with pytest.raises(SpmmInputError, match="resnet50"):
        load_model("resnet5O", random_init=True)
    with pytest.raises(SpmmInputError, match="tabby"):
        class_index("taby")
    assert class_index("Tench") == 0 and class_index("7") == 7


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model", "dataparallel", "wrapper", "safetensors"])
def test_saved_checkpoint_reloads_to_identical_logits(tmp_path, layout):
    torch.manual_seed(3)
    original = load_model("resnet18", random_init=True, num_classes=7)
    state = original.model.state_dict()
    path = tmp_path / ("ckpt.safetensors" if layout == "safetensors" else "ckpt.pth")
    saved = {
        "plain": state, "state_dict": {"state_dict": state, "epoch": 3}, "model": {"model": state},
        "dataparallel": {f"module.{k}": v for k, v in state.items()}, "wrapper": original.state_dict(),
    }
    if layout == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(saved[layout], path)
    reloaded = load_model("resnet18", weights=path, num_classes=7)
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(original(x), reloaded(x))


def test_weights_already_in_the_torch_hub_cache_are_used(empty_caches):
    torch.manual_seed(4)
    cached = torchvision.models.resnet18(weights=None).eval()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    folder = empty_caches / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(cached.state_dict(), folder / url.rsplit("/", 1)[-1])
    model = load_model("resnet18")
    with torch.no_grad():
        assert torch.equal(model.model(torch.zeros(1, 3, 32, 32)), cached(torch.zeros(1, 3, 32, 32)))


def test_timm_weights_in_the_hugging_face_cache_are_used(empty_caches):
    """A timm model finds ``model.safetensors`` laid out as huggingface_hub caches it."""
    torch.manual_seed(5)
    reference = load_model("timm:resnet18", random_init=True)
    repo = reference.model.pretrained_cfg["hf_hub_id"]
    snapshot = empty_caches / "hf" / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (empty_caches / "hf" / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
    (empty_caches / "hf" / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in reference.model.state_dict().items()}, str(snapshot / "model.safetensors"))
    loaded = load_model("timm:resnet18")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))


def test_embedded_lite0_loads_by_name_without_weights():
    by_name = load_model("tf_efficientnet_lite0")
    direct = load_efficientnet_lite0()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(by_name(x), direct(x))
    torch.testing.assert_close(by_name.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))
