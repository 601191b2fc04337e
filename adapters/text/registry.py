"""Registers the text family with the core: the ``text`` rule set and the MiniLM classifiers
``minilm-sst2`` (the default text model), ``minilm-agnews`` and ``minilm-zero-shot``."""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable
from spmm.load import register_model
from spmm.ruleset import RuleSet, register_ruleset
from spmm.temperatures import Temperatures

from .rules import text_module_rules

TEXT_RULES = register_ruleset(RuleSet(
    "text", temperatures=Temperatures(silu=1.0), model_rules=text_module_rules,
))
"""SPEC §2 temperatures with SiLU at T = 1 (text), plus the module rules found in each model
(arithmetic GELUs, RMS norms, tanh heads, gated MLPs, L2 normalisation)."""

def _explainable(tokenizer: Any, model: nn.Module, name: str) -> Explainable:
    from spmm.modalities.text.modality import TextModality

    return Explainable(model, TextModality(tokenizer), TEXT_RULES, list(model.labels), name)


@register_model("minilm-sst2", "text", "SST-2 sentiment (negative/positive): MiniLM-L6 + shipped linear head",
                default=True)
def load_minilm_sst2() -> Explainable:
    from .models import load_sst2_classifier

    return _explainable(*load_sst2_classifier(), "minilm-sst2")


@register_model("minilm-agnews", "text", "AG News topics (World, Sports, Business, Sci/Tech): zero-shot MiniLM-L6")
def load_minilm_agnews() -> Explainable:
    from .models import AG_NEWS_DESCRIPTIONS, load_zero_shot_classifier

    return _explainable(*load_zero_shot_classifier(AG_NEWS_DESCRIPTIONS), "minilm-agnews")


@register_model("minilm-zero-shot", "text", "zero-shot MiniLM-L6 over labels=[...] (required)")
def load_minilm_zero_shot(labels: Sequence[str] | dict[str, str] | None = None) -> Explainable:
    """Zero-shot classifier over ``labels`` (names used as their own descriptions, or {label: description})."""
    from .models import load_zero_shot_classifier

    if labels is None:
        raise SpmmInputError('minilm-zero-shot needs labels=[...], e.g. spmm.load("minilm-zero-shot", '
                             'labels=["sports", "politics"])')
    return _explainable(*load_zero_shot_classifier(labels), "minilm-zero-shot")
