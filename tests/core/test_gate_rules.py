"""Expected-gate rules against closed forms computed independently (float64)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmm


def _phi(x: torch.Tensor) -> torch.Tensor:
    return torch.special.ndtr(x)


def _sp_grad(fn, x, weights, **temperatures):
    x = x.clone().requires_grad_(True)
    with spmm.pullback_mode(**temperatures):
        y = fn(x)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    return y.detach(), grad


def _hardswish_gate_quadrature(x: torch.Tensor, t: float) -> torch.Tensor:
    """E[clip((x + tε + 3)/6, 0, 1)] by numerical integration over ε ~ N(0, 1)."""
    eps = np.linspace(-10, 10, 20001)
    density = np.exp(-0.5 * eps**2) / np.sqrt(2 * np.pi)
    values = np.clip((x.numpy()[:, None] + t * eps[None, :] + 3) / 6, 0, 1)
    return torch.from_numpy(np.trapezoid(values * density, eps, axis=1))


CASES = [
    ("relu", lambda x: F.relu(x), lambda x: _phi(x / 0.6), {}),
    ("torch.relu", torch.relu, lambda x: _phi(x / 0.6), {}),
    ("Tensor.relu", lambda x: x.relu(), lambda x: _phi(x / 0.6), {}),
    ("nn.ReLU", nn.ReLU(), lambda x: _phi(x / 0.25), {"relu": 0.25}),
    ("gelu", F.gelu, lambda x: _phi(x / 1.0), {}),
    ("gelu tanh", lambda x: F.gelu(x, approximate="tanh"), lambda x: _phi(x / 0.5), {"gelu": 0.5}),
    ("nn.GELU", nn.GELU(), lambda x: _phi(x), {}),
    ("silu", F.silu, lambda x: torch.sigmoid(x / 1.6), {}),
    ("nn.SiLU T=1", nn.SiLU(), lambda x: torch.sigmoid(x), {"silu": 1.0}),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: 0.2 + 0.8 * _phi(x / 0.6), {}),
    ("relu6", F.relu6, lambda x: _phi(x / 0.6) - _phi((x - 6) / 0.6), {}),
    ("nn.ReLU6", nn.ReLU6(), lambda x: _phi(x / 0.6) - _phi((x - 6) / 0.6), {}),
    ("hardtanh", lambda x: F.hardtanh(x, -2.0, 3.0), lambda x: _phi((x + 2) / 0.6) - _phi((x - 3) / 0.6), {}),
    ("hardswish", F.hardswish, lambda x: _hardswish_gate_quadrature(x, 1.0), {}),
    ("hardswish T=0.5", nn.Hardswish(), lambda x: _hardswish_gate_quadrature(x, 0.5), {"hardswish": 0.5}),
]


@pytest.mark.parametrize("name,fn,gate,temperatures", CASES, ids=[c[0] for c in CASES])
def test_gate_rule_matches_closed_form(name, fn, gate, temperatures):
    x = torch.linspace(-8, 9, 301, dtype=torch.float64)
    weights = torch.randn_like(x)
    y, grad = _sp_grad(fn, x, weights, **temperatures)
    assert torch.equal(y, fn(x)), "forward value must be unchanged"
    torch.testing.assert_close(grad, weights * gate(x), rtol=1e-6, atol=1e-9)


INPLACE = [
    ("relu_", lambda x: torch.relu_(x), lambda x: _phi(x / 0.6)),
    ("Tensor.relu_", lambda x: x.relu_(), lambda x: _phi(x / 0.6)),
    ("F.relu inplace", lambda x: F.relu(x, inplace=True), lambda x: _phi(x / 0.6)),
    ("nn.ReLU inplace", nn.ReLU(inplace=True), lambda x: _phi(x / 0.6)),
    ("nn.ReLU6 inplace", nn.ReLU6(inplace=True), lambda x: _phi(x / 0.6) - _phi((x - 6) / 0.6)),
    ("silu inplace", lambda x: F.silu(x, inplace=True), lambda x: torch.sigmoid(x / 1.6)),
    ("leaky inplace", lambda x: F.leaky_relu(x, 0.1, inplace=True), lambda x: 0.1 + 0.9 * _phi(x / 0.6)),
]


@pytest.mark.parametrize("name,fn,gate", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_forms_use_the_pre_activation(name, fn, gate):
    x = torch.linspace(-8, 9, 101, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(101, dtype=torch.float64)
    with spmm.pullback_mode():
        hidden = x * 1.0  # in-place ops need a non-leaf
        y = fn(hidden)
    expected_value = fn(x.detach().clone())
    assert torch.equal(y.detach(), expected_value)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    torch.testing.assert_close(grad, weights * gate(x.detach()), rtol=1e-6, atol=1e-9)


def test_relu_rule_tends_to_the_gradient_as_temperature_vanishes():
    net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3)).double()
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    (exact,) = torch.autograd.grad(net(x)[:, 1].sum(), x)
    errors = []
    for t in (0.5, 0.1, 0.01, 1e-4, 1e-9):
        with spmm.pullback_mode(relu=t):
            out = net(x)
        (grad,) = torch.autograd.grad(out[:, 1].sum(), x)
        errors.append((grad - exact).abs().max().item())
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6 < errors[0]
    with spmm.pullback_mode(relu=0):
        out = net(x)
    (grad,) = torch.autograd.grad(out[:, 1].sum(), x)
    torch.testing.assert_close(grad, exact)


def test_one_hidden_layer_relu_net_closed_form():
    """SP of W2·relu(W1 x + b1) is W2 diag(Φ(h/T)) W1."""
    torch.manual_seed(1)
    first, second = nn.Linear(4, 16).double(), nn.Linear(16, 3).double()
    x = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    with spmm.pullback_mode(relu=0.7):
        out = second(F.relu(first(x)))
    (grad,) = torch.autograd.grad(out[0, 2], x)
    hidden = first(x).detach()[0]
    expected = second.weight[2] @ torch.diag(_phi(hidden / 0.7)) @ first.weight
    torch.testing.assert_close(grad[0], expected.detach())


@pytest.mark.parametrize("act", [nn.ReLU(inplace=True), nn.ReLU(), nn.SiLU(inplace=True), nn.ReLU6(inplace=True)])
def test_gate_after_eval_batch_norm_recomputes_its_input(act):
    """BN(eval) → activation: the gate is evaluated at the BN output, recomputed from the BN input."""
    bn = nn.BatchNorm2d(3).double().eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.normal_()
    c = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    with spmm.pullback_mode():
        y = act(bn(c))
    pre = bn(c.detach())
    assert torch.equal(y.detach(), act(pre.clone()))
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, c, g)
    t = {nn.ReLU: 0.6, nn.SiLU: 1.6, nn.ReLU6: 0.6}[type(act)]
    gate = {
        nn.ReLU: lambda x: _phi(x / t),
        nn.SiLU: lambda x: torch.sigmoid(x / t),
        nn.ReLU6: lambda x: _phi(x / t) - _phi((x - 6) / t),
    }[type(act)]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().view(1, 3, 1, 1)
    torch.testing.assert_close(grad, g * gate(pre) * scale)


@pytest.mark.parametrize("affine", ["none passed", "None passed", "weight only"])
def test_gate_after_functional_batch_norm_without_weight_or_bias(affine):
    """The gate's input scale is folded into the recomputed batch norm's weight and bias, including
    when the call left them out or passed None."""
    mean, var = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    weight = torch.randn(3, dtype=torch.float64)
    extra = {"none passed": {}, "None passed": {"weight": None, "bias": None}, "weight only": {"weight": weight}}[affine]
    c = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    with spmm.pullback_mode(relu=0.4):
        y = F.relu(F.batch_norm(c, mean, var, **extra))
    scale = (extra.get("weight") if extra.get("weight") is not None else torch.ones(3, dtype=torch.float64))
    scale = (scale / torch.sqrt(var + 1e-5)).view(1, 3, 1)
    pre = (c.detach() - mean.view(1, 3, 1)) * scale
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, c, g)
    torch.testing.assert_close(grad, g * _phi(pre / 0.4) * scale)


def test_modifying_a_recompute_source_in_place_is_an_error():
    bn = nn.BatchNorm1d(4).double().eval()
    c = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    with spmm.pullback_mode():
        hidden = c * 1.0
        y = F.relu(bn(hidden))
    with torch.no_grad():
        hidden.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.sum().backward()


def test_batch_norm_output_changed_in_place_before_the_activation():
    """torchvision's Bottleneck does ``out = bn3(out); out += identity; relu(out)``: the gate must see
    the sum, not the batch norm output."""
    bn = nn.BatchNorm1d(4).double().eval()
    bn.running_mean.normal_()
    c = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    identity = torch.randn(3, 4, dtype=torch.float64)
    with spmm.pullback_mode():
        out = bn(c)
        out += identity
        y = F.relu(out, inplace=True)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, c, g)
    pre = bn(c.detach()) + identity
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    torch.testing.assert_close(grad, g * _phi(pre / 0.6) * scale)


def test_gate_backward_with_create_graph_equals_the_plain_backward():
    """A pullback differentiated again (create_graph=True) takes the unfused gate: same first-order
    result, and a graph for the second derivative rather than an error from an in-place op."""
    torch.manual_seed(3)
    bn = nn.BatchNorm1d(4).double().eval()
    bn.running_mean.normal_()
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)

    def pullback(create_graph: bool) -> torch.Tensor:
        with spmm.pullback_mode(relu=0.5, gelu=0.5):
            y = (F.relu(bn(x @ w)) + F.gelu(x @ w)).sum()
        return torch.autograd.grad(y, x, create_graph=create_graph)[0]

    twice = pullback(create_graph=True)
    torch.testing.assert_close(twice, pullback(create_graph=False), rtol=1e-12, atol=1e-14)
    (second,) = torch.autograd.grad(twice.sum(), w)
    assert second.shape == w.shape and torch.isfinite(second).all()
