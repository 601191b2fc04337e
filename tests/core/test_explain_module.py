"""A callable model cannot lose its rule set: ``spmm.explain(fn, ..., rules=..., module=net)`` finds
the module rules in ``net``; without ``module`` a rule set that looks inside the model is refused;
the bench refuses to score a pullback explainer whose audit lists unhandled ops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spmm
from spmm.bench.explainers import bench_explainers
from spmm.errors import SpmmInputError
from spmm.ruleset import get_ruleset

EPS = 1e-6


class PlainRMSNorm(nn.Module):
    """An RMS norm written as arithmetic (as Llama's is): found by the text rule set's probe."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(width) + 0.5)
        self.variance_epsilon = EPS

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon) * self.weight


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), PlainRMSNorm(6), nn.Linear(6, 3)).double().eval()


def test_a_function_with_its_module_gets_the_module_rules_and_the_closed_form():
    net = _net()
    x = torch.randn(2, 5, dtype=torch.float64)
    function = lambda inputs: net(inputs)  # noqa: E731  (a plain function, not an nn.Module)
    by_function = spmm.explain(function, x, 2, rules="text", module=net).attributions
    by_module = spmm.explain(net, x, 2, rules="text").attributions
    torch.testing.assert_close(by_function, by_module, rtol=0, atol=0)
    first, _, last = net                                    # RMS held constant: an affine map per sample
    hidden = first(x)
    rms = torch.sqrt(hidden.pow(2).mean(-1, keepdim=True) + EPS)
    expected = ((last.weight[2] * net[1].weight) / rms) @ first.weight
    torch.testing.assert_close(by_function, expected.detach(), rtol=1e-10, atol=1e-12)
    exact = spmm.explain(function, x, 2, "gradient").attributions  # the rms's own gradient differs
    assert (exact - by_function).norm() > 1e-3 * by_function.norm()


def test_a_function_without_its_module_is_refused_in_one_line():
    net = _net()
    x = torch.randn(2, 5, dtype=torch.float64)
    with pytest.raises(SpmmInputError, match="module=") as error:
        spmm.explain(lambda inputs: net(inputs), x, 2, rules="text")
    assert "\n" not in str(error.value)
    with pytest.raises(SpmmInputError, match="module= must be the torch.nn.Module"):
        spmm.explain(lambda inputs: net(inputs), x, 2, rules="text", module="net")
    spmm.explain(lambda inputs: net(inputs), x, 2)          # no rule set: op rules only, nothing lost


def test_the_bench_refuses_a_pullback_explainer_whose_audit_lists_unhandled_ops():
    net = _net()
    x = torch.randn(2, 5, dtype=torch.float64)
    targets = torch.tensor([0, 2])
    explainers = bench_explainers(["soft_pullback", "gradient"], get_ruleset("text"))
    with pytest.raises(SpmmInputError, match="'soft_pullback' is not scored.*rsqrt"):
        explainers["soft_pullback"](lambda inputs: net(inputs), x, targets)
    scored = explainers["soft_pullback"](net, x, targets)  # the module: its rules apply, audit clean
    torch.testing.assert_close(scored, spmm.explain(net, x, targets, rules="text").attributions)
    assert explainers["gradient"](lambda inputs: net(inputs), x, targets).shape == x.shape  # no rules to lose
