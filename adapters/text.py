"""Explain Hugging Face ``transformers`` text models through their input embeddings.

Text is tokenised by :func:`encode_texts` into a :class:`TextBatch`; the model is
wrapped by :class:`EmbeddingModel` so that it maps token embeddings
(B, L, D) to its output while keeping the batch's attention mask, and special
and padding tokens fixed (they get no attribution unless asked).  Targets are a
class (index or label name), the logit of a next token, or any callable on the
output (:class:`CosineSimilarity` for sentence-embedding models).
:func:`explain_text` ties these to :func:`spmm.explain` with the adapter's module
rules (:mod:`spmm.adapters.text_rules`) and the text temperatures (SiLU T = 1).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

import spmm
from spmm import SpmmInputError
from spmm.adapters.text_rules import TEXT_TEMPERATURES, merged_rules

ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
"""Attention kernels the SP rules can see (flash-attention kernels are invisible to them)."""


@dataclasses.dataclass
class TextBatch:
    """Tokenised texts, padded to one length L.

    input_ids, attention_mask: (B, L) long; special_mask: (B, L) bool, True for the
    tokenizer's special tokens ([CLS], [SEP], <s>…); word_ids: per text, the word
    index of each token (None for special and padding tokens); offsets: per text,
    the (start, end) character span of each token.
    """

    texts: list[str]
    input_ids: Tensor
    attention_mask: Tensor
    special_mask: Tensor
    word_ids: list[list[int | None]]
    offsets: list[list[tuple[int, int]]]
    tokens: list[list[str]]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def attributable(self) -> Tensor:
        """(B, L) bool: real, non-special tokens."""
        return self.attention_mask.bool() & ~self.special_mask


def encode_texts(
    tokenizer: Any,
    texts: str | Sequence[str],
    *,
    max_length: int | None = None,
    on_overflow: str = "truncate",
    add_special_tokens: bool = True,
) -> TextBatch:
    """Tokenise ``texts`` with a fast tokenizer, padding on the tokenizer's side.

    Texts longer than ``max_length`` (default: the tokenizer's ``model_max_length``)
    are truncated with a warning (``on_overflow="truncate"``) or rejected
    (``on_overflow="error"``).  Empty texts raise :class:`spmm.SpmmInputError`.  Decoders
    usually want ``add_special_tokens=False`` so that the last token is the text's own.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise SpmmInputError("no text given")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise SpmmInputError(f"text {i} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise SpmmInputError(f"text {i} is empty; there is nothing to explain")
    if not getattr(tokenizer, "is_fast", False):
        raise SpmmInputError("a fast tokenizer is needed (word_ids and offsets); load it with use_fast=True")
    if on_overflow not in ("truncate", "error"):
        raise SpmmInputError(f"on_overflow must be 'truncate' or 'error', got {on_overflow!r}")
    limit = max_length or tokenizer.model_max_length
    full = tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]
    too_long = [i for i, ids in enumerate(full) if len(ids) > limit]
    if too_long:
        message = (
            f"text {too_long[0]} has {len(full[too_long[0]])} tokens, more than the model's maximum of {limit}"
        )
        if on_overflow == "error":
            raise SpmmInputError(message)
        warnings.warn(message + "; it is truncated", stacklevel=2)
    encoded = tokenizer(
        texts, padding=True, truncation=True, max_length=limit, return_tensors="pt",
        add_special_tokens=add_special_tokens,
        return_special_tokens_mask=True, return_offsets_mapping=True,
    )
    attention_mask = encoded["attention_mask"]
    special = encoded["special_tokens_mask"].bool() & attention_mask.bool()
    word_ids = [encoded.word_ids(i) for i in range(len(texts))]
    offsets = [[tuple(span) for span in row.tolist()] for row in encoded["offset_mapping"]]
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in encoded["input_ids"].tolist()]
    return TextBatch(texts, encoded["input_ids"], attention_mask, special, word_ids, offsets, tokens)


