"""The pullback mode restores everything: after the block, after an exception, nested, per thread."""

import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmm
import spmm.mode


def _relu_grad(x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.relu(x).sum(), x)
    return grad


def _no_mode_left():
    return torch._C._len_torch_function_stack() == 0 and spmm.mode.current_mode() is None


def _gelu_like(x):
    return 0.5 * x * (1.0 + torch.erf(x / 2**0.5))


class ArithmeticGelu(nn.Module):
    def forward(self, x):
        return _gelu_like(x)


def test_plain_gradients_after_the_block():
    x = torch.randn(50)
    with spmm.pullback_mode():
        pass
    assert _no_mode_left()
    torch.testing.assert_close(_relu_grad(x), (x > 0).float())


def test_restored_after_an_exception_inside_the_block():
    x = torch.randn(50)
    rules = {ArithmeticGelu: spmm.gate_module_rule("gelu")}
    with pytest.raises(ZeroDivisionError):
        with spmm.pullback_mode(module_rules=rules):
            ArithmeticGelu()(x.requires_grad_(True))
            1 / 0
    assert _no_mode_left()
    assert spmm.mode._hook_users == 0
    hooks = torch.nn.modules.module
    installed = [*hooks._global_forward_pre_hooks.values(), *hooks._global_forward_hooks.values()]
    assert spmm.mode._enter_ruled_module not in installed and spmm.mode._apply_module_rule not in installed
    assert not hooks._global_forward_hooks_always_called
    torch.testing.assert_close(_relu_grad(x.detach()), (x > 0).float())
    y = ArithmeticGelu()(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    (exact,) = torch.autograd.grad(_gelu_like(x).sum(), x)
    torch.testing.assert_close(grad, exact)


def test_nested_modes_innermost_temperature_wins_and_outer_is_restored():
    x = torch.randn(40, dtype=torch.float64)
    with spmm.pullback_mode(relu=0.6):
        with spmm.pullback_mode(relu=0.2):
            inner = _relu_grad(x)
        outer = _relu_grad(x)
    torch.testing.assert_close(inner, torch.special.ndtr(x / 0.2))
    torch.testing.assert_close(outer, torch.special.ndtr(x / 0.6))
    assert _no_mode_left()
    torch.testing.assert_close(_relu_grad(x), (x > 0).double())


def test_other_thread_gets_plain_gradients_while_the_mode_is_active():
    x = torch.randn(64, dtype=torch.float64)
    inside, checked = threading.Barrier(2), threading.Event()
    results = {}
    rules = {ArithmeticGelu: spmm.gate_module_rule("gelu")}

    def explainer():
        with spmm.pullback_mode(module_rules=rules):
            inside.wait()
            results["sp"] = _relu_grad(x)
            checked.wait(timeout=30)

    def plain():
        inside.wait()
        results["plain"] = _relu_grad(x)
        xg = x.clone().requires_grad_(True)
        (results["gelu"],) = torch.autograd.grad(ArithmeticGelu()(xg).sum(), xg)
        checked.set()

    threads = [threading.Thread(target=explainer), threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    torch.testing.assert_close(results["plain"], (x > 0).double())
    torch.testing.assert_close(results["sp"], torch.special.ndtr(x / 0.6))
    xg = x.clone().requires_grad_(True)
    (exact_gelu,) = torch.autograd.grad(_gelu_like(xg).sum(), xg)
    torch.testing.assert_close(results["gelu"], exact_gelu)


def test_module_rule_gives_the_gate_and_keeps_the_value():
    x = torch.randn(30, dtype=torch.float64, requires_grad=True)
    module = ArithmeticGelu()
    with spmm.pullback_mode(module_rules={ArithmeticGelu: spmm.gate_module_rule("gelu")}, gelu=0.5):
        y = module(x)
    assert torch.equal(y.detach(), _gelu_like(x.detach()))
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, torch.special.ndtr(x.detach() / 0.5))


def test_registered_module_rule_by_name_and_unregister():
    x = torch.randn(30, dtype=torch.float64, requires_grad=True)
    spmm.register_module_rule("ArithmeticGelu", spmm.gate_module_rule("gelu"))
    try:
        with spmm.pullback_mode():
            y = ArithmeticGelu()(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        torch.testing.assert_close(grad, torch.special.ndtr(x.detach()))
    finally:
        spmm.unregister_module_rule("ArithmeticGelu")
    with spmm.pullback_mode():
        y = ArithmeticGelu()(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    (exact,) = torch.autograd.grad(_gelu_like(x).sum(), x)
    torch.testing.assert_close(grad, exact)


def test_no_grad_inside_the_mode_runs_plain_ops():
    x = torch.randn(10)
    with spmm.pullback_mode(), torch.no_grad():
        y = F.relu(x)
    assert y.grad_fn is None and torch.equal(y, F.relu(x))


def test_invalid_temperatures_are_rejected():
    with pytest.raises(ValueError, match="unknown temperature"):
        spmm.pullback_mode(reul=0.5)
    with pytest.raises(ValueError, match="finite number >= 0"):
        spmm.pullback_mode(relu=-1)
    with pytest.raises(ValueError, match="must be > 0"):
        spmm.pullback_mode(attention=0)


class Square(nn.Module):
    def forward(self, x):
        if x.shape[-1] == 0:
            raise ValueError("empty input")
        return x * x


def _halved_product(func, args, kwargs):
    return func(*args, **kwargs) * 0.5  # a visible stand-in for an in-forward op rule


def _square_rule(module, inputs, output, temperatures):
    return output


_square_rule.in_forward_ops = {torch.Tensor.mul: _halved_product}  # what `x * x` reaches the mode as


def test_in_forward_ops_apply_inside_the_module_only_and_are_cleared_after_an_exception():
    x = torch.tensor([3.0], requires_grad=True)
    with spmm.pullback_mode(module_rules={Square: _square_rule}):
        inside, outside = Square()(x), x * x
        with pytest.raises(ValueError, match="empty input"):
            Square()(torch.ones(0, requires_grad=True))
    assert inside.item() == 4.5 and outside.item() == 9.0  # the forward ran once, under the op rule
    assert spmm.mode._ruled_forwards() == [] and spmm.mode._ruled_modules() == []
    assert torch.is_grad_enabled() and _no_mode_left()
