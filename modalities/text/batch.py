"""Tokenised texts: :class:`TextBatch` and :func:`encode_texts` (any ``transformers`` tokenizer)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError

from .alignment import aligned_offsets
from .spans import is_invisible, token_words

OVERFLOW_POLICIES = ("truncate", "error")
NO_LIMIT = 1_000_000_000
"""``model_max_length`` at or above this is transformers' "no limit" sentinel (int(1e30))."""
ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "data2vec-text")
"""Model types whose position ids start after the padding index (max positions − pad − 1 tokens)."""
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_positions", "n_ctx")
"""Config keys naming the size of a model's position table."""
DEFAULT_TOKEN_LIMIT = 512
"""The token limit when neither the tokenizer nor the config names one (T5's training length)."""


@dataclasses.dataclass
class TextBatch:
    """Tokenised texts, padded to one length L.

    input_ids, attention_mask: (B, L) long; special_mask: (B, L) bool, True for the
    tokenizer's special tokens ([CLS], [SEP], <s>…); word_ids: per text, the word
    index of each token (None for special and padding tokens; see :mod:`.spans`); offsets:
    per text, the (start, end) character span of each token without surrounding whitespace
    ((0, 0) for special and padding tokens); tokens: per text, the token strings;
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
    """Tokenise ``texts``, padding on the tokenizer's side; words from the tokens' character
    offsets (:mod:`.spans`; a tokenizer without offsets gets them by :mod:`.alignment`).

    Texts longer than ``max_length`` (default: the tokenizer's ``model_max_length``, when it
    names one) are truncated with a warning and flagged in ``TextBatch.truncated``
    (``on_overflow="truncate"``) or rejected (``on_overflow="error"``).  Texts with nothing to
    explain (empty, only whitespace, zero-width or control characters, or no token the
    tokenizer keeps) raise :class:`spmm.SpmmInputError`.  Decoders usually want
    ``add_special_tokens=False`` so that the last token is the text's own.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise SpmmInputError("no text given")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise SpmmInputError(f"text {i} is a {type(text).__name__}, not a string")
        if all(is_invisible(c) for c in text):
            raise SpmmInputError(
                f"text {i} holds no visible character (it is empty or only whitespace, zero-width or control "
                "characters); there is nothing to explain"
            )
    if on_overflow not in OVERFLOW_POLICIES:
        raise SpmmInputError(f"on_overflow must be one of {OVERFLOW_POLICIES}, got {on_overflow!r}")
    if len(texts) > 1 and getattr(tokenizer, "pad_token", None) is None:
        raise SpmmInputError(
            f"{len(texts)} texts need padding but the tokenizer has no pad token: explain one text at a time, "
            "or set tokenizer.pad_token (e.g. to its EOS token)"
        )
    limit = max_length or known_limit(tokenizer)
    fast = has_offsets(tokenizer)
    full = [token_words_of(tokenizer, text, add_special_tokens) for text in texts]
    for i, (_, words) in enumerate(full):
        if all(w is None for w in words):
            raise SpmmInputError(f"text {i} gives no token the tokenizer keeps ({texts[i]!r}); there is nothing to explain")
    too_long = overflowing([len(ids) for ids, _ in full], limit, on_overflow, "text", "it is truncated")
    encoded = tokenizer(
        texts, padding=True, truncation=limit is not None, max_length=limit, return_tensors="pt",
        add_special_tokens=add_special_tokens, return_special_tokens_mask=True, return_offsets_mapping=fast,
    )
    attention_mask = encoded["attention_mask"]
    special = encoded["special_tokens_mask"].bool() & attention_mask.bool()
    scored = (attention_mask.bool() & ~special).tolist()
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in encoded["input_ids"].tolist()]
    word_ids, offsets = [], []
    for i, text in enumerate(texts):
        mapping = encoded["offset_mapping"][i].tolist() if fast else None
        words, spans = token_words(text, character_offsets(tokenizer, text, tokens[i], scored[i], mapping), scored[i])
        word_ids.append(words)
        offsets.append(spans)
    total_words = [len({w for w in words if w is not None}) for _, words in full]
    return TextBatch(
        texts, encoded["input_ids"], attention_mask, special, word_ids, offsets, tokens, total_words, too_long
    )


