"""Token, word and span scores from embedding attributions; word and token feature groups.

Token scores (SPEC §5): signed ⟨attr, embedding − baseline⟩ or unsigned ‖attr‖.  Word
scores sum the scores of a word's tokens, grouped by the word index each token got from its
character offsets (:mod:`.spans`, for every tokenizer kind); a word's character span runs from
its first token's start to its last token's end (offsets trimmed of whitespace).
Special and padding tokens never enter word scores.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError

from .batch import TextBatch

TOKEN_SCORE_KINDS = ("signed", "norm", "sum")


def token_scores(attributions: Tensor, embeddings: Tensor, kind: str = "signed", baseline: Tensor | None = None) -> Tensor:
    """Per-token scores (B, L) from attributions and embeddings (B, L, D).

    ``signed``: ⟨attr, embedding − baseline⟩ (baseline (D,) or (B, L, D), default 0);
    ``norm``: ‖attr‖₂; ``sum``: Σ attr over D, for attributions already multiplied by
    (embedding − baseline), such as integrated gradients.
    """
    if attributions.shape != embeddings.shape or attributions.dim() != 3:
        raise SpmmInputError(
            f"attributions {tuple(attributions.shape)} and embeddings {tuple(embeddings.shape)} must both be (B, L, D)"
        )
    if kind == "norm":
        return attributions.norm(dim=-1)
    if kind == "sum":
        return attributions.sum(dim=-1)
    if kind == "signed":
        reference = embeddings if baseline is None else embeddings - baseline
        return (attributions * reference).sum(dim=-1)
    raise SpmmInputError(f"unknown token score kind {kind!r}; choose from {TOKEN_SCORE_KINDS}")


SENTENCE = re.compile(r"[^\s.!?][^.!?]*(?:[.!?]+|$)")
"""A sentence: from its first character to its closing run of ``.``, ``!`` or ``?`` (or the end)."""


@dataclasses.dataclass
class SpanScores:
    """Pieces of one text (words, tokens, sentences…) with their scores and character spans (start, end)."""

    text: str
    units: list[str]
    scores: list[float]
    spans: list[tuple[int, int]]

    def as_dict(self) -> dict:
        return {"units": self.units, "scores": self.scores, "spans": [list(s) for s in self.spans]}


def _check_lengths(scores: Tensor, word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]]) -> None:
    if len(word_ids) != scores.shape[0] or len(offsets) != scores.shape[0]:
        raise SpmmInputError(f"{scores.shape[0]} token scores for {len(word_ids)} word ids and {len(offsets)} offsets")


def word_scores(
    text: str, scores: Tensor, word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]]
) -> SpanScores:
    """Sum the token ``scores`` (L,) of each word of ``text``.

    Tokens whose ``word_ids`` entry is None (special tokens, padding) are left out;
    a word's span runs from its first token's start to its last token's end.
    """
    _check_lengths(scores, word_ids, offsets)
    totals: dict[int, float] = {}
    spans: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word is None:
            continue
        start, end = offsets[position]
        totals[word] = totals.get(word, 0.0) + float(scores[position])
        if word in spans:
            spans[word][0] = min(spans[word][0], start)
            spans[word][1] = max(spans[word][1], end)
        else:
            spans[word] = [start, end]
    order = sorted(totals)
    word_spans = [(spans[w][0], spans[w][1]) for w in order]
    return SpanScores(text, [text[s:e] for s, e in word_spans], [totals[w] for w in order], word_spans)


def piece_scores(
    text: str, scores: Tensor, word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]], tokens: Sequence[str]
) -> SpanScores:
    """The token ``scores`` (L,) of ``text``'s own tokens (special and padding tokens left out)."""
    _check_lengths(scores, word_ids, offsets)
    kept = [p for p, word in enumerate(word_ids) if word is not None]
    return SpanScores(text, [tokens[p] for p in kept], [float(scores[p]) for p in kept], [tuple(offsets[p]) for p in kept])


