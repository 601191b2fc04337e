"""Registers the cross-modal family with the core: ``lite0-minilm``."""

from __future__ import annotations

from typing import Sequence

from spmm.explainable import Explainable
from spmm.load import register_model


@register_model("lite0-minilm", "image",
                "open-vocabulary classifier: Lite0 mapped into MiniLM space; labels=[texts] (default: 1000 ImageNet "
                "prompts); words: m.explain_text(text, image=...)")
def load_lite0_minilm_model(labels: Sequence[str] | dict[str, str] | None = None) -> Explainable:
    """Zero-shot image classifier over ``labels`` (texts, or {label: text}); default: the 1000
    ImageNet class names with their prompts (embeddings shipped with the map)."""
    from .dual import DualEncoderExplainable
    from .lite0_minilm import default_prompts, load_lite0_minilm

    dual, default_embeddings = load_lite0_minilm()
    if labels is None:
        return DualEncoderExplainable.build(dual, default_prompts(), "lite0-minilm", default_embeddings)
    return DualEncoderExplainable.build(dual, labels, "lite0-minilm")
