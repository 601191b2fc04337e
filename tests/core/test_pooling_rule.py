"""Soft max-pool spread against an explicit window-by-window computation (float64)."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmm


def _reference_spread(x, grad_out, kernel, stride, padding, dilation, t):
    """Each output window sends grad·softmax(window/T) to its (real) inputs; explicit loops."""
    n, c, h, w = x.shape
    ho, wo = grad_out.shape[-2:]
    grad = torch.zeros_like(x)
    for b, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        cells = []
        for a, d in itertools.product(range(kernel[0]), range(kernel[1])):
            r = i * stride[0] - padding[0] + a * dilation[0]
            q = j * stride[1] - padding[1] + d * dilation[1]
            if 0 <= r < h and 0 <= q < w:
                cells.append((r, q))
        values = torch.stack([x[b, ch, r, q] for r, q in cells])
        weights = torch.softmax(values / t, dim=0)
        for (r, q), wgt in zip(cells, weights):
            grad[b, ch, r, q] += wgt * grad_out[b, ch, i, j]
    return grad


POOLS = [
    dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil_mode=False, size=(9, 9)),
    dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False, size=(8, 6)),
    dict(kernel=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 1), ceil_mode=True, size=(8, 7)),
    dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(2, 2), ceil_mode=False, size=(9, 9)),
    dict(kernel=(3, 3), stride=(3, 3), padding=(0, 0), dilation=(1, 1), ceil_mode=True, size=(10, 8)),
    dict(kernel=(3, 2), stride=(3, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False, size=(9, 8)),  # tiles
]


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("t", [0.3, 1.5])
def test_max_pool2d_soft_spread(pool, t):
    x = torch.randn(2, 2, *pool["size"], dtype=torch.float64, requires_grad=True)
    kwargs = dict(stride=pool["stride"], padding=pool["padding"], dilation=pool["dilation"], ceil_mode=pool["ceil_mode"])
    with spmm.pullback_mode(max_pool=t):
        y = F.max_pool2d(x, pool["kernel"], **kwargs)
    assert torch.equal(y.detach(), F.max_pool2d(x.detach(), pool["kernel"], **kwargs))
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    expected = _reference_spread(x.detach(), g, pool["kernel"], pool["stride"], pool["padding"], pool["dilation"], t)
    torch.testing.assert_close(grad, expected)


def test_max_pool_module_with_indices_and_zero_temperature_is_exact():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    pool = nn.MaxPool2d(3, 2, 1, return_indices=True)
    with spmm.pullback_mode(max_pool=0):
        y, indices = pool(x)
    y_ref, indices_ref = pool(x)
    assert torch.equal(indices, indices_ref)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    (exact,) = torch.autograd.grad(y_ref, x, g)
    torch.testing.assert_close(grad, exact)


def test_max_pool1d_matches_2d_reference():
    x = torch.randn(2, 3, 11, dtype=torch.float64, requires_grad=True)
    with spmm.pullback_mode(max_pool=0.5):
        y = F.max_pool1d(x, 3, 2, 1)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    expected = _reference_spread(x.detach().unsqueeze(2), g.unsqueeze(2), (1, 3), (1, 2), (0, 1), (1, 1), 0.5)
    torch.testing.assert_close(grad, expected.squeeze(2))


@pytest.mark.parametrize("size,out", [((8, 8), (2, 2)), ((7, 10), (3, 4)), ((5, 5), (1, 1))])
def test_adaptive_max_pool2d_soft_spread(size, out):
    x = torch.randn(2, 2, *size, dtype=torch.float64, requires_grad=True)
    with spmm.pullback_mode(max_pool=0.4):
        y = F.adaptive_max_pool2d(x, out)
    assert torch.equal(y.detach(), F.adaptive_max_pool2d(x.detach(), out))
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    expected = torch.zeros_like(x)
    for i, j in itertools.product(range(out[0]), range(out[1])):
        r0, r1 = math.floor(i * size[0] / out[0]), math.ceil((i + 1) * size[0] / out[0])
        c0, c1 = math.floor(j * size[1] / out[1]), math.ceil((j + 1) * size[1] / out[1])
        window = x.detach()[..., r0:r1, c0:c1]
        weights = torch.softmax(window.flatten(-2) / 0.4, dim=-1).view_as(window)
        expected[..., r0:r1, c0:c1] += weights * g[..., i, j, None, None]
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("t", [0.0, 0.5])
def test_tiling_max_pool1d_leaves_its_input_alone(t):
    """Windows of one row that tile the input are the case where a reshaped view could alias x."""
    x = torch.randn(1, 1, 12, dtype=torch.float64, requires_grad=True)
    before = x.detach().clone()
    with spmm.pullback_mode(max_pool=t):
        y = F.max_pool1d(x, 2)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    assert torch.equal(x.detach(), before)
    if t == 0:
        (expected,) = torch.autograd.grad(F.max_pool1d(x, 2), x, g)
    else:
        expected = _reference_spread(before.unsqueeze(2), g.unsqueeze(2), (1, 2), (1, 2), (0, 0), (1, 1), t).squeeze(2)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("pool", [POOLS[0], POOLS[1]])
def test_channels_last_input_gets_the_same_spread(pool):
    x = torch.randn(2, 3, *pool["size"], dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    kwargs = dict(stride=pool["stride"], padding=pool["padding"], dilation=pool["dilation"], ceil_mode=pool["ceil_mode"])
    with spmm.pullback_mode(max_pool=0.7):
        y = F.max_pool2d(x, pool["kernel"], **kwargs)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    expected = _reference_spread(x.detach(), g, pool["kernel"], pool["stride"], pool["padding"], pool["dilation"], 0.7)
    torch.testing.assert_close(grad, expected)
