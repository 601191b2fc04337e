"""Module rules vision families need beyond the core op rules.

Squeeze-excitation blocks (EfficientNet, MobileNetV3, RegNetY…) compute
y = x · g(x) with a channel gate g = sigmoid(MLP(mean(x))).  In the Semantic
Pullback view g is a gate like any other: its forward value is kept and it is
treated as a constant in the backward pass, so the pullback through the block is
grad_in = grad_out · g (SPEC §2, "gates are constants").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from spmm.rules.registry import keep_forward
from spmm.temperatures import Temperatures

from .facts import SQUEEZE_EXCITE_GATES


def _gate_value(module: nn.Module, x: Tensor, gate_name: str) -> Tensor:
    """Re-run ``module`` on ``x`` without a graph and capture its gate's output (B, C, 1, 1)."""
    captured: list[Tensor] = []
    handle = getattr(module, gate_name).register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.no_grad():
            module(x)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"{type(module).__qualname__}.{gate_name} ran {len(captured)} times; expected once")
    return captured[0]


def squeeze_excite_rule(module: nn.Module, inputs: tuple, output: Any, temperatures: Temperatures) -> Tensor:
    """y = x · g(x) keeps its value; its backward multiplies by the constant gate g."""
    x = inputs[0]
    cls = type(module)
    gate = _gate_value(module, x.detach(), SQUEEZE_EXCITE_GATES[f"{cls.__module__}.{cls.__qualname__}"])
    return keep_forward(output, x * gate)


squeeze_excite_rule.__name__ = "squeeze-excitation gate held constant"

VISION_MODULE_RULES: dict[str, Any] = {name: squeeze_excite_rule for name in SQUEEZE_EXCITE_GATES}
"""``module_rules=`` for :func:`spmm.explain` / :func:`spmm.audit` on vision models
(keys are fully qualified class names, so importing this never imports or patches timm)."""
