"""Hugging Face squeeze-excitation layers (RegNet's ``RegNetSELayer``, EfficientNet's
``EfficientNetSqueezeExciteLayer``) under the vision rule set: y = x · g(x) keeps its value and its
pullback is grad_out · g, g computed here in float64 from the layer's weights by its formula."""

from __future__ import annotations

import pytest
import torch

import spmm
from spmm.adapters.vision.rules import VISION_MODULE_RULES

transformers = pytest.importorskip("transformers")


def _regnet_se():
    from transformers.models.regnet.modeling_regnet import RegNetSELayer

    layer = RegNetSELayer(6, 3).double().eval()

    def gate(x):
        first, _, second, _ = layer.attention
        pooled = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(second(torch.relu(first(pooled))))

    return layer, gate


def _efficientnet_se():
    from transformers.models.efficientnet.modeling_efficientnet import EfficientNetSqueezeExciteLayer

    config = transformers.EfficientNetConfig(hidden_act="swish")
    layer = EfficientNetSqueezeExciteLayer(config, in_dim=6, expand_dim=6, expand=False).double().eval()

    def gate(x):
        pooled = x.mean((2, 3), keepdim=True)
        reduced = layer.reduce(pooled)
        return torch.sigmoid(layer.expand(reduced * torch.sigmoid(reduced)))

    return layer, gate


@pytest.mark.parametrize("build", [_regnet_se, _efficientnet_se], ids=["regnet", "efficientnet"])
def test_hf_squeeze_excite_pullback_is_the_constant_gate_in_float64(build):
    torch.manual_seed(2)
    layer, gate = build()
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        expected_gate = gate(x)
    with spmm.pullback_mode(module_rules=VISION_MODULE_RULES):
        y = layer(x)
    torch.testing.assert_close(y, x * expected_gate, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(y, x, grad_out)
    torch.testing.assert_close(grad, grad_out * expected_gate, rtol=1e-12, atol=1e-12)
    (exact,) = torch.autograd.grad(layer(x), x, grad_out)
    assert (exact - grad).norm() > 1e-6 * grad.norm()  # the exact gradient also flows through the gate
    report = spmm.audit(layer, x.detach(), module_rules=VISION_MODULE_RULES)
    assert report.unhandled == [] and any("squeeze-excitation" in rule for rule in report.handled.values())
