"""The rule sets the two sides of a dual encoder are explained with.

The image side keeps the ``vision`` set (SPEC §2 temperatures, squeeze-excitation gates held
constant) and adds the module rules found in the model (arithmetic GELUs such as CLIP's
QuickGELU, the L2 normalisation of the embedding); the text side is the ``text`` set, which
finds those itself.
"""

from __future__ import annotations

from spmm.ruleset import RuleSet


def dual_rules() -> tuple[RuleSet, RuleSet]:
    """(image-side rule set, text-side rule set)."""
    from spmm.adapters.text.registry import TEXT_RULES
    from spmm.adapters.text.rules import text_module_rules
    from spmm.adapters.vision.registry import VISION_RULES

    return VISION_RULES.updated(model_rules=text_module_rules), TEXT_RULES
