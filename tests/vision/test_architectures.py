"""The vision families the paper and users need: forward unchanged under SP, SP ≠ gradient,
nothing unhandled in the audit, and a spatial Grad-CAM layer."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import spmm
from spmm.adapters.vision import VISION_MODULE_RULES, VISION_RULES, gradcam_layer, load_model

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

# (name, input side): small inputs keep the suite fast; ViT/DeiT are built for a 96 px (6×6) grid.
ARCHITECTURES = [
    ("resnet50", 64), ("vgg11_bn", 64), ("pvt_v2_b1", 64), ("vit_small_patch16_224", 96),
    ("deit_small_patch16_224", 96), ("convnext_tiny", 64), ("efficientnet_b0", 64),
    ("mobilenet_v3_large", 64), ("densenet121", 64), ("tf_efficientnet_lite0", 64),
    ("timm:efficientnet_b0", 64), ("timm:mobilenetv3_large_100", 64),
]


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    sized = {"vit_small_patch16_224": {"img_size": 96}, "deit_small_patch16_224": {"img_size": 96}}
    return {name: load_model(name, random_init=True, **sized.get(name, {})) for name, _ in ARCHITECTURES}


def explain_image(model: nn.Module, x: torch.Tensor, target, method: str, **params) -> spmm.Explanation:
    return spmm.load(model, modality="image").explain(x, target, method, **params)


@pytest.mark.parametrize(("name", "side"), ARCHITECTURES)
def test_sp_keeps_forward_changes_backward_and_audit_is_clean(models, name, side):
    model = models[name]
    x = torch.rand(2, 3, side, side) * 2 - 1
    with torch.no_grad():
        plain = model(x)
    leaf = x.clone().requires_grad_(True)
    with spmm.pullback_mode(module_rules=VISION_MODULE_RULES):
        under_sp = model(leaf)
    assert torch.equal(under_sp.detach(), plain)

    target = plain.argmax(1)
    sp = explain_image(model, x, target.tolist(), "soft_pullback").attributions
    grad = explain_image(model, x, target.tolist(), "gradient").attributions
    assert torch.isfinite(sp).all() and sp.abs().sum() > 0
    assert (sp - grad).norm() > 1e-3 * grad.norm()

    report = spmm.audit(model, x, module_rules=VISION_MODULE_RULES)
    assert report.unhandled == [], str(report)


@pytest.mark.parametrize(("name", "side"), ARCHITECTURES)
def test_gradcam_layer_is_a_spatial_map_and_keeps_logits(models, name, side):
    model = models[name]
    x = torch.rand(1, 3, side, side) * 2 - 1
    with torch.no_grad():
        before = model(x)
    modules_before = dict(model.named_modules())
    seen = []
    with gradcam_layer(model) as layer:
        handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
        with torch.no_grad():
            after = model(x)
        handle.remove()
    assert torch.equal(before, after)
    assert len(seen) == 1 and len(seen[0]) == 4 and seen[0][2] > 1 and seen[0][3] > 1
    modules_after = dict(model.named_modules())  # any token tap is gone again: the model is as it was
    assert modules_after.keys() == modules_before.keys()
    assert all(modules_after[k] is modules_before[k] for k in modules_before)


@pytest.mark.parametrize("name", ["resnet50", "vit_small_patch16_224"])
def test_guided_pb_cam_runs_with_the_chosen_layer(models, name):
    side = 96 if name.startswith("vit") else 64
    x = torch.rand(1, 3, side, side) * 2 - 1
    explanation = explain_image(models[name], x, "top1", "guided_pb_cam")
    assert explanation.attributions.shape == x.shape
    assert torch.isfinite(explanation.attributions).all()  # may be all zero: random weights, ReLU'd CAM


@pytest.mark.parametrize("name", ["vit_small_patch16_224", "deit_small_patch16_224", "torchvision_vit"])
def test_gradcam_layer_of_class_token_vits_is_read_by_the_logit(models, name):
    """A ViT classifying from its class token reads the patch tokens only through the last block's
    attention: the Grad-CAM layer must sit before it, or every CAM is silently zero."""
    if name == "torchvision_vit":
        model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                     hidden_dim=32, mlp_dim=64).eval()
        torch.nn.init.normal_(model.heads.head.weight)  # torchvision initialises the head to zero
        side = 32
    else:
        model, side = models[name], 96
    x = torch.rand(1, 3, side, side) * 2 - 1
    seen = []
    with gradcam_layer(model) as layer:
        handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
        logit = model(x)[0].max()
        handle.remove()
    (grad,) = torch.autograd.grad(logit, seen[0])
    assert grad.abs().sum() > 0


def test_squeeze_excite_pullback_is_the_constant_gate():
    """Through y = x · g(x) the SP backward is grad_out · g with g the forward gate, computed here
    by hand from the block's weights (independent of the rule's code)."""
    torch.manual_seed(1)
    block = torchvision.ops.SqueezeExcitation(6, 3).eval()
    x = torch.randn(2, 6, 5, 5, requires_grad=True)
    grad_out = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        pooled = x.mean((2, 3), keepdim=True)
        gate = torch.sigmoid(block.fc2(torch.relu(block.fc1(pooled))))
    with spmm.pullback_mode(module_rules=VISION_MODULE_RULES):
        y = block(x)
    torch.testing.assert_close(y, x * gate, rtol=0, atol=1e-6)
    (grad,) = torch.autograd.grad(y, x, grad_out)
    torch.testing.assert_close(grad, grad_out * gate, rtol=1e-6, atol=1e-7)
    (exact,) = torch.autograd.grad(block(x), x, grad_out)
    assert not torch.allclose(exact, grad)


def test_the_vision_rule_set_is_the_one_explain_uses():
    model = load_model("efficientnet_b0", random_init=True)
    explainable = spmm.load(model, modality="image")
    assert explainable.rules is VISION_RULES and spmm.rulesets["vision"] is VISION_RULES
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with spmm.pullback_mode(module_rules=VISION_MODULE_RULES):
        leaf = x.clone().requires_grad_(True)
        (by_hand,) = torch.autograd.grad(model(leaf)[0, 3], leaf)
    torch.testing.assert_close(explainable.explain(x, 3).attributions, by_hand)
    plain = spmm.explain(model, x, 3).attributions  # the op rules alone leave the SE gates exact
    assert (plain - by_hand).norm() > 1e-4 * by_hand.norm()


def test_importing_the_adapter_registers_nothing_globally():
    from spmm.rules import registry

    before = dict(registry.MODULE_RULES)
    import spmm.adapters.vision  # noqa: F401

    assert registry.MODULE_RULES == before
    assert not any("SqueezeExcit" in str(key) for key in registry.MODULE_RULES)
