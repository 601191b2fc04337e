"""The text modality: strings -> token embeddings (B, L, D) of the model's own tokenizer.

The tokenizer travels on the modality instance (``m.modality.tokenizer``): a text model is
explained as a body ``(embeddings, attention_mask) -> output`` (see :mod:`.embedding`), and
``spmm.load(module, modality="text", tokenizer=...)`` wraps a user's body or Hugging Face model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation
from spmm.load import register_modality
from spmm.methods.registry import get_method
from spmm.ruleset import RuleSet, get_ruleset

from .batch import encode_texts, token_limit
from .embedding import EmbeddingModel, HFOutput, embed, embedding_range, is_hf_model, model_labels
from .explanation import TextExplanation, default_score

NOISE_SHARE_OF_RANGE = 0.075
"""Input-noise defaults (SmoothGrad…) as a share of the value range of the model's token embedding
table: 0.15 on the [−1, 1] range of images is 7.5 %."""


class TextModality:
    """Texts as token embeddings (B, L, D) of ``tokenizer`` (a ``transformers`` tokenizer, fast or
    sentencepiece; words from character offsets, see :mod:`.spans`).

    max_length: token limit (default: the tokenizer's ``model_max_length``, none when it names none); add_special_tokens:
    False for decoders, whose last token must be the text's own.
    """

    name = "text"

    def __init__(self, tokenizer: Any, max_length: int | None = None, add_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.add_special_tokens = add_special_tokens

    def prepare(
        self, model: nn.Module, inputs: str | Sequence[str], on_overflow: str = "truncate", include_special: bool = False
    ) -> Prepared:
        """inputs: one text or a list of texts.  Texts over the token limit are truncated (flagged
        in the explanation) or, with ``on_overflow="error"``, rejected.  Special tokens keep their
        embeddings (zero attribution) unless ``include_special``; padding always does."""
        batch = encode_texts(
            self.tokenizer, inputs, max_length=self.max_length, on_overflow=on_overflow,
            add_special_tokens=self.add_special_tokens,
        )
        embeddings = embed(model, _on_device(batch.input_ids, model))
        batch = batch.to(embeddings.device)
        free = batch.attention_mask.bool() if include_special else batch.attributable
        wrapped = EmbeddingModel(model, batch.attention_mask, embeddings, free)
        return Prepared(embeddings, wrapped, list(batch.texts), {"batch": batch})

    def method_params(self, method: str, inputs: Tensor, model: Any) -> dict[str, Any]:
        """``noise`` (SmoothGrad, SmoothPullback, FusionGrad…) scaled to the value range of
        ``model``'s token embedding table (:func:`.embedding.embedding_range`): the same for a text
        alone or in any batch."""
        if "noise" not in get_method(method).defaults:
            return {}
        return {"noise": NOISE_SHARE_OF_RANGE * embedding_range(model)}

    def explanation(self, base: Explanation, prepared: Prepared) -> TextExplanation:
        return base.recast(TextExplanation, batch=prepared.context["batch"], score=default_score(base.method))

    # -- benchmark protocol (SPEC §5) -------------------------------------------
    bench_kinds = {
        "faithfulness": ["comprehensiveness", "sufficiency", "deletion_auc", "random_logit", "max_sensitivity"],
        "focus": ["pointing_game"],
    }
    """``spmm bench KIND`` -> its default metrics (faithfulness on words; the sequence pointing game)."""

    def bench_batches(self, model: nn.Module, data: str | Path, kind: str, n: int, batch_size: int, seed: int,
                      labels: Sequence[str] | None = None) -> list:
        """Batches of a labelled text file (``kind`` faithfulness) or of two-segment pairs built from it
        (focus); see :func:`.bench.bench_batches`.  ``labels``: the model's labels (for label names in a CSV)."""
        from .bench import bench_batches

        return bench_batches(self, model, labels, data, kind, n, batch_size, seed)

    def bench_metrics(self, names: Sequence[str], batches: Sequence, seed: int,
                      overrides: dict[str, dict[str, Any]] | None = None) -> dict:
        """The text metric settings on these batches (see :func:`.bench.text_metric_specs`)."""
        from .bench import text_metric_specs

        return text_metric_specs(names, batches, self.tokenizer, seed, overrides)


def _on_device(ids: Tensor, model: nn.Module) -> Tensor:
    parameter = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    return ids if parameter is None else ids.to(parameter.device)


def wrap_text_model(
    module: nn.Module,
    tokenizer: Any = None,
    labels: Sequence[str] | None = None,
    rules: RuleSet | str = "text",
    name: str = "",
    max_length: int | None = None,
    add_special_tokens: bool = True,
) -> Explainable:
    """``spmm.load(module, modality="text", tokenizer=..., labels=...)``: a user's text model, either a
    body ``(embeddings (B, L, D), attention_mask (B, L)) -> output`` with ``get_input_embeddings()``,
    or a Hugging Face model taking ``inputs_embeds`` (its logits are explained; labels default to
    ``config.id2label`` of sequence classifiers; its token limit: :func:`.batch.token_limit`).  Explained
    with the ``text`` rule set by default."""
    if tokenizer is None:
        raise SpmmInputError('spmm.load(module, modality="text") needs tokenizer=<the model\'s tokenizer>')
    name = name or type(module).__name__
    if is_hf_model(module):
        labels = labels if labels is not None else model_labels(module)
        max_length = token_limit(tokenizer, module.config, max_length)
        module = HFOutput(module)
    elif not hasattr(module, "get_input_embeddings"):
        raise SpmmInputError(
            f"{type(module).__name__} is neither a Hugging Face model taking inputs_embeds nor a body with "
            "get_input_embeddings() taking (embeddings, attention_mask)"
        )
    ruleset = get_ruleset(rules) if isinstance(rules, str) else rules
    modality = TextModality(tokenizer, max_length, add_special_tokens)
    return Explainable(module, modality, ruleset, list(labels) if labels is not None else None, name)


register_modality("text", wrap_text_model)
