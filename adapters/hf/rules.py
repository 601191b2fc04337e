"""Module rules for the building blocks of transformer models in every modality (Hugging Face
``transformers``, open_clip, timm): what op-level SP rules cannot see because it is written as
arithmetic.

- GELU-like activations (``NewGELUActivation`` uses tanh and pow, ``QuickGELU`` x·σ(1.702x)) get
  the GELU gate Φ(x/T).
- RMS norms — every ``*RMSNorm`` class, ``T5LayerNorm`` and any other module that computes one —
  are recognised by what they compute, not by their name: a parameter-only module with a 1-D
  ``weight`` and an epsilon whose output on a probe equals x·rsqrt(mean(x²) + eps)·(offset + weight)
  for offset 0 (Llama, Qwen2, T5) or 1 (Gemma).  Their rule holds the RMS constant.
- Gated MLPs ``down(act(gate(x)) * up(x))`` (Llama's ``gate_proj/up_proj/down_proj/act_fn``, T5's
  ``wi_0/wi_1/wo/act``) keep the product rule of the bilinear product, the activation under its
  SP rule (an extension of the expected-gate idea, ours).  Fused ones, whose gate and up
  projections are one matrix split in the forward (Phi-3's ``gate_up_proj``, ModernBERT's ``Wi``,
  Mixtral's experts, DINOv2's SwiGLU), compute exactly that already: their products are marked
  as the deliberate product rule (what :func:`spmm.audit` reports), nothing else changes.
- Soft-capped logits c·tanh(z/c) (Gemma-2's final logits and attention scores) are z·g(z) with the
  gate g(z) = tanh(z/c)/(z/c) held constant: the backward is grad · g(z) (SPEC §2: gates are
  constants), not the saturating derivative 1 − tanh²(z/c).

:func:`transformer_module_rules` finds the rules for the module types inside one model; the
``text``, ``vision`` and ``audio`` rule sets resolve it per model (nothing is registered globally).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import Tensor, nn

from spmm.rules.registry import ModuleRule, gate_module_rule, keep_forward
from spmm.temperatures import Temperatures

GELU_LIKE_ACTIVATIONS = (
    "GELUActivation", "NewGELUActivation", "FastGELUActivation", "AccurateGELUActivation", "GELUTanh",
    "PytorchGELUTanh", "QuickGELUActivation", "QuickGELU", "BloomGelu",
)
"""Activation classes (bare class names) computing x·g(x) with g ≈ Φ: they get the GELU gate."""

GATED_MLP_LAYOUTS = (("gate_proj", "up_proj", "down_proj", "act_fn"), ("wi_0", "wi_1", "wo", "act"))
"""Attribute names (gate, up, down, activation) of gated MLPs down(act(gate(x)) * up(x))."""

FUSED_GATED_MLP_LAYOUTS = (("gate_up_proj", "down_proj", "activation_fn"), ("gate_up_proj", "down_proj", "act_fn"),
                           ("Wi", "Wo", "act"), ("weights_in", "weights_out"))
"""Attribute names of gated MLPs with one fused gate-and-up projection (Phi-3, Mixtral experts,
ModernBERT, DINOv2 SwiGLU)."""

SOFTCAP_SETTINGS = ("final_logit_softcapping", "attn_logit_softcapping")
"""Config fields of soft-capped logits c·tanh(z/c) (Gemma-2): a model whose config sets one gets the soft-cap rule."""

TORCH_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm)
"""Norms whose functional ops have op rules of their own."""

RMS_GAIN_OFFSETS = (0.0, 1.0)
"""Gains weight (Llama, T5) or 1 + weight (Gemma)."""


def rms_epsilon(module: nn.Module) -> float | None:
    """The epsilon of an RMS-norm-like module (``variance_epsilon`` or ``eps``), None if it has none."""
    for name in ("variance_epsilon", "eps", "epsilon"):
        value = getattr(module, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def rms_gain_offset(module: nn.Module) -> float | None:
    """The gain offset (0 or 1) if ``module`` computes an RMS norm over its last dimension, else None.

    Only modules without children that carry an epsilon, take one input (gated norms such as
    Mamba's take two) and whose parameters are one 1-D ``weight`` (D,) are probed, on a fixed
    (2, 3, D) input (the global random state is not touched)."""
    weight = getattr(module, "weight", None)
    eps = rms_epsilon(module)
    if (isinstance(module, TORCH_NORMS) or eps is None or not isinstance(weight, Tensor) or weight.dim() != 1
            or next(module.children(), None) is not None
            or [name for name, _ in module.named_parameters()] != ["weight"]
            or len(inspect.signature(module.forward).parameters) != 1):
        return None
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 3, weight.shape[0], generator=generator).to(weight.device, weight.dtype)
    try:
        with torch.no_grad():
            output = module(probe)
    except Exception:  # a module with other inputs is not a plain RMS norm
        return None
    if not isinstance(output, Tensor) or output.shape != probe.shape:
        return None
    x = probe.float()
    normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    tolerance = 1e-5 if weight.dtype in (torch.float32, torch.float64) else 2e-2
    for offset in RMS_GAIN_OFFSETS:
        expected = normed * (weight.detach().float() + offset)
        if torch.allclose(output.float(), expected, rtol=tolerance, atol=tolerance):
            return offset
    return None


def rms_norm_rule(offset: float = 0.0) -> ModuleRule:
    """RMS norm with its root-mean-square held constant: the backward is grad · (offset + weight) / rms(x)."""

    def rule(module: nn.Module, inputs: tuple, output: Tensor, temperatures: Temperatures) -> Tensor:
        x = inputs[0]
        eps = rms_epsilon(module) or 0.0
        wide = x.detach().to(torch.promote_types(x.dtype, torch.float32))  # half precision computed in float32
        rstd = torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + eps).to(x.dtype)
        surrogate = x * rstd
        gain = getattr(module, "weight", None)
        if gain is not None:
            surrogate = surrogate * (gain + offset)
        return keep_forward(output, surrogate.to(output.dtype))

    rule.__name__ = "rms_norm (module, constant rms)" + (f", gain {offset:g} + weight" if offset else "")
    return rule


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


def gated_mlp_layout(module: nn.Module) -> tuple[str, str, str, str] | None:
    """The (gate, up, down, activation) attribute names of a gated MLP, or None."""
    for layout in GATED_MLP_LAYOUTS:
        if all(hasattr(module, part) for part in layout):
            return layout
    return None


def gated_mlp_rule(module: nn.Module, inputs: tuple, output: Tensor, temperatures: Temperatures) -> Tensor:
    """``down(act(gate(x)) * up(x))``: product rule, activation under its SP rule; dropout between
    product and ``down`` is the identity in eval mode.  Eagerly, the module's own forward runs once
    with its products through :class:`ProductRule` (``in_forward_ops``); this re-run is what
    torch.compile traces."""
    gate, up, down, act = (getattr(module, part) for part in gated_mlp_layout(module))
    x = inputs[0]
    gated = ProductRule.apply(act(gate(x)), up(x))
    down_weight = getattr(down, "weight", None)
    if isinstance(down_weight, Tensor) and down_weight.is_floating_point():
        gated = gated.to(down_weight.dtype)
    return keep_forward(output, down(gated))


def _exact_product(func: Callable, args: tuple, kwargs: dict):
    """A product of two same-shaped tensors inside a gated MLP's own forward: through ProductRule."""
    if not kwargs and len(args) == 2 and all(isinstance(a, Tensor) for a in args) and args[0].shape == args[1].shape:
        return ProductRule.apply(*args)
    return func(*args, **kwargs)


gated_mlp_rule.__name__ = "gated MLP (module, product rule)"
# `a * b`, `a.mul(b)` and `2 * a` all reach a TorchFunctionMode as Tensor.mul.
gated_mlp_rule.in_forward_ops = dict.fromkeys((Tensor.mul, torch.mul), _exact_product)


def _broadcast_product(func: Callable, args: tuple, kwargs: dict):
    """A product of two tensors inside a fused gated MLP's forward (broadcast, as Mixtral's routing
    weights are): through ProductRule, the exact product rule."""
    if not kwargs and len(args) == 2 and all(isinstance(a, Tensor) for a in args):
        return ProductRule.apply(*torch.broadcast_tensors(*args))
    return func(*args, **kwargs)


def fused_gated_mlp_rule(module: nn.Module, inputs: tuple, output: Tensor, temperatures: Temperatures) -> Tensor:
    """A fused gated MLP's gradient is already the product rule with its activation under its SP
    rule: its output is kept as it is (the eager forward routes its products through ProductRule)."""
    return output


fused_gated_mlp_rule.__name__ = "fused gated MLP (module, product rule)"
fused_gated_mlp_rule.in_forward_ops = dict.fromkeys((Tensor.mul, torch.mul), _broadcast_product)


def softcap_gate(u: Tensor) -> Tensor:
    """tanh(u)/u (1 at u = 0): the gate of c·tanh(z/c) = z·g(z/c)."""
    safe = torch.where(u == 0, torch.ones_like(u), u)
    return torch.where(u == 0, torch.ones_like(u), torch.tanh(safe) / safe)


def _softcapped_tanh(func: Callable, args: tuple, kwargs: dict):
    """tanh(u) keeping its value, with the backward grad · tanh(u)/u (the gate held constant)."""
    if kwargs or len(args) != 1 or not isinstance(args[0], Tensor):
        return func(*args, **kwargs)
    u = args[0]
    return keep_forward(func(u), u * softcap_gate(u.detach()))


def softcap_rule(module: nn.Module, inputs: tuple, output: Any, temperatures: Temperatures) -> Any:
    """The model's output is kept; its eager forward runs every ``tanh`` (the soft-caps) with the
    constant gate tanh(u)/u.  torch.compile traces the exact tanh."""
    return output


softcap_rule.__name__ = "soft-cap tanh (gate tanh(u)/u held constant)"
softcap_rule.in_forward_ops = dict.fromkeys((torch.tanh, Tensor.tanh, nn.functional.tanh), _softcapped_tanh)


def fused_gated_mlp_layout(module: nn.Module) -> tuple[str, ...] | None:
    """The attribute names of a fused gated MLP, or None."""
    for layout in FUSED_GATED_MLP_LAYOUTS:
        if all(hasattr(module, part) for part in layout):
            return layout
    return None


def is_softcapped(module: nn.Module) -> bool:
    """Whether ``module`` is a Hugging Face model whose config soft-caps logits (its own forward runs the tanh)."""
    config = getattr(module, "config", None)
    return hasattr(module, "base_model_prefix") and any(
        getattr(config, setting, None) is not None for setting in SOFTCAP_SETTINGS)


def transformer_module_rules(model: nn.Module) -> dict[type, Callable]:
    """``{module class: rule}`` for the GELU-like activations, RMS norms, gated MLPs and soft-capped
    models inside ``model``."""
    rules: dict[type, Callable] = {}
    gelu = gate_module_rule("gelu")
    probed: set[type] = set()
    for module in model.modules():
        cls = type(module)
        if cls in rules or cls in probed:
            continue
        if cls.__name__ in GELU_LIKE_ACTIVATIONS:
            rules[cls] = gelu
        elif gated_mlp_layout(module) is not None:
            rules[cls] = gated_mlp_rule
        elif fused_gated_mlp_layout(module) is not None:
            rules[cls] = fused_gated_mlp_rule
        elif is_softcapped(module):
            rules[cls] = softcap_rule
        else:
            probed.add(cls)
            offset = rms_gain_offset(module)
            if offset is not None:
                rules[cls] = rms_norm_rule(offset)
    return rules
