"""Module rules for Hugging Face text models: what op-level SP rules cannot see.

The transformer building blocks written as arithmetic — GELU-like activations, RMS norms, gated
MLPs — have their rules in :mod:`spmm.adapters.hf.rules` (shared with the vision and audio rule
sets); :func:`text_module_rules` adds the text ones and returns the rules for the module types a
model actually contains; the ``text`` rule set (:mod:`.registry`) resolves it for each model
(nothing is registered globally).  Rotary position embeddings need no rule: cos/sin depend on
positions only, so ``q·cos + rotate(q)·sin`` is linear in the input.

An extension of the expected-gate idea (ours, not in the paper): tanh (BERT's pooler, RoBERTa's
classification head) is written y = x·g(x) with the secant gate g(x) = tanh(x)/x, held constant
in the backward.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spmm.adapters.hf.rules import (  # noqa: F401  (re-exported: the text rules' building blocks)
    GELU_LIKE_ACTIVATIONS, ProductRule, gated_mlp_rule, rms_norm_rule, transformer_module_rules,
)
from spmm.rules.registry import keep_forward
from spmm.temperatures import Temperatures

# Classification heads computing out_proj(tanh(dense(features[:, 0]))) with a functional tanh.
TANH_CLASSIFICATION_HEADS = (
    "RobertaClassificationHead", "XLMRobertaClassificationHead", "CamembertClassificationHead",
    "Data2VecTextClassificationHead",
)


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
    """``{module class: rule}`` for the transformer building blocks inside ``model``
    (:func:`~spmm.adapters.hf.rules.transformer_module_rules`: arithmetic GELUs, RMS norms, gated
    MLPs) and the text ones: tanh, tanh classification heads, :class:`L2Normalize`."""
    rules: dict[type, object] = dict(transformer_module_rules(model))
    for module in model.modules():
        cls = type(module)
        if isinstance(module, L2Normalize):
            rules[cls] = l2_normalize_rule
        elif isinstance(module, nn.Tanh):
            rules[cls] = tanh_rule
        elif cls.__name__ in TANH_CLASSIFICATION_HEADS:
            rules[cls] = tanh_head_rule
    return rules
