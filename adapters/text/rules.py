"""Module rules for Hugging Face text models: what op-level SP rules cannot see.

Activations written as arithmetic (``NewGELUActivation`` uses tanh and pow,
``QuickGELUActivation`` a sigmoid) and RMS norms written as ``x * rsqrt(mean(x²))``
never reach the pullback mode as one op.  :func:`text_module_rules` looks at the
module types a model actually contains and returns the rules for them; the ``text``
rule set (:mod:`.registry`) resolves it for each model (nothing is registered globally).  Rotary position embeddings need no rule: cos/sin depend on
positions only, so ``q·cos + rotate(q)·sin`` is linear in the input.

Two extensions of the expected-gate idea (ours, not in the paper):

- tanh (BERT's pooler, RoBERTa's classification head) is written y = x·g(x) with
  the secant gate g(x) = tanh(x)/x, held constant in the backward;
- gated MLPs (Llama ``act(gate(x)) * up(x)``) keep the product rule of their
  bilinear product, with the activation under its SP rule (SiLU: σ(x/T)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spmm.rules.registry import gate_module_rule, keep_forward
from spmm.temperatures import Temperatures

# Activation classes (bare class names) computing x·g(x) with g ≈ Φ: they get the GELU gate.
GELU_LIKE_ACTIVATIONS = (
    "GELUActivation", "NewGELUActivation", "FastGELUActivation", "AccurateGELUActivation", "GELUTanh",
    "PytorchGELUTanh", "QuickGELUActivation", "QuickGELU",
)
# RMS norms whose gain is (offset + weight) instead of weight.
RMSNORM_WEIGHT_OFFSET = {"GemmaRMSNorm": 1.0, "Gemma2RMSNorm": 1.0, "Gemma3RMSNorm": 1.0}

# Classification heads computing out_proj(tanh(dense(features[:, 0]))) with a functional tanh.
TANH_CLASSIFICATION_HEADS = (
    "RobertaClassificationHead", "XLMRobertaClassificationHead", "CamembertClassificationHead",
    "Data2VecTextClassificationHead",
)
# Attribute names of a gated MLP: down(act(gate(x)) * up(x)).
GATED_MLP_PARTS = ("gate_proj", "up_proj", "down_proj", "act_fn")

def rms_norm_rule(module: nn.Module, inputs: tuple, output: Tensor, temperatures: Temperatures) -> Tensor:
    """RMSNorm with its root-mean-square held constant: the backward is grad · gain / rms(x)."""
    x = inputs[0]
    eps = getattr(module, "variance_epsilon", None)
    eps = getattr(module, "eps", 1e-6) if eps is None else eps
    rstd = torch.rsqrt(x.detach().float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype)
    gain = getattr(module, "weight", None)
    surrogate = x * rstd
    if gain is not None:
        surrogate = surrogate * (gain + RMSNORM_WEIGHT_OFFSET.get(type(module).__name__, 0.0))
    return keep_forward(output, surrogate.to(output.dtype))


rms_norm_rule.__name__ = "rms_norm (module, constant rms)"


def secant_tanh_gate(h: Tensor) -> Tensor:
    """tanh(h)/h (1 at h = 0), detached: the constant gate of y = h·g(h)."""
    h = h.detach()
    small = h.abs() < 1e-6
    return torch.where(small, torch.ones_like(h), torch.tanh(h) / torch.where(small, torch.ones_like(h), h))


def tanh_rule(module: nn.Module, inputs: tuple, output: Tensor, temperatures: Temperatures) -> Tensor:
    """nn.Tanh as y = x·(tanh(x)/x) with the gate held constant."""
    x = inputs[0]
    return keep_forward(output, x * secant_tanh_gate(x))


tanh_rule.__name__ = "tanh (module, secant gate)"


def tanh_head_rule(module: nn.Module, inputs: tuple, output: Tensor, temperatures: Temperatures) -> Tensor:
    """``out_proj(tanh(dense(features[:, 0])))`` with tanh's secant gate held constant."""
    hidden = module.dense(inputs[0][:, 0, :])
    return keep_forward(output, module.out_proj(hidden * secant_tanh_gate(hidden)))


tanh_head_rule.__name__ = "tanh classification head (module, secant gate)"


class ProductRule(torch.autograd.Function):
    """a·b with the exact product-rule backward, marking a gated product as deliberately handled."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        return grad * b, grad * a


def gated_mlp_rule(module: nn.Module, inputs: tuple, output: Tensor, temperatures: Temperatures) -> Tensor:
    """``down(act(gate(x)) * up(x))``: product rule, activation under its SP rule (module re-run)."""
    x = inputs[0]
    gated = ProductRule.apply(module.act_fn(module.gate_proj(x)), module.up_proj(x))
    return keep_forward(output, module.down_proj(gated))


gated_mlp_rule.__name__ = "gated MLP (module, product rule)"


class L2Normalize(nn.Module):
    """x / ‖x‖₂ over the last dimension (sentence embeddings); its SP rule holds ‖x‖ constant."""

    def forward(self, x: Tensor) -> Tensor:
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def l2_normalize_rule(module: nn.Module, inputs: tuple, output: Tensor, temperatures: Temperatures) -> Tensor:
    """L2 normalisation with the norm held constant, like a norm layer's statistics."""
    x = inputs[0]
    return keep_forward(output, x / x.detach().norm(dim=-1, keepdim=True).clamp_min(1e-12))


l2_normalize_rule.__name__ = "l2 normalisation (module, constant norm)"


def text_module_rules(model: nn.Module) -> dict[type, object]:
    """``{module class: rule}`` for the arithmetic activations, RMS norms, tanh heads and gated
    MLPs inside ``model``."""
    rules: dict[type, object] = {}
    gelu = gate_module_rule("gelu")
    for module in model.modules():
        cls = type(module)
        if cls.__name__ in GELU_LIKE_ACTIVATIONS:
            rules[cls] = gelu
        elif cls.__name__.endswith("RMSNorm") and not isinstance(module, nn.RMSNorm):
            rules[cls] = rms_norm_rule
        elif isinstance(module, L2Normalize):
            rules[cls] = l2_normalize_rule
        elif isinstance(module, nn.Tanh):
            rules[cls] = tanh_rule
        elif cls.__name__ in TANH_CLASSIFICATION_HEADS:
            rules[cls] = tanh_head_rule
        elif all(hasattr(module, part) for part in GATED_MLP_PARTS):
            rules[cls] = gated_mlp_rule
    return rules