def overflowing(lengths: Sequence[int], limit: int | None, on_overflow: str, what: str, cut: str) -> list[bool]:
    """Per text (or pair) of ``lengths`` tokens, whether it exceeds ``limit``; for the first that does,
    a :class:`SpmmInputError` with ``on_overflow="error"``, else a warning ending in ``cut``."""
    too_long = [limit is not None and length > limit for length in lengths]
    if any(too_long):
        first = too_long.index(True)
        message = f"{what} {first} has {lengths[first]} tokens, more than the model's maximum of {limit}"
        if on_overflow == "error":
            raise SpmmInputError(message)
        warnings.warn(f"{message}; {cut}", stacklevel=3)
    return too_long


PAIR_SEPARATOR = "\n"
"""What joins a question and its context into the one text a pair's words are shown in."""


def encode_pairs(
    tokenizer: Any, pairs: Sequence[tuple[str, str]], *, max_length: int | None = None, on_overflow: str = "truncate",
) -> tuple[TextBatch, Tensor, Tensor | None]:
    """Tokenise (question, context) ``pairs`` as the tokenizer joins two texts, cutting the context
    (only) past ``max_length``.  The batch's text of a pair is ``question + PAIR_SEPARATOR + context``
    (its words: the question's, then the context's).  Returns (batch, in_context (B, L) bool: the
    context's own tokens, token_type_ids (B, L) or None when the tokenizer gives none).  Needs a
    tokenizer with offsets (every question-answering model has a fast tokenizer)."""
    if not has_offsets(tokenizer):
        raise SpmmInputError("question answering needs the model's fast tokenizer (offsets of question and context); "
                             "pass tokenizer=<its fast tokenizer>")
    if on_overflow not in OVERFLOW_POLICIES:
        raise SpmmInputError(f"on_overflow must be one of {OVERFLOW_POLICIES}, got {on_overflow!r}")
    questions, contexts = [q for q, _ in pairs], [c for _, c in pairs]
    for i, (question, context) in enumerate(pairs):
        for name, text in (("question", question), ("context", context)):
            if not isinstance(text, str) or all(is_invisible(c) for c in text):
                raise SpmmInputError(f"pair {i}: the {name} must be a text with visible characters, got {text!r}")
    limit = max_length or known_limit(tokenizer)
    full = tokenizer(questions, contexts, return_offsets_mapping=True)
    too_long = overflowing([len(ids) for ids in full["input_ids"]], limit, on_overflow, "pair", "its context is truncated")
    encoded = tokenizer(
        questions, contexts, padding=True, truncation="only_second" if limit is not None else False, max_length=limit,
        return_tensors="pt", return_special_tokens_mask=True, return_offsets_mapping=True,
    )
    attention_mask = encoded["attention_mask"]
    special = encoded["special_tokens_mask"].bool() & attention_mask.bool()
    scored = (attention_mask.bool() & ~special).tolist()
    texts = [q + PAIR_SEPARATOR + c for q, c in pairs]
    in_context = torch.zeros_like(special)
    word_ids, offsets, total_words = [], [], []
    for i, (question, _) in enumerate(pairs):
        sequences = encoded.sequence_ids(i)
        shift = len(question) + len(PAIR_SEPARATOR)
        spans = _joined_spans(sequences, encoded["offset_mapping"][i].tolist(), shift)
        in_context[i] = torch.tensor([sequence == 1 and keep for sequence, keep in zip(sequences, scored[i])])
        words, spans = token_words(texts[i], spans, scored[i])
        word_ids.append(words)
        offsets.append(spans)
        full_spans = _joined_spans(full.sequence_ids(i), full["offset_mapping"][i], shift)
        full_scored = [sequence is not None for sequence in full.sequence_ids(i)]
        total_words.append(len({w for w in token_words(texts[i], full_spans, full_scored)[0] if w is not None}))
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in encoded["input_ids"].tolist()]
    batch = TextBatch(texts, encoded["input_ids"], attention_mask, special, word_ids, offsets, tokens, total_words,
                      too_long)
    return batch, in_context, encoded.get("token_type_ids")


