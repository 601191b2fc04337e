"""Models on token embeddings: what text attributions are computed through.

A text model is explained as a *body* ``(embeddings (B, L, D), attention_mask (B, L)) -> output``
with ``get_input_embeddings()``; :class:`HFOutput` makes one of a Hugging Face ``transformers``
model, and :class:`EmbeddingModel` closes a body over one batch's attention mask and fixed
special-token embeddings, so that it maps embeddings (B, L, D) alone to the output.
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from typing import Any

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.metrics.draws import content_ids

ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
"""Attention kernels the SP rules can see (flash-attention kernels are invisible to them)."""


def use_attention(model: nn.Module, implementation: str = "eager") -> nn.Module:
    """Switch a Hugging Face ``model`` to an attention kernel the SP rules see ("eager" or "sdpa"); returns it."""
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        raise SpmmInputError(
            f"attention implementation {implementation!r} is invisible to the SP rules; "
            f"use one of {ATTENTION_IMPLEMENTATIONS}"
        )
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(implementation)
    else:
        model.config._attn_implementation = implementation
    return model


def is_hf_model(module: nn.Module) -> bool:
    """Whether ``module`` is a ``transformers`` model taking ``inputs_embeds`` (without importing transformers)."""
    return (
        hasattr(module, "config") and hasattr(module, "get_input_embeddings")
        and "inputs_embeds" in inspect.signature(module.forward).parameters
    )


def model_labels(model: nn.Module) -> list[str] | None:
    """Label names of a Hugging Face sequence classifier from ``config.id2label`` (None for other
    models: every config has an ``id2label``, a language model's is meaningless)."""
    if "ForSequenceClassification" not in type(model).__name__:
        return None
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    return [id2label[i] for i in sorted(id2label)] or None


class HFOutput(nn.Module):
    """A ``transformers`` model as a body: (inputs_embeds, attention_mask) -> logits (B, C) or (B, L, V).

    Its attention implementation must be one the SP rules see (:func:`use_attention`).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        attention = getattr(model.config, "_attn_implementation", None) or "eager"
        if attention not in ATTENTION_IMPLEMENTATIONS:
            raise SpmmInputError(
                f"the model uses the {attention!r} attention kernel, which the SP rules cannot see; "
                f"switch it with spmm.modalities.text.use_attention(model, 'eager') (or 'sdpa')"
            )
        self.model = model
        self.train(model.training)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(inputs_embeds=embeddings, attention_mask=attention_mask).logits


_RANGES: "weakref.WeakKeyDictionary[nn.Module, tuple[int, float]]" = weakref.WeakKeyDictionary()
_RANGE_CHUNK = 4096
"""Token ids embedded at once when measuring a table's range."""


def embedding_range(model: nn.Module) -> float:
    """max − min of every token embedding ``model`` (or the first of its modules with
    ``get_input_embeddings()``) gives, through the embedding layer itself (so scaled embeddings
    count with their scale): a constant of the model, not of a batch.  Cached per layer until its
    weight changes."""
    owner = next((m for m in model.modules() if callable(getattr(m, "get_input_embeddings", None))), None)
    layer = owner.get_input_embeddings() if owner is not None else None
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise SpmmInputError(f"{type(model).__name__} has no token embedding table (get_input_embeddings().weight)")
    cached = _RANGES.get(layer)
    if cached is not None and cached[0] == weight._version:
        return cached[1]
    low, high = float("inf"), float("-inf")
    with torch.no_grad():
        for start in range(0, weight.shape[0], _RANGE_CHUNK):
            rows = layer(torch.arange(start, min(start + _RANGE_CHUNK, weight.shape[0]), device=weight.device))
            low, high = min(low, float(rows.amin())), max(high, float(rows.amax()))
    _RANGES[layer] = (weight._version, high - low)
    return high - low


def embed(model: nn.Module, input_ids: Tensor) -> Tensor:
    """Token embeddings through ``get_input_embeddings()`` (so scaled embeddings keep their scale): (B, L, D)."""
    if not hasattr(model, "get_input_embeddings"):
        raise SpmmInputError(
            f"{type(model).__name__} has no get_input_embeddings(); a text model must provide its token embedding layer"
        )
    with torch.no_grad():
        return model.get_input_embeddings()(input_ids).detach()


class EmbeddingModel(nn.Module):
    """``body`` evaluated on token embeddings x (B, L, D) with a fixed batch context.

    Rows where ``free`` (B, L) is False take the ``fixed`` embeddings (special and padding
    tokens), so their attribution is zero and noise never reaches them.  ``take``
    selects the context of repeated samples, like a target's ``take``.  A context of one row
    (B = 1) is shared by any number of rows (e.g. texts of one token count, without padding).
    """

    def __init__(self, body: nn.Module, attention_mask: Tensor, fixed: Tensor, free: Tensor) -> None:
        super().__init__()
        self.body = body
        self.attention_mask = attention_mask
        self.fixed = fixed.detach()
        self.free = free.to(fixed.dtype).unsqueeze(-1)
        self.train(body.training)

    def forward(self, embeddings: Tensor) -> Any:
        rows, shared = embeddings.shape[0], self.attention_mask.shape[0] == 1
        if rows != self.attention_mask.shape[0] and not shared:
            raise SpmmInputError(
                f"got {rows} rows for a text batch of {self.attention_mask.shape[0]}; "
                "repeated rows need take(sample_index)"
            )
        mixed = embeddings * self.free + self.fixed * (1 - self.free)
        return self.body(mixed, self.attention_mask.expand(rows, -1))

    def sample_ids(self, embeddings: Tensor) -> list[str]:
        """The ids the random draws of sampling methods are keyed by (:mod:`spmm.metrics.draws`): each
        row's content without its padding, so a text draws the same noise alone and padded in any
        batch (draws are element-indexed, and right padding keeps a text's elements first).  Texts
        padded on the left get a warning: their noise then depends on the batch's padding."""
        mask = self.attention_mask.expand(embeddings.shape[0], -1).bool()
        if (mask[:, :1] < mask.any(1, keepdim=True)).any():
            warnings.warn(
                "texts padded on the left: the random draws of a sampling method then depend on the batch's padding; "
                "pad on the right (tokenizer.padding_side = 'right') or explain one text at a time", stacklevel=2,
            )
        rows, kept = embeddings.detach().cpu(), mask.cpu()  # one copy to the CPU, where the ids are hashed
        return [content_ids(row[keep].unsqueeze(0))[0] for row, keep in zip(rows, kept)]

    def take(self, sample_index: Tensor) -> "EmbeddingModel":
        if self.attention_mask.shape[0] == 1:
            return self
        index = sample_index.to(self.attention_mask.device)
        body = self.body.take(index) if hasattr(self.body, "take") else self.body  # a body with per-row context
        return EmbeddingModel(body, self.attention_mask[index], self.fixed[index], self.free[index, :, 0].bool())
