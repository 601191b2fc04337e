"""``spmm.load`` -> ``Explainable.explain`` -> ``Explanation``: names, rule sets that travel with the
model, targets, the one JSON schema, saving and aggregation (on small random-init image models)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import spmm
from spmm.adapters.vision import VISION_RULES, load_model
from spmm.bench.explainers import bench_explainers
from spmm.errors import SpmmInputError
from spmm.explanation import SCHEMA


@pytest.fixture(scope="module")
def resnet() -> spmm.Explainable:
    torch.manual_seed(0)
    return spmm.load("resnet18", random_init=True)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64) * 2 - 1


def test_names_resolvers_and_options_are_checked():
    assert "efficientnet-lite0" in spmm.list_models()
    with pytest.raises(SpmmInputError, match="did you mean efficientnet-lite0"):
        spmm.load("efficientnet-lite")
    with pytest.raises(SpmmInputError, match="unknown option.*'wieghts'.*weights"):
        spmm.load("efficientnet-lite0", wieghts="x.pth")
    with pytest.raises(SpmmInputError, match="resnet18 does not take.*wieghts"):
        spmm.load("resnet18", random_init=True, wieghts="x.pth")
    with pytest.raises(SpmmInputError, match="needs modality=.*image"):
        spmm.load(torch.nn.Linear(2, 2))
    with pytest.raises(SpmmInputError, match="no weights for resnet18"):
        spmm.load("resnet18")


def test_the_model_carries_its_rule_set(resnet, images):
    assert resnet.rules is VISION_RULES and spmm.rulesets["vision"] is VISION_RULES
    assert resnet.labels is not None and len(resnet.labels) == 1000
    explanation = resnet.explain(images, 7)
    direct = spmm.explain(resnet.model, images, 7, rules="vision")
    torch.testing.assert_close(explanation.attributions, direct.attributions, rtol=0, atol=0)
    assert explanation.rules.name == "vision"
    hotter = resnet.with_rules(relu=3.0).explain(images, 7)
    assert hotter.rules.temperatures.relu == 3.0 and not torch.allclose(hotter.attributions, explanation.attributions)
    with pytest.raises(SpmmInputError, match="carries its rule set"):
        resnet.explain(images, 7, rules="default")
    with pytest.raises(SpmmInputError, match="unknown rule set 'nope'"):
        spmm.explain(resnet.model, images, 7, rules="nope")


def test_targets_top1_index_name_and_one_per_input(resnet, images):
    with torch.no_grad():
        logits = resnet.model(images)
    top1 = resnet.explain(images)
    assert top1.target.indices.tolist() == logits.argmax(1).tolist()
    named = resnet.explain(images, ["tabby", 3])
    assert named.target.indices.tolist() == [281, 3] and named.target_label(0) == "tabby"
    torch.testing.assert_close(named.scores, logits[[0, 1], [281, 3]])
    with pytest.raises(SpmmInputError, match="did you mean 'tabby'"):
        resnet.explain(images, "tabbby")
    with pytest.raises(SpmmInputError, match="got 3 targets for a batch of 2 samples"):
        resnet.explain(images, [1, 2, 3])
    with pytest.raises(SpmmInputError, match="out of range"):
        resnet.explain(images, 1000)


def test_to_dict_follows_the_schema_and_scores_are_pixel_sums(resnet, images):
    explanation = resnet.explain(images, [5, "tabby"], "gradient", top_k=3)
    record = json.loads(json.dumps(explanation.to_dict()))
    assert record["schema"] == SCHEMA and record["modality"] == "image" and record["units"] == "pixels"
    assert record["model"] == "resnet18" and record["method"] == "gradient" and record["rules"]["name"] == "vision"
    assert [item["target"]["index"] for item in record["items"]] == [5, 281]
    probabilities = torch.softmax(explanation.output, -1)
    for i, item in enumerate(record["items"]):
        assert item["shape"] == [64, 64] and len(item["predictions"]) == 3
        top = probabilities[i].topk(3)
        assert [p["index"] for p in item["predictions"]] == top.indices.tolist()
        assert [p["probability"] for p in item["predictions"]] == pytest.approx(top.values.tolist(), abs=1e-6)
        expected = explanation.attributions[i].sum(0)
        torch.testing.assert_close(torch.tensor(item["scores"]), expected, rtol=1e-5, atol=1e-9)
    assert explanation.to_dict(include_scores=False)["items"][0]["scores"] is None


def test_save_by_suffix_and_aggregate(resnet, images, tmp_path):
    explanation = resnet.explain(images[:1], 3)
    with Image.open(explanation.save(tmp_path / "one.png")) as figure:
        assert figure.size[0] > figure.size[1] > 100
    saved = json.loads(explanation.save(tmp_path / "one.json").read_text())
    assert saved["items"][0]["shape"] == [64, 64]
    assert torch.load(explanation.save(tmp_path / "one.pt"), weights_only=True)["attributions"].shape == (1, 3, 64, 64)
    with pytest.raises(SpmmInputError, match=r"\.json, \.png, \.pt"):
        explanation.save(tmp_path / "one.wav")
    patches = explanation.aggregate("patches", size=16).attributions
    by_hand = explanation.attributions[0].sum(0)[16:32, 32:48].sum()
    torch.testing.assert_close(patches[0, 1, 2], by_hand)
    with pytest.raises(SpmmInputError, match="does not tile"):
        explanation.aggregate("patches", size=24)


def test_gradcam_layer_comes_from_the_rule_set_and_the_model_is_left_as_it_was(images):
    vit = load_model("vit_tiny_patch16_224", random_init=True, img_size=64)
    before = dict(vit.named_modules())
    explanation = spmm.load(vit, modality="image").explain(images, 2, "guided_gradcam")
    assert explanation.attributions.shape == images.shape
    after = dict(vit.named_modules())
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    with pytest.raises(SpmmInputError, match="spmm.adapters.vision.gradcam_layer"):
        spmm.explain(vit, images, 2, "guided_gradcam")


def test_the_bench_scores_the_rules_explain_draws_on_squeeze_excitation():
    """Random-init efficientnet_b0 has squeeze-excitation blocks: the bench's SoftPullback must be
    the one ``m.explain`` computes (SE gates held constant), not the op rules alone."""
    torch.manual_seed(0)
    model = spmm.load("efficientnet_b0", random_init=True)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    targets = torch.tensor([1, 2])
    (bench_sp,) = bench_explainers(["soft_pullback"], model.rules).values()
    explained = model.explain(x, targets.tolist()).attributions
    torch.testing.assert_close(bench_sp(model.model, x, targets), explained, rtol=0, atol=0)
    op_rules_only = spmm.explain(model.model, x, targets).attributions
    assert (op_rules_only - explained).norm() > 1e-4 * explained.norm()


SMALL = {"model_samples": 2, "input_samples": 2, "steps": 3, "samples": 3, "baseline_draws": 2}


@pytest.mark.parametrize("method", spmm.list_methods())
def test_every_method_runs_through_the_one_call_shape(method):
    """All 16 methods through ``m.explain`` on a random-init image model (Grad-CAM methods with the
    rule set's layer): attributions shaped like the input, finite, and reproducible with ``seed``."""
    from spmm.methods.registry import get_method

    torch.manual_seed(0)
    model = spmm.load("timm:test_resnet", random_init=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    params = {k: v for k, v in SMALL.items() if k in get_method(method).defaults}
    first = model.explain(x, [1, 2], method, seed=3, **params)
    again = model.explain(x, [1, 2], method, seed=3, **params)
    assert first.attributions.shape == x.shape and torch.isfinite(first.attributions).all()
    torch.testing.assert_close(first.attributions, again.attributions, rtol=0, atol=0)
    assert first.method == method and first.rules.name == "vision"
