"""spmm.audit lists handled ops with their rule and the nonlinear ops that kept their exact gradient."""

import torch
import torch.nn.functional as F
from torch import nn

import spmm


class Doubler(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        h = h * torch.sigmoid(h)  # a gate written as arithmetic
        h = torch.tanh(h)
        h = Doubler.apply(h)
        return self.fc(h.mean((2, 3)))


def test_audit_reports_handled_and_unhandled_ops():
    report = spmm.audit(Mixed().eval(), torch.randn(2, 3, 8, 8))
    assert report.handled == {"relu": "relu", "max_pool2d": "max_pool2d"}
    unhandled = set(report.unhandled)
    assert {"sigmoid", "tanh", "mul of two input-dependent tensors"} <= unhandled
    assert any("custom autograd Function" in op and "Doubler" in op for op in unhandled)
    assert not any("batch_norm" in op for op in unhandled), "eval batch norm is affine"
    text = str(report)
    assert "UNHANDLED" in text and "relu" in text


def test_audit_restores_parameter_gradients():
    model = Mixed().eval()
    model.fc.weight.requires_grad_(False)
    spmm.audit(model, torch.randn(1, 3, 8, 8))
    assert model.conv.weight.requires_grad and not model.fc.weight.requires_grad


class ArithmeticGelu(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.erf(x / 2**0.5))


def test_module_rule_clears_an_arithmetic_activation():
    model = nn.Sequential(nn.Linear(4, 8), ArithmeticGelu(), nn.Linear(8, 2)).eval()
    x = torch.randn(3, 4)
    before = spmm.audit(model, x)
    assert "erf" in before.unhandled
    after = spmm.audit(model, x, module_rules={ArithmeticGelu: spmm.gate_module_rule("gelu")})
    assert after.unhandled == []
    assert any(op.startswith("module ") and op.endswith("ArithmeticGelu") for op in after.handled)


def test_attention_models_have_no_unhandled_ops():
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True, dropout=0.0).eval()
    report = spmm.audit(layer, torch.randn(2, 5, 16), output_fn=lambda out: out.sum((1, 2)))
    assert report.unhandled == []
    assert set(report.handled.values()) >= {"multi_head_attention", "layer_norm", "relu"}