def region_scores(
    text: str,
    scores: Tensor,
    word_ids: Sequence[int | None],
    offsets: Sequence[tuple[int, int]],
    regions: Sequence[tuple[int, int]],
) -> SpanScores:
    """Sum the token ``scores`` (L,) of each character region (start, end) of ``text``: a token
    belongs to the region its first character lies in.  Regions holding no scored token (e.g.
    cut off by truncation) are left out."""
    _check_lengths(scores, word_ids, offsets)
    kept = []
    for start, end in regions:
        inside = [p for p, word in enumerate(word_ids) if word is not None and start <= offsets[p][0] < end]
        if inside:
            kept.append(((start, end), sum(float(scores[p]) for p in inside)))
    return SpanScores(text, [text[s:e] for (s, e), _ in kept], [total for _, total in kept], [span for span, _ in kept])


def pattern_regions(text: str, pattern: str | re.Pattern) -> list[tuple[int, int]]:
    """The (start, end) spans of the non-empty matches of ``pattern`` in ``text``."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise SpmmInputError(f"invalid regular expression {pattern!r}: {error}") from error
    return [match.span() for match in compiled.finditer(text) if match.end() > match.start()]


def sentence_regions(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of ``text``'s sentences (see :data:`SENTENCE`)."""
    return pattern_regions(text, SENTENCE)


def word_groups(batch: TextBatch) -> Tensor:
    """(B, L) long: the word index of each token, −1 for special and padding tokens (feature groups)."""
    groups = torch.full(tuple(batch.input_ids.shape), -1, dtype=torch.long)
    for i, ids in enumerate(batch.word_ids):
        for position, word in enumerate(ids):
            if word is not None:
                groups[i, position] = word
    return groups


def token_groups(batch: TextBatch) -> Tensor:
    """(B, L) long: the token's own index among the attributable tokens, −1 for special/padding."""
    groups = torch.full(tuple(batch.input_ids.shape), -1, dtype=torch.long)
    for i in range(len(batch)):
        positions = batch.attributable[i].nonzero().flatten()
        groups[i, positions] = torch.arange(positions.numel())
    return groups


def replace_groups(input_ids: Tensor, groups: Tensor, removed: Tensor, replacement_id: int) -> Tensor:
    """Replace the tokens of the ``removed`` groups by ``replacement_id`` ([MASK] or pad).

    input_ids, groups: (B, L); removed: (B, G) bool over group indices.  Returns (B, L).
    """
    hit = _hit(groups, removed)
    return torch.where(hit, torch.full_like(input_ids, replacement_id), input_ids)


def delete_groups(
    input_ids: Tensor, attention_mask: Tensor, groups: Tensor, removed: Tensor, pad_id: int
) -> tuple[Tensor, Tensor]:
    """Delete the tokens of the ``removed`` groups (the rest moves left, the tail is padding).

    Returns (input_ids, attention_mask): (B, L) each.
    """
    keep = ~_hit(groups, removed) & attention_mask.bool()
    new_ids = torch.full_like(input_ids, pad_id)
    new_mask = torch.zeros_like(attention_mask)
    for i in range(input_ids.shape[0]):
        kept = input_ids[i][keep[i]]
        new_ids[i, : kept.numel()] = kept
        new_mask[i, : kept.numel()] = 1
    return new_ids, new_mask


def _hit(groups: Tensor, removed: Tensor) -> Tensor:
    valid = groups >= 0
    index = groups.clamp_min(0)
    return valid & removed.gather(1, index.clamp_max(removed.shape[1] - 1)) & (groups < removed.shape[1])


def concatenate_segments(texts: Sequence[str], separator: str = " ") -> tuple[str, list[tuple[int, int]]]:
    """A segment mosaic: the texts joined by ``separator`` and each segment's character span."""
    spans, pieces, position = [], [], 0
    for i, text in enumerate(texts):
        if i:
            pieces.append(separator)
            position += len(separator)
        pieces.append(text)
        spans.append((position, position + len(text)))
        position += len(text)
    return "".join(pieces), spans
