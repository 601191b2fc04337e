"""``GenerationExplanation``: a tokens × tokens matrix explaining each token of a continuation.

Rows are the explained tokens (generated or given continuation tokens, or one row for a
sequence log-probability); columns are the context tokens (prompt or source, then the
continuation: for sequence-to-sequence models the decoder's start token and the target
tokens).  ``scores[r, c]`` is the token score (SPEC §5: signed ⟨attribution, embedding⟩, or Σ
attribution for input-multiplied methods) of column ``c`` for row ``r``; a row is undefined
(NaN; ``null`` in JSON) on the columns from its own token on, which it cannot depend on.
"""

from __future__ import annotations

import dataclasses
import html
import math
import sys
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.explanation import Explanation, in_notebook

from .render import html_colour, html_page, legend_html

GENERATION_AGGREGATIONS = ("tokens", "words")


@dataclasses.dataclass(repr=False)
class GenerationExplanation(Explanation):
    """One prompt's continuation explained token by token.

    attributions: (1, R, C) token scores, NaN on the undefined cells (the per-dimension
        attributions (R, C, D) are reduced to token scores to keep memory at R × C).
    inputs: (1, C, D) the context's token embeddings.
    scores: (1,) the sum of the row scores (the sequence log-probability for ``"logprob"`` rows).
    row_scores: (R,) the explained score of each row (logit or log-probability of its token).
    context_tokens: (C,) the column tokens as text; row_tokens: (R,) the row tokens as text.
    row_columns: (R,) the column of each row's own token (the row may use the columns before
        it); ``len(context_tokens)`` for a row over the whole context.
    context_words: (C,) the word index of each column (None for special tokens); the same
        numbering covers the prompt (or source) and the continuation.
    word_texts: the text of each word index (its tokens decoded together).
    prompt_columns: how many leading columns are the prompt (or source).
    prompt, continuation: the prompt text and the explained continuation as text.
    """

    row_scores: Tensor | None = None
    context_tokens: list[str] = dataclasses.field(default_factory=list)
    row_tokens: list[str] = dataclasses.field(default_factory=list)
    row_columns: list[int] = dataclasses.field(default_factory=list)
    context_words: list[int | None] = dataclasses.field(default_factory=list)
    word_texts: list[str] = dataclasses.field(default_factory=list)
    prompt_columns: int = 0
    prompt: str = ""
    continuation: str = ""
    score: str = "signed"

    modality: ClassVar[str] = "text"
    units: ClassVar[str] = "tokens x tokens"
    renderings: ClassVar[tuple[str, ...]] = (".html",)

    @property
    def matrix(self) -> Tensor:
        """(R, C) token scores, NaN where a row cannot depend on a column."""
        return self.attributions[0]

    def item_scores(self, index: int) -> Tensor:
        """(R, C): the matrix of the one prompt."""
        self._check_index(index)
        return self.matrix

    def _check_index(self, index: int) -> None:
        if index != 0:
            raise SpmmInputError(f"a generation explanation holds one prompt; there is no item {index}")

    def item_extra(self, index: int) -> dict[str, Any]:
        """Row and column tokens, each row's own column, the column words, the prompt length, texts."""
        self._check_index(index)
        return {
            "row_tokens": self.row_tokens,
            "row_scores": [round(float(s), 6) for s in self.row_scores.tolist()] if self.row_scores is not None else [],
            "row_columns": self.row_columns,
            "column_tokens": self.context_tokens,
            "column_words": self.context_words,
            "words": self.word_texts,
            "prompt_columns": self.prompt_columns,
            "prompt": self.prompt,
            "continuation": self.continuation,
            "token_score": self.score,
        }

    def target_label(self, index: int) -> str | None:
        return self.continuation

    # -- aggregation --------------------------------------------------------------
    def aggregate(self, by: str = "words") -> "GenerationExplanation":
        """The matrix with tokens merged into words on both axes (``"words"``): a cell sums the
        defined cells of its row tokens × column tokens (a row word explains the sum of its tokens'
        scores); special tokens are left out.  ``"tokens"``: this explanation."""
        if by not in GENERATION_AGGREGATIONS:
            raise SpmmInputError(f"a generation explanation aggregates by {', '.join(map(repr, GENERATION_AGGREGATIONS))}, not {by!r}")
        if by == "tokens":
            return self
        words = sorted({w for w in self.context_words if w is not None})
        column_groups = [[c for c, w in enumerate(self.context_words) if w == word] for word in words]
        row_word = [self.context_words[c] if c < len(self.context_words) else None for c in self.row_columns]
        row_words = [w for w in dict.fromkeys(row_word) if w is not None]
        row_groups = [[r for r, w in enumerate(row_word) if w == word] for word in row_words]
        matrix = self.matrix.double()
        cells = torch.full((len(row_groups), len(column_groups)), math.nan, dtype=torch.float64)
        for i, rows in enumerate(row_groups):
            for j, columns in enumerate(column_groups):
                block = matrix[rows][:, columns]
                if not torch.isnan(block).all():
                    cells[i, j] = block.nansum()
        word_text = {word: self.word_texts[word] for word in words}
        column_of_word = {word: j for j, word in enumerate(words)}
        row_scores = self.row_scores.double() if self.row_scores is not None else torch.zeros(len(row_word))
        return dataclasses.replace(
            self,
            attributions=cells.unsqueeze(0).to(self.attributions.dtype),
            row_scores=torch.stack([row_scores[rows].sum() for rows in row_groups]) if row_groups else torch.zeros(0),
            context_tokens=[word_text[w] for w in words],
            row_tokens=[word_text[w] for w in row_words],
            row_columns=[column_of_word[w] for w in row_words],
            context_words=list(range(len(words))),
            word_texts=[word_text[w] for w in words],
            prompt_columns=len({w for w in self.context_words[: self.prompt_columns] if w is not None}),
        )

    # -- renderings ---------------------------------------------------------------
    def _heading(self) -> str:
        kind = "sequence log-probability" if len(self.row_tokens) == 1 and self.row_columns == [len(self.context_tokens)] \
            else "each continuation token"
        return f"{self.method} on {self.model_name or 'language model'}: {kind} explained by the tokens before it"

    def html(self) -> str:
        """The matrix as an HTML heat table: rows = explained tokens, columns = context tokens
        (the prompt's columns shaded), signed colours on one scale (the largest |score|)."""
        matrix = self.matrix.double()
        defined = matrix[~torch.isnan(matrix)]
        scale = float(defined.abs().max()) if defined.numel() else 1.0
        scale = scale or 1.0
        head = "".join(
            f'<th class="{"spmm-prompt" if c < self.prompt_columns else "spmm-gen"}">{_visible(token)}</th>'
            for c, token in enumerate(self.context_tokens)
        )
        rows = []
        for r, token in enumerate(self.row_tokens):
            cells = []
            for c in range(len(self.context_tokens)):
                value = float(matrix[r, c])
                if math.isnan(value):
                    cells.append('<td class="spmm-undefined"></td>')
                else:
                    cells.append(f'<td style="background:{html_colour(value, scale)}" title="{value:+.4g}">{value:+.2f}</td>')
            own = f'{float(self.row_scores[r]):+.3g}' if self.row_scores is not None else ""
            rows.append(f'<tr><th>{_visible(token)}</th>{"".join(cells)}<td class="spmm-rowscore">{own}</td></tr>')
        style = (
            "<style>.spmm-matrix{border-collapse:collapse;font-family:monospace;font-size:12px}"
            ".spmm-matrix td,.spmm-matrix th{border:1px solid #ddd;padding:2px 4px;text-align:center}"
            ".spmm-prompt{background:#f3f3f3}.spmm-undefined{background:#fafafa}"
            ".spmm-rowscore{color:#555}</style>"
        )
        return (
            f'<div class="spmm-generation">{style}<h3>{html.escape(self._heading())}</h3>'
            f"<p>prompt: <b>{html.escape(self.prompt)}</b><br>continuation: <b>{html.escape(self.continuation)}</b></p>"
            f'<table class="spmm-matrix"><tr><th>explained ↓ / context →</th>{head}<th>{self.score_name()}</th></tr>'
            f'{"".join(rows)}</table>{legend_html(scale)}</div>'
        )

    def score_name(self) -> str:
        """What each row explains, from the target."""
        return "log p" if getattr(self.target, "score", "logprob") == "logprob" else "logit"

    def save_formats(self) -> dict[str, Any]:
        return {**super().save_formats(), ".html": self._save_html}

    def _save_html(self, path: Path) -> None:
        path.write_text(html_page([self.html()], f"{self.method} — {self.model_name or 'language model'}"), encoding="utf-8")

    def summary(self) -> str:
        """The prompt, the continuation and, per row, the context token with the largest score."""
        lines = [f"{self.method} on {self.model_name or 'language model'} (generation)",
                 f"  prompt: {self.prompt!r}", f"  continuation: {self.continuation!r}"]
        matrix = self.matrix.double()
        for r, token in enumerate(self.row_tokens):
            row = torch.nan_to_num(matrix[r], nan=-math.inf)
            best = int(row.argmax()) if torch.isfinite(row).any() else None
            strongest = f"strongest context token {self.context_tokens[best]!r} ({float(matrix[r, best]):+.3g})" if best is not None else ""
            lines.append(f"  {token!r}: {strongest}")
        return "\n".join(lines)

    def _show_inline(self) -> None:
        from IPython.display import HTML, display

        display(HTML(self.html()))

    def show(self) -> None:
        """HTML inline in a notebook; else :meth:`summary` on stdout."""
        if in_notebook():
            self._show_inline()
        else:
            print(self.summary(), file=sys.stdout)


def _visible(token: str) -> str:
    """A token as HTML with its leading/trailing spaces and line breaks visible."""
    return html.escape(token.replace(" ", "·").replace("\n", "⏎")) or "∅"


def undefined_cells(rows: int, columns: int, row_columns: Sequence[int]) -> Tensor:
    """(rows, columns) bool: True where row ``r`` cannot depend on column ``c`` (c ≥ row_columns[r])."""
    return torch.arange(columns).unsqueeze(0) >= torch.tensor(list(row_columns)).view(rows, 1)