def use_attention(model: nn.Module, implementation: str = "eager") -> nn.Module:
    """Switch ``model`` to an attention kernel the SP rules see ("eager" or "sdpa"); returns it."""
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


class HFOutput(nn.Module):
    """A ``transformers`` model as (inputs_embeds, attention_mask) -> logits: (B, C) or (B, L, V)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(inputs_embeds=embeddings, attention_mask=attention_mask).logits


class EmbeddingModel(nn.Module):
    """``body`` evaluated on token embeddings x (B, L, D) with a fixed batch context.

    Rows where ``free`` (B, L) is False take the fixed embeddings (special and padding
    tokens), so their attribution is zero and noise never reaches them.  ``take``
    selects the context of repeated samples, like a target's ``take``.
    """

    def __init__(self, body: nn.Module, attention_mask: Tensor, fixed: Tensor, free: Tensor) -> None:
        super().__init__()
        self.body = body
        self.attention_mask = attention_mask
        self.fixed = fixed.detach()
        self.free = free.to(fixed.dtype).unsqueeze(-1)
        self.train(body.training)

    def forward(self, embeddings: Tensor) -> Any:
        if embeddings.shape[0] != self.attention_mask.shape[0]:
            raise SpmmInputError(
                f"got {embeddings.shape[0]} rows for a text batch of {self.attention_mask.shape[0]}; "
                "repeated rows need take(sample_index)"
            )
        mixed = embeddings * self.free + self.fixed * (1 - self.free)
        return self.body(mixed, self.attention_mask)

    def take(self, sample_index: Tensor) -> "EmbeddingModel":
        index = sample_index.to(self.attention_mask.device)
        return EmbeddingModel(self.body, self.attention_mask[index], self.fixed[index], self.free[index, :, 0].bool())


class NextTokenLogit:
    """Score = logit of ``token_ids`` (B,) at ``positions`` (B,) of causal-LM logits (B, L, V)."""

    def __init__(self, token_ids: Tensor, positions: Tensor) -> None:
        self.token_ids, self.positions = token_ids, positions

    def __call__(self, logits: Any) -> Tensor:
        logits = logits if isinstance(logits, Tensor) else logits.logits
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, self.positions.to(logits.device), self.token_ids.to(logits.device)]

    def take(self, sample_index: Tensor) -> "NextTokenLogit":
        return NextTokenLogit(self.token_ids[sample_index], self.positions[sample_index])

    def __repr__(self) -> str:
        return f"NextTokenLogit({self.token_ids.tolist()})"


class CosineSimilarity:
    """Score = cos(output embedding, reference): output (B, D), reference (D,) or (B, D)."""

    def __init__(self, reference: Tensor) -> None:
        self.reference = reference.detach()

    def __call__(self, output: Tensor) -> Tensor:
        reference = self.reference.to(output.device).expand_as(output)
        return torch.nn.functional.cosine_similarity(output, reference, dim=-1)

    def take(self, sample_index: Tensor) -> "CosineSimilarity":
        return self if self.reference.dim() == 1 else CosineSimilarity(self.reference[sample_index])


def class_index(target: int | str, labels: Sequence[str]) -> int:
    """A class given as index or label name -> its index (unknown names raise, listing the valid ones)."""
    if isinstance(target, str):
        lowered = [label.lower() for label in labels]
        if target.lower() not in lowered:
            raise SpmmInputError(f"unknown label {target!r}; the model's labels are {list(labels)}")
        return lowered.index(target.lower())
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(labels):
        raise SpmmInputError(f"class {target!r} is not an index in 0..{len(labels) - 1} or a label name")
    return target


def model_labels(model: nn.Module) -> list[str]:
    """Label names from ``config.id2label`` (``LABEL_i`` when the config has none)."""
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    return [id2label[i] for i in sorted(id2label)]


def next_token_id(tokenizer: Any, token: int | str) -> int:
    """A next token given as id or string -> its id (the string must be exactly one token)."""
    if isinstance(token, int) and not isinstance(token, bool):
        if not 0 <= token < len(tokenizer):
            raise SpmmInputError(f"token id {token} is outside the vocabulary (size {len(tokenizer)})")
        return token
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise SpmmInputError(f"next token {token!r} is {len(ids)} tokens {pieces}, not one; give one token")
    return ids[0]


def last_positions(attention_mask: Tensor) -> Tensor:
    """(B,) index of the last real token of each row (works for left and right padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device).expand_as(attention_mask)
    return (positions * attention_mask.long()).amax(dim=1)


