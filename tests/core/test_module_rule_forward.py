"""A module with a module rule runs its own forward without autograd inside the pullback mode
(nothing is saved for a graph the rule replaces); grad mode is restored even when it raises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spmm


class _ArithmeticGelu(nn.Module):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.grad_enabled: list[bool] = []
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.grad_enabled.append(torch.is_grad_enabled())
        if self.fail:
            raise ValueError("broken activation")
        return 0.5 * x * (1.0 + torch.erf(x / 2**0.5))


RULES = {_ArithmeticGelu: spmm.gate_module_rule("gelu")}


def test_ruled_module_builds_no_graph_and_the_rule_gives_the_gradient():
    torch.manual_seed(0)
    act = _ArithmeticGelu()
    model = nn.Sequential(nn.Linear(4, 6), act, nn.Linear(6, 2)).double()
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    with spmm.pullback_mode(module_rules=RULES, gelu=0.5):
        out = model(x)
        assert torch.is_grad_enabled()
    (grad,) = torch.autograd.grad(out[:, 0].sum(), x)
    assert act.grad_enabled == [False]
    hidden = model[0](x).detach()
    expected = (model[2].weight[0].detach() * torch.special.ndtr(hidden / 0.5)) @ model[0].weight.detach()
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(out, model(x))
    assert act.grad_enabled == [False, True], "outside the mode the module runs as usual"


def test_grad_mode_is_restored_when_a_ruled_module_raises():
    model = nn.Sequential(nn.Linear(4, 6), _ArithmeticGelu(fail=True))
    with spmm.pullback_mode(module_rules=RULES):
        with pytest.raises(ValueError, match="broken activation"):
            model(torch.randn(2, 4))
        assert torch.is_grad_enabled()
        ok = nn.Sequential(nn.Linear(4, 6), _ArithmeticGelu())
        assert ok(torch.randn(2, 4, requires_grad=True)).requires_grad
    assert torch.is_grad_enabled()
