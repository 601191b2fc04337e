"""On real architectures (random init) the mode leaves logits bit-identical and SP differs from the gradient."""

import pytest
import timm
import torch
import torchvision

import spmm

MODELS = [
    ("resnet50", lambda: torchvision.models.resnet50(), 96),
    ("vgg11_bn", lambda: torchvision.models.vgg11_bn(), 64),
    ("densenet121", lambda: torchvision.models.densenet121(), 64),
    ("mobilenet_v3_small", lambda: torchvision.models.mobilenet_v3_small(), 96),
    ("efficientnet_b0", lambda: torchvision.models.efficientnet_b0(), 96),
    ("pvt_v2_b1", lambda: timm.create_model("pvt_v2_b1", pretrained=False), 96),
    ("vit_tiny_patch16_224", lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=96), 96),
    ("convnext_atto", lambda: timm.create_model("convnext_atto", pretrained=False), 64),
]


SLOW_MODELS = {"resnet50", "vgg11_bn", "densenet121", "mobilenet_v3_small", "efficientnet_b0", "pvt_v2_b1"}
"""4-16 s each on 2 CPU cores: left out of the quick run (pytest -m 'not slow'), which keeps a ViT and a ConvNeXt."""


@pytest.mark.parametrize("name,build,size", [
    pytest.param(*m, id=m[0], marks=[pytest.mark.slow] if m[0] in SLOW_MODELS else []) for m in MODELS
])
def test_logits_bit_identical_and_pullback_differs_from_gradient(name, build, size):
    torch.manual_seed(0)
    model = build().eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        plain = model(x)
    with spmm.pullback_mode():
        under_mode = model(x.clone().requires_grad_(True))
    assert under_mode.requires_grad, "the rules only act where a graph is built"
    assert torch.equal(plain, under_mode.detach())
    sp = spmm.explain(model, x, [1, 7], "soft_pullback")
    grad = spmm.explain(model, x, [1, 7], "gradient").attributions
    relative = (sp.attributions - grad).norm() / grad.norm()
    assert relative > 0.05, f"SP should differ from the gradient on {name} (relative difference {relative:.3g})"
    assert torch.isfinite(sp.attributions).all()