@dataclasses.dataclass
class TextExplanation:
    """What :func:`explain_text` returns: the core explanation, the batch and the embeddings it explained.

    embeddings, attributions: (B, L, D); ``explanation`` is the :class:`spmm.Explanation`.
    """

    batch: TextBatch
    embeddings: Tensor
    explanation: spmm.Explanation

    @property
    def attributions(self) -> Tensor:
        return self.explanation.attributions


def embed(model: nn.Module, input_ids: Tensor) -> Tensor:
    """Token embeddings through ``get_input_embeddings()`` (so scaled embeddings keep their scale): (B, L, D)."""
    with torch.no_grad():
        return model.get_input_embeddings()(input_ids).detach()


def explain_text(
    body: nn.Module,
    embedding_source: nn.Module,
    batch: TextBatch,
    target: Any,
    method: str = "soft_pullback",
    *,
    include_special: bool = False,
    temperatures: Mapping[str, float] | None = None,
    module_rules: Mapping | None = None,
    seed: int | None = None,
    embeddings: Tensor | None = None,
    **params: Any,
) -> TextExplanation:
    """Explain ``body`` (embeddings (B, L, D), attention_mask (B, L) -> output) on ``batch``.

    ``embedding_source`` is the model whose ``get_input_embeddings()`` gives the token
    embeddings; ``target`` is anything :func:`spmm.explain` takes (class indices,
    :class:`NextTokenLogit`, :class:`CosineSimilarity`…).  Special tokens keep their
    embeddings fixed (zero attribution) unless ``include_special``; padding always does.
    Temperatures default to the text values (SiLU T = 1.0); module rules to those of
    :func:`spmm.adapters.text_rules.text_module_rules`.  ``embeddings`` (B, L, D) replaces the
    token embeddings (e.g. perturbed ones for robustness metrics).
    """
    if embeddings is None:
        embeddings = embed(embedding_source, batch.input_ids)
    elif embeddings.shape[:2] != batch.input_ids.shape:
        raise SpmmInputError(f"embeddings {tuple(embeddings.shape)} do not match the batch {tuple(batch.input_ids.shape)}")
    free = batch.attention_mask.bool() if include_special else batch.attributable
    wrapped = EmbeddingModel(body, batch.attention_mask, embeddings, free)
    temps = {**TEXT_TEMPERATURES, **(temperatures or {})}
    rules = merged_rules(body, module_rules)
    explanation = spmm.explain(
        wrapped, embeddings, target, method, temperatures=temps, module_rules=rules, seed=seed, **params
    )
    return TextExplanation(batch, embeddings, explanation)


def audit_text(body: nn.Module, embedding_source: nn.Module, batch: TextBatch, **kwargs: Any) -> spmm.AuditReport:
    """:func:`spmm.audit` of ``body`` on ``batch`` with the adapter's rules and temperatures."""
    embeddings = embed(embedding_source, batch.input_ids)
    wrapped = EmbeddingModel(body, batch.attention_mask, embeddings, batch.attention_mask.bool())
    return spmm.audit(
        wrapped, embeddings, temperatures=TEXT_TEMPERATURES, module_rules=merged_rules(body), **kwargs
    )