def has_offsets(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` reports character offsets (a fast, ``tokenizers``-backed one)."""
    return bool(getattr(tokenizer, "is_fast", False))


def known_limit(tokenizer: Any) -> int | None:
    """The tokenizer's ``model_max_length``, None when it names none (transformers' 1e30 sentinel)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < NO_LIMIT else None


def token_limit(tokenizer: Any, config: Any, max_length: int | None = None) -> int:
    """The most tokens a text may have: ``max_length`` when given, else the smaller of the tokenizer's
    ``model_max_length`` (ignoring transformers' "no limit" sentinel) and the model's position table
    (``max_position_embeddings``, ``n_positions``…, less the padding offset of RoBERTa-like models),
    else :data:`DEFAULT_TOKEN_LIMIT` (models with relative or no positions: T5, Bloom, Mamba)."""
    if max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise SpmmInputError(f"max_length must be a positive number of tokens, got {max_length!r}")
        return max_length
    limits = [known_limit(tokenizer)]
    positions = next((getattr(config, key) for key in POSITION_KEYS
                      if isinstance(getattr(config, key, None), int) and getattr(config, key) > 0), None)
    if positions is not None:
        offset = (config.pad_token_id or 0) + 1 if getattr(config, "model_type", "") in ROBERTA_LIKE else 0
        limits.append(positions - offset)
    limits = [limit for limit in limits if limit is not None and limit > 0]
    return min(limits) if limits else DEFAULT_TOKEN_LIMIT


def character_offsets(
    tokenizer: Any, text: str, pieces: Sequence[str], scored: Sequence[bool], mapping: Sequence | None = None,
) -> list[tuple[int, int]]:
    """(start, end) character span of each token of ``text`` (``pieces``, in order, padding included);
    (0, 0) for the tokens not ``scored``.  A fast tokenizer's ``offset_mapping`` (``mapping``) as it
    is; a tokenizer without one (``mapping`` None) gets :func:`.alignment.aligned_offsets`."""
    if mapping is None:
        return aligned_offsets(tokenizer, text, pieces, scored)
    return [tuple(int(v) for v in span) if keep else (0, 0) for span, keep in zip(mapping, scored)]


def token_words_of(tokenizer: Any, text: str, add_special_tokens: bool) -> tuple[list[int], list[int | None]]:
    """The token ids of one ``text`` (untruncated) and the word index of each (:func:`.spans.token_words`;
    None for special tokens)."""
    fast = has_offsets(tokenizer)
    encoded = tokenizer(text, add_special_tokens=add_special_tokens, return_special_tokens_mask=True,
                        return_offsets_mapping=fast)
    ids = list(encoded["input_ids"])
    scored = [not bool(m) for m in encoded["special_tokens_mask"]]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    mapping = encoded["offset_mapping"] if fast else None
    words, _ = token_words(text, character_offsets(tokenizer, text, pieces, scored, mapping), scored)
    return ids, words


def _joined_spans(sequences: Sequence[int | None], offsets: Sequence[Sequence[int]], shift: int) -> list[tuple[int, int]]:
    """Character spans of a pair's tokens in ``question + PAIR_SEPARATOR + context``: the context's
    (sequence 1) moved by ``shift``, the question's and special tokens' as they are."""
    return [(s + shift, e + shift) if sequence == 1 else (s, e) for sequence, (s, e) in zip(sequences, offsets)]
