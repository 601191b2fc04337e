"""The text rule set's module rules and temperatures against closed forms (float64)."""

from __future__ import annotations

import torch
import transformers as hf
import pytest
from torch import nn

import spmm
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
