"""The check every architecture test makes: the rules change the backward only."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from spmm.ruleset import RuleSet


def forward_with_and_without_rules(model: Callable[[Tensor], Any], inputs: Tensor, rules: RuleSet) -> tuple[Any, Any]:
    """``model(inputs)`` without gradients, plainly and under ``rules``' pullback mode: (plain, under rules)."""
    with torch.no_grad():
        plain = model(inputs)
        with rules.mode():
            return plain, model(inputs)
