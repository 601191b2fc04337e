"""Character offsets for tokenizers that report none (sentencepiece "slow" tokenizers such as
Marian's and SigLIP's): each token piece is found in the text, in order.

A piece's surface is its text as the tokenizer writes it (``convert_tokens_to_string``; ``▁``
and a leading ``##`` mark a word start, not a character), found at the cursor after any
whitespace (exactly, else ignoring case and accents).  Pieces that cannot be found there (byte
pieces ``<0xE6>``, ``<unk>``, characters the tokenizer normalised beyond recognition) share the
span from the cursor to the next piece found, as fast tokenizers report the bytes of one
character.  Whitespace-only pieces (a lone ``▁``) get the empty span at the cursor.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Sequence

CONTINUATION_MARK = "##"
"""WordPiece's mark of a piece inside a word."""


def piece_surface(tokenizer: Any, piece: str) -> str:
    """The text a token piece stands for, without surrounding whitespace."""
    if piece.startswith(CONTINUATION_MARK) and len(piece) > len(CONTINUATION_MARK):
        return piece[len(CONTINUATION_MARK):]
    try:
        surface = tokenizer.convert_tokens_to_string([piece])
    except (KeyError, TypeError, ValueError, IndexError):
        surface = piece
    return surface.replace("▁", " ").strip()


def folded(text: str) -> str:
    """``text`` case-folded without accents, character for character where possible."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _match_length(text: str, position: int, surface: str) -> int:
    """How many characters of ``text`` from ``position`` spell ``surface`` (exactly, else folded); 0: none."""
    if text.startswith(surface, position):
        return len(surface)
    target = folded(surface)
    for length in range(len(surface), min(len(text) - position, 2 * len(surface) + 2) + 1):
        if folded(text[position:position + length]) == target:
            return length
    return 0


def aligned_offsets(tokenizer: Any, text: str, pieces: Sequence[str], scored: Sequence[bool]) -> list[tuple[int, int]]:
    """(start, end) character spans of ``pieces`` (the tokens of ``text``, in order) in ``text``;
    (0, 0) where ``scored`` is False (special and padding tokens)."""
    spans: list[tuple[int, int]] = [(0, 0)] * len(pieces)
    pending: list[int] = []
    cursor = 0

    def settle(until: int) -> None:
        for position in pending:
            spans[position] = (cursor, max(cursor, until))
        pending.clear()

    for position, (piece, keep) in enumerate(zip(pieces, scored)):
        if not keep:
            continue
        surface = piece_surface(tokenizer, piece)
        start = cursor
        while start < len(text) and text[start].isspace():
            start += 1
        if not surface:
            if pending:
                pending.append(position)
            else:
                spans[position] = (start, start)
            continue
        length = _match_length(text, start, surface)
        if not length and pending:
            found = text.find(surface, start)
            if found >= 0:
                start, length = found, len(surface)
        if not length:
            pending.append(position)
            continue
        settle(_unspaced_end(text, cursor, start))
        spans[position] = (start, start + length)
        cursor = start + length
    settle(_unspaced_end(text, cursor, len(text)))
    return spans


def _unspaced_end(text: str, start: int, end: int) -> int:
    """``end`` moved back over the whitespace before it (not before ``start``)."""
    while end > start and text[end - 1].isspace():
        end -= 1
    return end
