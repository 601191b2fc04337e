"""A baseline called inside ``with spmm.pullback_mode():`` runs without the rules, and the mode
is intact afterwards."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmm
from spmm.methods.registry import METHODS
from spmm.mode import current_mode
from tests.core.test_audit import ArithmeticGelu  # GELU as arithmetic: only a module rule reaches it
from tests.reliability.tiny import TinyConvNet, plain_gradient, seeded_explainer

BASELINES = [name for name, method in METHODS.items() if not method.pullback]


def test_gradient_inside_a_pullback_mode_is_the_plain_gradient():
    model = TinyConvNet().eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    exact = plain_gradient(model, x, 1)
    with spmm.pullback_mode():
        inside = spmm.explain(model, x, 1, "gradient").attributions
    torch.testing.assert_close(inside, exact, rtol=0, atol=0)
    soft = spmm.explain(model, x, 1, "soft_pullback").attributions
    assert not torch.allclose(soft, exact), "the model must tell the rules from the plain gradient"


@pytest.mark.parametrize("method", BASELINES)
def test_every_baseline_gives_the_same_result_inside_and_outside_a_pullback_mode(method):
    attributions = seeded_explainer(method)
    outside = attributions(0)
    with spmm.pullback_mode(relu=2.0, max_pool=2.0):
        inside = attributions(0)
    torch.testing.assert_close(inside, outside, rtol=0, atol=0)


def test_module_rules_of_the_mode_are_suspended_too():
    model = nn.Sequential(nn.Linear(6, 8), ArithmeticGelu(), nn.Linear(8, 3)).eval()
    x = torch.randn(4, 6)
    exact = plain_gradient(model, x, 2)
    with spmm.pullback_mode(module_rules={ArithmeticGelu: spmm.gate_module_rule("gelu")}, gelu=0.3):
        inside = spmm.explain(model, x, 2, "gradient").attributions
    torch.testing.assert_close(inside, exact, rtol=0, atol=0)


def test_the_mode_still_applies_its_rules_after_a_baseline_ran():
    x = torch.randn(10, requires_grad=True)
    with spmm.pullback_mode(relu=0.5) as mode:
        spmm.explain(TinyConvNet().eval(), torch.randn(1, 3, 8, 8), 0, "gradient")
        assert current_mode() is mode
        y = F.relu(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, torch.special.ndtr(x.detach() / 0.5))
    assert current_mode() is None


def test_mode_stack_is_restored_when_a_baseline_fails():
    model = TinyConvNet().eval()
    with spmm.pullback_mode() as mode:
        with pytest.raises(spmm.SpmmInputError, match="does not depend on the input"):
            spmm.explain(lambda t: model(t.detach()), torch.randn(1, 3, 8, 8), 0, "gradient")
        assert current_mode() is mode
        assert torch.overrides._get_current_function_mode() is mode
