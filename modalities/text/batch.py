"""Tokenised texts: :class:`TextBatch` and :func:`encode_texts` (fast tokenizers only)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Sequence

from torch import Tensor

from spmm.errors import SpmmInputError

OVERFLOW_POLICIES = ("truncate", "error")


@dataclasses.dataclass
class TextBatch:
    """Tokenised texts, padded to one length L.

    input_ids, attention_mask: (B, L) long; special_mask: (B, L) bool, True for the
    tokenizer's special tokens ([CLS], [SEP], <s>…); word_ids: per text, the word
    index of each token (None for special and padding tokens); offsets: per text,
    the (start, end) character span of each token; tokens: per text, the token strings;
    total_words: per text, its number of words before truncation; truncated: per text,
    whether tokens past the model's maximum were cut off.
    """

    texts: list[str]
    input_ids: Tensor
    attention_mask: Tensor
    special_mask: Tensor
    word_ids: list[list[int | None]]
    offsets: list[list[tuple[int, int]]]
    tokens: list[list[str]]
    total_words: list[int]
    truncated: list[bool]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def attributable(self) -> Tensor:
        """(B, L) bool: real, non-special tokens."""
        return self.attention_mask.bool() & ~self.special_mask

    def scored_words(self, index: int) -> int:
        """How many words of text ``index`` the batch holds (fewer than ``total_words`` when truncated)."""
        return len({w for w in self.word_ids[index] if w is not None})

    def to(self, device: Any) -> "TextBatch":
        """A copy with the tensors on ``device``."""
        return dataclasses.replace(
            self, input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device),
            special_mask=self.special_mask.to(device),
        )


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
    are truncated with a warning and flagged in ``TextBatch.truncated``
    (``on_overflow="truncate"``) or rejected (``on_overflow="error"``).  Empty texts raise
    :class:`spmm.SpmmInputError`.  Decoders usually want ``add_special_tokens=False`` so that
    the last token is the text's own.
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
    if on_overflow not in OVERFLOW_POLICIES:
        raise SpmmInputError(f"on_overflow must be one of {OVERFLOW_POLICIES}, got {on_overflow!r}")
    limit = max_length or tokenizer.model_max_length
    full = tokenizer(texts, add_special_tokens=add_special_tokens)
    too_long = [len(ids) > limit for ids in full["input_ids"]]
    if any(too_long):
        first = too_long.index(True)
        message = f"text {first} has {len(full['input_ids'][first])} tokens, more than the model's maximum of {limit}"
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
    total_words = [len({w for w in full.word_ids(i) if w is not None}) for i in range(len(texts))]
    return TextBatch(
        texts, encoded["input_ids"], attention_mask, special, word_ids, offsets, tokens, total_words, too_long
    )
