"""Activations after batch norm + residual connections recompute their input from tensors autograd
keeps anyway: same SoftPullback as with a saved copy, less memory saved for the backward pass."""

from __future__ import annotations

import pytest
import torch
import torchvision

import spmm
import spmm.mode


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return model.double()


def _pullback_and_saved(model, x) -> tuple[torch.Tensor, int]:
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = x.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), spmm.pullback_mode():
        score = model(x)[:, 2].sum()
    (grad,) = torch.autograd.grad(score, x)
    return grad, sum(saved.values())


def test_residual_relus_recompute_their_input(monkeypatch):
    model = _resnet()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    grad, saved = _pullback_and_saved(model, x)
    monkeypatch.setattr(spmm.mode, "_RESIDUAL_ADDS", set())  # every residual ReLU keeps a copy of its input
    copied_grad, copied_saved = _pullback_and_saved(model, x)
    torch.testing.assert_close(grad, copied_grad, rtol=1e-12, atol=1e-14)
    # two blocks per stage, batch 2; stages of 64×8×8, 128×4×4, 256×2×2, 512×1×1 on a 32×32 input
    residual_relu_inputs = 2 * 2 * (64 * 8 * 8 + 128 * 4 * 4 + 256 * 2 * 2 + 512)
    assert copied_saved - saved == residual_relu_inputs * 8  # one float64 copy per residual ReLU dropped


def test_a_residual_changed_in_place_afterwards_is_reported():
    bn = torch.nn.BatchNorm1d(3).eval().double()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    residual = torch.randn(4, 3, dtype=torch.float64)
    with spmm.pullback_mode():
        out = torch.relu(bn(x * 1.0) + residual)
    residual.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        out.sum().backward()
