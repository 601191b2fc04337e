"""Explanations say which nonlinear ops kept their exact gradient: Mamba's selective scan (exp,
softplus, products) has no SP rule, and its explanation lists those ops in JSON and summary — the
same ops :func:`spmm.audit` reports; a fully ruled model lists none."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import spmm
from spmm.adapters.peers.decoders import NextTokenLogits
from spmm.ruleset import get_ruleset

transformers = pytest.importorskip("transformers")


def test_mamba_explanations_carry_the_ops_that_kept_their_exact_gradient():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mamba = transformers.MambaForCausalLM(transformers.MambaConfig(
            vocab_size=64, hidden_size=16, state_size=4, num_hidden_layers=1))
    model = NextTokenLogits(mamba).eval()
    x = torch.randn(1, 5, 16)
    rules = get_ruleset("text").for_model(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explanation = spmm.explain(model, x, 3, rules="text")
        report = spmm.audit(model, x, temperatures=rules.temperatures, module_rules=rules.module_rules)
    exact = explanation.to_dict()["exact_gradient_ops"]
    assert {"exp", "softplus"} <= set(exact) and sorted(exact) == sorted(report.unhandled)
    assert all(count > 0 for count in exact.values())
    assert "kept their exact gradient (no rule): " in explanation.summary() and "softplus ×" in explanation.summary()
    assert "exact_gradient_ops" not in spmm.explain(model, x, 3, "gradient").extras  # nothing to replace there


def test_a_fully_ruled_model_lists_no_exact_ops():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    explanation = spmm.explain(model, torch.randn(2, 4), 1)
    assert explanation.to_dict()["exact_gradient_ops"] == {} and "exact gradient" not in explanation.summary()
    tanh = spmm.explain(nn.Sequential(nn.Linear(4, 3), nn.Tanh()).eval(), torch.randn(2, 4), 1)
    assert tanh.to_dict()["exact_gradient_ops"] == {"tanh": 1}
