"""The text rule set's module rules and temperatures against closed forms (float64)."""

from __future__ import annotations

import torch
import transformers as hf
import pytest
from torch import nn

import spmm
from spmm.adapters.hf.rules import gated_mlp_rule
from spmm.adapters.text import L2Normalize


def _sp_jacobian(module: nn.Module, x: torch.Tensor, ruleset: spmm.RuleSet | str = "text") -> torch.Tensor:
    rules = spmm.get_ruleset(ruleset) if isinstance(ruleset, str) else ruleset
    rules = rules.for_model(module)
    rows = []
    for j in range(module(x).numel()):
        xi = x.clone().requires_grad_(True)
        with rules.mode():
            out = module(xi)
        (grad,) = torch.autograd.grad(out.flatten()[j], xi)
        rows.append(grad.flatten())
    return torch.stack(rows)


def test_llama_rms_norm_holds_rms_constant():
    norm = hf.models.llama.modeling_llama.LlamaRMSNorm(4, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
    x = torch.tensor([[0.3, -1.2, 2.0, 0.1]], dtype=torch.float64)
    rstd = 1 / torch.sqrt(x.pow(2).mean() + 1e-6)
    torch.testing.assert_close(_sp_jacobian(norm, x), torch.diag(norm.weight * rstd))


def test_new_gelu_gets_the_gelu_gate():
    act = hf.activations.NewGELUActivation()
    x = torch.tensor([[-1.5, -0.2, 0.0, 0.7, 2.5]], dtype=torch.float64)
    gate = torch.distributions.Normal(0.0, 1.0).cdf(x / 1.0)  # gelu temperature 1.0
    torch.testing.assert_close(_sp_jacobian(act, x), torch.diag(gate.flatten()))


def test_tanh_gets_its_secant_gate():
    x = torch.tensor([[-2.0, 0.0, 0.5, 3.0]], dtype=torch.float64)
    expected = torch.tensor([torch.tanh(torch.tensor(-2.0)) / -2.0, 1.0, torch.tanh(torch.tensor(0.5)) / 0.5,
                             torch.tanh(torch.tensor(3.0)) / 3.0], dtype=torch.float64)
    torch.testing.assert_close(_sp_jacobian(nn.Tanh(), x), torch.diag(expected))


def test_l2_normalisation_holds_the_norm_constant():
    x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(_sp_jacobian(L2Normalize(), x), torch.eye(2, dtype=torch.float64) / 5.0)


@pytest.mark.parametrize("overrides, silu_temperature", [(None, 1.0), ({"silu": 1.6}, 1.6)])
def test_gated_mlp_product_rule_with_soft_silu(overrides, silu_temperature):
    """The text rule set's SiLU temperature is 1.0 (SPEC §2); an override reaches the gate."""
    torch.manual_seed(0)
    config = hf.LlamaConfig(hidden_size=4, intermediate_size=5, num_attention_heads=2, num_key_value_heads=2)
    mlp = hf.models.llama.modeling_llama.LlamaMLP(config).double()
    x = torch.randn(1, 4, dtype=torch.float64)
    g, u = mlp.gate_proj(x), mlp.up_proj(x)
    d_gate = torch.sigmoid(g / silu_temperature)
    # d out / d x = W_down · diag(u·σ(g/T)) · W_gate + W_down · diag(silu(g)) · W_up
    expected = mlp.down_proj.weight @ (torch.diag((u * d_gate).flatten()) @ mlp.gate_proj.weight
                                       + torch.diag(nn.functional.silu(g).flatten()) @ mlp.up_proj.weight)
    rules = spmm.get_ruleset("text").updated(overrides)
    torch.testing.assert_close(_sp_jacobian(mlp, x, rules).detach(), expected.detach())


def _rerun_only(rule):
    """The same module rule without its eager ``in_forward_ops`` form (the path torch.compile traces)."""
    def rerun(module, inputs, output, temperatures):
        return rule(module, inputs, output, temperatures)
    rerun.__name__ = rule.__name__
    return rerun


@pytest.mark.parametrize("family", ["llama", "t5"])
def test_gated_mlp_runs_its_forward_once_with_the_rerun_rules_gradient(family):
    """Eagerly the gated MLP's own forward carries the product rule (one forward, not two); its
    gradient equals the module rule that re-runs the MLP, and the product is a ProductRule node."""
    torch.manual_seed(0)
    if family == "llama":
        config = hf.LlamaConfig(hidden_size=8, intermediate_size=12, num_attention_heads=2, num_key_value_heads=2)
        mlp, first = hf.models.llama.modeling_llama.LlamaMLP(config).double(), "gate_proj"
    else:
        config = hf.T5Config(d_model=8, d_ff=12, feed_forward_proj="gated-gelu", dropout_rate=0.0)
        mlp, first = hf.models.t5.modeling_t5.T5DenseGatedActDense(config).double(), "wi_0"
    calls = []
    getattr(mlp, first).register_forward_hook(lambda *_: calls.append(1))
    rules = spmm.get_ruleset("text").for_model(mlp)
    x = torch.randn(3, 8, dtype=torch.float64)
    grads, nodes = [], []
    for module_rules in (None, {type(mlp): _rerun_only(gated_mlp_rule)}):
        calls.clear()
        xi = x.clone().requires_grad_(True)
        with rules.updated(module_rules=module_rules).mode():
            out = mlp(xi)
        nodes.append(_node_names(out.grad_fn))
        grads.append(torch.autograd.grad(out.sum(), xi)[0])
        assert len(calls) == (1 if module_rules is None else 2)
    assert "ProductRuleBackward" in nodes[0] and "MulBackward0" not in nodes[0]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def _node_names(node, seen=None) -> set[str]:
    seen = set() if seen is None else seen
    if node is not None and node not in seen:
        seen.add(node)
        for parent, _ in node.next_functions:
            _node_names(parent, seen)
    return {type(n).__name__ for n in seen}
