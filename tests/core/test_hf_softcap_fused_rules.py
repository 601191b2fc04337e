"""Rules for Hugging Face blocks written as arithmetic or custom Functions, each against a float64
closed form: Gemma-2's soft-capped logits (gate tanh(u)/u held constant), Bloom's GeLUFunction
(the GELU gate Φ(x/T)), fused gated MLPs (Phi-3's gate_up_proj: product rule, SiLU under its gate);
and audits of tiny models without the false alarms (fused products, parameter-only nodes)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import spmm
from spmm.adapters.peers.decoders import NextTokenLogits
from spmm.ruleset import get_ruleset

transformers = pytest.importorskip("transformers")
warnings.filterwarnings("ignore", message=".*(within the vocabulary|falling back).*")

SMALL = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
             num_key_value_heads=1, max_position_embeddings=64)


def _rules(model):
    return get_ruleset("text").for_model(model)


def test_gemma2_final_softcap_backward_is_the_constant_gate_in_float64():
    torch.manual_seed(0)
    config = transformers.Gemma2Config(**SMALL, head_dim=8, final_logit_softcapping=0.5, attn_logit_softcapping=2.0)
    model = NextTokenLogits(transformers.Gemma2ForCausalLM(config).double()).eval()
    x = torch.randn(1, 4, 16, dtype=torch.float64)
    captured = []

    def keep(_module, _inputs, out):
        if out.requires_grad:
            out.retain_grad()
            captured.append(out)

    handle = model.lm.lm_head.register_forward_hook(keep)
    rules = _rules(model)
    try:
        with torch.no_grad():
            plain = model(x)
        with rules.mode():
            leaf = x.clone().requires_grad_(True)
            capped = model(leaf)
            capped[0, 5].backward()
    finally:
        handle.remove()
    assert torch.equal(plain, capped.detach())
    z = captured[-1]                                          # logits before the cap, (1, 4, V)
    u = z.detach()[0, -1] / config.final_logit_softcapping
    expected = torch.zeros_like(u)
    expected[5] = torch.tanh(u[5]) / u[5]                     # d(c·tanh(z/c))/dz under the rule: tanh(u)/u
    torch.testing.assert_close(z.grad[0, -1], expected, rtol=1e-12, atol=1e-14)
    assert abs(float(expected[5]) - float(1 - torch.tanh(u[5]) ** 2)) > 1e-3  # not the exact derivative
    report = spmm.audit(model, x, temperatures=rules.temperatures, module_rules=rules.module_rules)
    assert report.unhandled == [] and any("soft-cap" in rule for rule in report.handled.values())


def test_bloom_gelu_function_gets_the_gelu_gate_in_float64():
    from transformers.models.bloom.modeling_bloom import BloomGelu

    gelu = BloomGelu()
    x = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(3, 7, dtype=torch.float64)
    rules = get_ruleset("text").for_model(nn.Sequential(gelu))
    with rules.mode():
        y = gelu(x)
    (grad,) = torch.autograd.grad(y, x, grad_out)
    phi = 0.5 * (1 + torch.erf(x.detach() / (rules.temperatures.gelu * 2 ** 0.5)))
    torch.testing.assert_close(grad, grad_out * phi, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(y, gelu(x), rtol=0, atol=0)


def test_phi3_fused_gated_mlp_is_the_product_rule_with_the_silu_gate_in_float64():
    from transformers.models.phi3.modeling_phi3 import Phi3MLP

    torch.manual_seed(1)
    mlp = Phi3MLP(transformers.Phi3Config(**SMALL)).double().eval()
    x = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(2, 3, 16, dtype=torch.float64)
    rules = get_ruleset("text").for_model(mlp)
    with rules.mode():
        y = mlp(x)
    (grad,) = torch.autograd.grad(y, x, grad_out)
    gate, up = (x.detach() @ mlp.gate_up_proj.weight.T).chunk(2, dim=-1)
    down = grad_out @ mlp.down_proj.weight                    # d/d(up · silu(gate))
    d_up = down * gate * torch.sigmoid(gate)
    d_gate = down * up * torch.sigmoid(gate / rules.temperatures.silu)
    expected = torch.cat([d_gate, d_up], dim=-1) @ mlp.gate_up_proj.weight
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ["phi3", "mixtral", "modernbert", "gemma2", "bloom"])
def test_audits_of_tiny_models_are_clean(name):
    torch.manual_seed(0)
    build = {
        "phi3": lambda: transformers.Phi3ForCausalLM(transformers.Phi3Config(**SMALL, pad_token_id=0)),
        "mixtral": lambda: transformers.MixtralForCausalLM(transformers.MixtralConfig(
            **SMALL, num_local_experts=2, num_experts_per_tok=2)),
        "modernbert": lambda: transformers.ModernBertForMaskedLM(transformers.ModernBertConfig(
            vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            pad_token_id=0)),
        "gemma2": lambda: transformers.Gemma2ForCausalLM(transformers.Gemma2Config(**SMALL, head_dim=8)),
        "bloom": lambda: transformers.BloomForCausalLM(transformers.BloomConfig(
            vocab_size=64, hidden_size=16, n_layer=1, n_head=2)),
    }[name]
    model = NextTokenLogits(build()).eval()
    rules = _rules(model)
    report = spmm.audit(model, torch.randn(1, 5, 16), temperatures=rules.temperatures, module_rules=rules.module_rules)
    assert report.unhandled == []


def test_nodes_depending_only_on_parameters_are_not_counted():
    torch.manual_seed(0)
    weight = nn.Parameter(torch.randn(4, 3))

    def model(x):  # a function: its parameter keeps requires_grad during the audit
        return x @ (torch.sigmoid(weight) * weight).T

    assert spmm.audit(model, torch.randn(2, 3)).unhandled == []
    assert spmm.audit(lambda x: torch.sigmoid(model(x)), torch.randn(2, 3)).unhandled == ["sigmoid"]
    assert spmm.audit(lambda x: model(x) * x.sum(-1, keepdim=True), torch.randn(2, 3)).unhandled == [
        "mul of two input-dependent tensors"]
