"""Readers for the real labelled text in ``../shared/data/text`` (see its README)."""

from __future__ import annotations

import csv
from pathlib import Path

SST2_LABELS = ["negative", "positive"]
AG_NEWS_LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def read_sst2(path: str | Path) -> tuple[list[str], list[int]]:
    """(sentences, labels) of an ``stsa.binary.*`` file: one ``label text`` per line, 0 = negative."""
    texts, labels = [], []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            label, text = line.split(" ", 1)
            texts.append(text.strip())
            labels.append(int(label))
    return texts, labels


def read_ag_news(path: str | Path) -> tuple[list[str], list[int]]:
    """(``title. description`` texts, labels 0..3) of AG News ``test.csv`` (classes 1..4 in the file)."""
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for cls, title, description in csv.reader(handle):
            text = f"{title.strip()}. {description.strip()}".replace("\\\\", " ").replace("\\", " ")
            texts.append(" ".join(text.split()))
            labels.append(int(cls) - 1)
    return texts, labels
