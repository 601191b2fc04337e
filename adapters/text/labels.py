"""Bounds on the label texts a zero-shot classifier embeds (``minilm-zero-shot``, dual encoders):
every label is encoded once per load and once per call that adds one, so their number and length
bound the cost of a request (the page takes labels from anyone who reaches it)."""

from __future__ import annotations

from typing import Iterable

from spmm.errors import SpmmInputError

MAX_LABELS = 1000
"""Most labels of one zero-shot classifier (ImageNet's 1000 classes fit)."""
MAX_LABEL_CHARACTERS = 1000
"""Longest label or label description in characters (the text encoders read at most a few
hundred tokens of it anyway: MiniLM 256, CLIP 77)."""


def check_label_texts(texts: Iterable[object]) -> None:
    """One-line refusal of more than :data:`MAX_LABELS` texts or one longer than
    :data:`MAX_LABEL_CHARACTERS` characters."""
    texts = list(texts)
    if len(texts) > MAX_LABELS:
        raise SpmmInputError(f"{len(texts)} zero-shot labels given; at most {MAX_LABELS} are embedded (MAX_LABELS)")
    for text in texts:
        if len(str(text)) > MAX_LABEL_CHARACTERS:
            raise SpmmInputError(
                f"zero-shot label {str(text)[:40]!r}… has {len(str(text))} characters; at most {MAX_LABEL_CHARACTERS} "
                "(MAX_LABEL_CHARACTERS)"
            )
