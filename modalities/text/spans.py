"""Words of a text from its tokens' character offsets, the same for every tokenizer kind.

A *word* is a span of the input text.  The text is cut into pieces: runs of word characters
(letters, marks, digits, ``_``, and zero-width or control characters inside them, with inner
apostrophes: ``isn't``), runs of other visible characters (punctuation, symbols: ``!``,
``...``), and single letters of scripts written without spaces (CJK, kana, Thai…);
whitespace separates pieces.  Each scored token covers the pieces its offsets overlap
(its offsets trimmed of whitespace first: byte-level BPE and Metaspace tokens carry the space
before them), and pieces covered by one token form one word (a token ``▁it?`` makes ``it?`` one
word).  A token covering only whitespace (``Ġ`` of a double space, ``▁``, ``\\n``) belongs to the
next word (the last one at the end of the text).  So word pieces never depend on the
tokenizer's pre-tokenizer (WordPiece, byte-level BPE, Metaspace with or without ``split``,
Unigram, a normalizer-only tokenizer all give the same words when their tokens respect the
pieces), and every word's text is a substring of the input.
"""

from __future__ import annotations

import bisect
import unicodedata
from typing import Sequence

APOSTROPHES = frozenset("'’")
"""Characters that stay inside a word when letters stand on both sides (``isn't``, ``l’homme``)."""
UNSPACED_SCRIPTS = (
    (0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF), (0x20000, 0x2FA1F),
)
"""Code-point ranges of scripts written without spaces between words (Thai, Lao, Myanmar, Khmer,
kana, CJK ideographs): each of their characters is a piece of its own, so their words are what
the tokens join."""
SPACE, WORD, SYMBOL, UNSPACED = 0, 1, 2, 3


def character_class(character: str) -> int:
    """SPACE (whitespace), UNSPACED (see :data:`UNSPACED_SCRIPTS`), SYMBOL (punctuation and symbols,
    except ``_``) or WORD (everything else: letters, marks, digits, ``_``, zero-width and control
    characters)."""
    if character.isspace():
        return SPACE
    point = ord(character)
    if any(first <= point <= last for first, last in UNSPACED_SCRIPTS) and unicodedata.category(character)[0] == "L":
        return UNSPACED
    category = unicodedata.category(character)
    return SYMBOL if category[0] in "PS" and category != "Pc" else WORD


def is_invisible(character: str) -> bool:
    """Whitespace, zero-width (format) or control characters."""
    return character.isspace() or unicodedata.category(character) in ("Cc", "Cf")


def word_pieces(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of ``text``'s pieces: runs of one character class (see the module
    docstring), an apostrophe between two word characters counting as a word character."""
    classes = [character_class(c) for c in text]
    for i, character in enumerate(text):
        if character in APOSTROPHES and 0 < i < len(text) - 1 and classes[i - 1] == WORD == classes[i + 1]:
            classes[i] = WORD
    pieces: list[tuple[int, int]] = []
    for i, kind in enumerate(classes):
        if kind == SPACE:
            continue
        if pieces and pieces[-1][1] == i and classes[i - 1] == kind != UNSPACED:
            pieces[-1] = (pieces[-1][0], i + 1)
        else:
            pieces.append((i, i + 1))
    return pieces


def trimmed(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """``span`` without the whitespace at its ends ((end, end) when it holds only whitespace)."""
    start, end = max(0, span[0]), min(len(text), span[1])
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else (end, end)


def token_words(
    text: str, offsets: Sequence[tuple[int, int]], scored: Sequence[bool]
) -> tuple[list[int | None], list[tuple[int, int]]]:
    """Word index of each token (None where ``scored`` is False: special and padding tokens) and
    each token's offsets trimmed of whitespace (a whitespace-only token gets the empty span at its
    word's start).  ``offsets``: (start, end) character spans of the tokens in ``text``."""
    pieces = word_pieces(text)
    starts = [s for s, _ in pieces]
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    spans = [trimmed(text, tuple(span)) for span in offsets]
    covered: list[int | None] = []
    for keep, (start, end) in zip(scored, spans):
        if not keep or start == end:
            covered.append(None)
            continue
        first = max(bisect.bisect_right(starts, start) - 1, 0)
        last = max(bisect.bisect_left(starts, end) - 1, first)
        for piece in range(first + 1, last + 1):
            parent[root(piece)] = root(first)
        covered.append(first)
    groups = sorted({root(p) for p in covered if p is not None}, key=lambda r: pieces[r][0])
    index = {group: i for i, group in enumerate(groups)}
    words = [None if p is None else index[root(p)] for p in covered]
    # whitespace-only (or empty) scored tokens: the next word, else the last one
    following: int | None = None
    for position in range(len(words) - 1, -1, -1):
        if words[position] is not None:
            following = words[position]
        elif scored[position]:
            words[position] = following if following is not None else (len(groups) - 1 if groups else None)
    word_start: dict[int, int] = {}
    for word, (start, end) in zip(words, spans):
        if word is not None and start < end:
            word_start[word] = min(word_start.get(word, start), start)
    spans = [(word_start[w], word_start[w]) if w is not None and s == e else (s, e)
             for w, (s, e) in zip(words, spans)]
    return words, spans
