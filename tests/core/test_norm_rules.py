"""Normalisation rules equal autograd of a hand-written norm whose statistics are detached."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmm


def _manual_layer_norm(x, shape, weight, bias, eps):
    dims = tuple(range(-len(shape), 0))
    mean = x.mean(dims, keepdim=True).detach()
    var = x.var(dims, unbiased=False, keepdim=True).detach()
    y = (x - mean) / torch.sqrt(var + eps)
    return y * weight + bias


def _manual_group_norm(x, groups, weight, bias, eps):
    n, c = x.shape[:2]
    xg = x.reshape(n, groups, -1)
    mean = xg.mean(-1, keepdim=True).detach()
    var = xg.var(-1, unbiased=False, keepdim=True).detach()
    y = ((xg - mean) / torch.sqrt(var + eps)).view_as(x)
    shape = (1, c) + (1,) * (x.dim() - 2)
    return y * weight.view(shape) + bias.view(shape)


def _manual_rms_norm(x, shape, weight, eps):
    dims = tuple(range(-len(shape), 0))
    rms = torch.sqrt(x.pow(2).mean(dims, keepdim=True) + eps).detach()
    return x / rms * weight


def _compare(sp_fn, manual_fn, x, params):
    leaves = [x.clone().requires_grad_(True)] + [p.clone().requires_grad_(True) for p in params]
    with spmm.pullback_mode():
        y = sp_fn(*leaves)
    y_plain = sp_fn(*[t.detach() for t in leaves])
    assert torch.equal(y.detach(), y_plain), "forward value must be unchanged"
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, leaves, g)
    manual_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    expected = torch.autograd.grad(manual_fn(*manual_leaves), manual_leaves, g)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("shape", [(2, 5, 8), (3, 4, 6, 6)])
def test_layer_norm(shape):
    x = torch.randn(shape, dtype=torch.float64) * 3 + 1
    normalized = shape[-1:] if len(shape) == 3 else shape[-2:]
    w, b = torch.randn(normalized, dtype=torch.float64), torch.randn(normalized, dtype=torch.float64)
    _compare(
        lambda x, w, b: F.layer_norm(x, normalized, w, b, 1e-5),
        lambda x, w, b: _manual_layer_norm(x, normalized, w, b, 1e-5),
        x, [w, b],
    )


def test_layer_norm_module_without_affine():
    x = torch.randn(2, 7, 10, dtype=torch.float64, requires_grad=True)
    norm = nn.LayerNorm(10, elementwise_affine=False).double()
    with spmm.pullback_mode():
        y = norm(x)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    rstd = 1 / torch.sqrt(x.detach().var(-1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(grad, g * rstd)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_group_norm(groups):
    x = torch.randn(3, 8, 5, 4, dtype=torch.float64) * 2
    w, b = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    _compare(
        lambda x, w, b: F.group_norm(x, groups, w, b, 1e-5),
        lambda x, w, b: _manual_group_norm(x, groups, w, b, 1e-5),
        x, [w, b],
    )


def test_rms_norm():
    x = torch.randn(2, 6, 16, dtype=torch.float64) * 2
    w = torch.randn(16, dtype=torch.float64)
    _compare(
        lambda x, w: F.rms_norm(x, (16,), w, 1e-6),
        lambda x, w: _manual_rms_norm(x, (16,), w, 1e-6),
        x, [w],
    )


def test_batch_norm_in_eval_keeps_its_exact_affine_gradient():
    bn = nn.BatchNorm2d(3).double().eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    with spmm.pullback_mode():
        y = bn(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(grad, scale.detach().view(1, 3, 1, 1).expand_as(x))


def test_norm_output_modified_in_place_and_input_gradient_alone():
    """Model code may update a norm's output in place (``y.mul_``); asking for the input gradient
    only must give the same input gradient."""
    x = torch.randn(2, 5, 8, dtype=torch.float64) * 3 + 1
    w, b = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    _compare(
        lambda x, w, b: F.layer_norm(x * 1.0, (8,), w, b, 1e-5).mul_(2.0),
        lambda x, w, b: _manual_layer_norm(x, (8,), w, b, 1e-5) * 2.0,
        x, [w, b],
    )
    leaf = x.clone().requires_grad_(True)
    with spmm.pullback_mode():
        y = F.layer_norm(leaf, (8,), w.requires_grad_(True), b.requires_grad_(True), 1e-5)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, leaf, g)
    manual_leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(_manual_layer_norm(manual_leaf, (8,), w, b, 1e-5), manual_leaf, g)
    torch.testing.assert_close(grad, expected)
