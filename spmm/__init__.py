"""spmm — Semantic Pullbacks for PyTorch models.

Forward passes stay exactly as they are; inside :func:`pullback_mode` every
nonlinearity's backward uses a softened, expected gate (SPEC §2).
"""

from spmm.audit import AuditReport, audit
from spmm.errors import SpmmInputError, SpmmParameterError
from spmm.explain import check_inputs, explain, quantus_explain_func
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation, GroupedExplanation, Prediction
from spmm.load import list_models, load
from spmm.methods.registry import list_methods
from spmm.mode import PullbackMode, pullback_mode
from spmm.rules.registry import (
    gate_module_rule,
    keep_forward,
    list_rules,
    register_module_rule,
    unregister_module_rule,
)
from spmm.ruleset import RuleSet, get_ruleset, list_rulesets, register_ruleset, rulesets
from spmm.targets import ClassLogit, Continuation, Contrast, SequenceLogProb, TokenLabel
from spmm.temperatures import Temperatures

__all__ = [
    "AuditReport", "ClassLogit", "Continuation", "Contrast", "SequenceLogProb", "Explainable", "Explanation", "GroupedExplanation", "Prediction", "Prepared", "PullbackMode", "RuleSet",
    "SpmmInputError", "SpmmParameterError", "Temperatures", "audit", "check_inputs", "explain", "gate_module_rule", "get_ruleset",
    "keep_forward", "list_methods", "list_models", "list_rules", "list_rulesets", "load", "pullback_mode",
    "quantus_explain_func", "register_module_rule", "register_ruleset", "rulesets", "unregister_module_rule",
    "TokenLabel",
]
__version__ = "0.1.0"

from spmm import extend  # noqa: E402  (the extension contract; imports the names above)
