"""``TextExplanation``: word scores, HTML and terminal renderings, aggregation to tokens, words,
sentences or regular-expression matches."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.explanation import Explanation, GroupedExplanation, in_notebook, padded_rows

from .batch import TextBatch
from .render import html_page, render_html, render_terminal
from .words import (
    TOKEN_SCORE_KINDS, SpanScores, pattern_regions, piece_scores, region_scores, sentence_regions, token_scores,
    word_scores,
)

INPUT_MULTIPLIED_METHODS = frozenset({
    "integrated_gradients", "integrated_pullbacks", "gradient_shap", "pullback_shap", "deeplift", "pb_deeplift",
})
"""Methods whose attributions are already (embedding − baseline) ⊙ (…): their token score is the sum over D."""

AGGREGATIONS = ("tokens", "words", "sentences")


def default_score(method: str) -> str:
    """The token score kind for ``method``: ``"sum"`` for input-multiplied attributions, else ``"signed"``."""
    return "sum" if method in INPUT_MULTIPLIED_METHODS else "signed"


def colour_allowed(stream: Any = None) -> bool:
    """ANSI colours only on a terminal and when ``NO_COLOR`` is unset or empty (https://no-color.org)."""
    stream = sys.stdout if stream is None else stream
    return not os.environ.get("NO_COLOR") and bool(getattr(stream, "isatty", lambda: False)())


@dataclasses.dataclass(repr=False)
class TextExplanation(Explanation):
    """Explanation of texts through their token embeddings (B, L, D); ``scores`` are words.

    batch: the tokenised texts; score: the token score kind (``"signed"`` ⟨attr, embedding⟩,
    ``"norm"`` ‖attr‖, ``"sum"`` Σ attr for input-multiplied methods).  A word's score is the sum
    of its sub-tokens' scores; special and padding tokens get none.  Texts cut to the model's
    maximum say so in ``item_extra`` (``truncated``, ``words_scored`` < ``words_total``).
    """

    batch: TextBatch | None = None
    score: str = "signed"

    modality: ClassVar[str] = "text"
    units: ClassVar[str] = "words"
    renderings: ClassVar[tuple[str, ...]] = (".html",)

    def __post_init__(self) -> None:
        if self.score not in TOKEN_SCORE_KINDS:
            raise SpmmInputError(f"unknown token score kind {self.score!r}; choose from {TOKEN_SCORE_KINDS}")

    def scored(self, kind: str) -> "TextExplanation":
        """A copy whose scores are token scores of ``kind`` (``"signed"``, ``"norm"`` or ``"sum"``)."""
        return dataclasses.replace(self, score=kind)

    def token_scores(self) -> Tensor:
        """(B, L) token scores of kind :attr:`score` (zero on the tokens held fixed: padding, special tokens)."""
        return token_scores(self.attributions, self.inputs, self.score)

    def _batch(self) -> TextBatch:
        if self.batch is None:
            raise SpmmInputError("this text explanation has no tokenised batch")
        return self.batch

    def _row_scores(self, index: int) -> Tensor:
        """(L,) token scores of text ``index``."""
        row = slice(index, index + 1)
        return token_scores(self.attributions[row], self.inputs[row], self.score)[0]

    def words(self, index: int) -> SpanScores:
        """The scored words of text ``index`` with their character spans."""
        batch = self._batch()
        return word_scores(batch.texts[index], self._row_scores(index), batch.word_ids[index], batch.offsets[index])

    def item_scores(self, index: int) -> Tensor:
        """(words,): the score of each scored word of text ``index``."""
        return torch.tensor(self.words(index).scores, dtype=torch.float64)

    def item_extra(self, index: int) -> dict[str, Any]:
        """Words, their character spans, the tokens (no padding), the score kind and truncation."""
        batch = self._batch()
        words = self.words(index)
        real = batch.attention_mask[index].bool().tolist()
        return {
            "words": words.units,
            "spans": [list(span) for span in words.spans],
            "tokens": [token for token, keep in zip(batch.tokens[index], real) if keep],
            "token_score": self.score,
            "truncated": batch.truncated[index],
            "words_scored": len(words.units),
            "words_total": batch.total_words[index],
        }

    def aggregate(self, by: str = "words", *, regex: str | None = None) -> GroupedExplanation:
        """Per text, the token scores summed over ``"tokens"`` (each on its own), ``"words"``,
        ``"sentences"`` or the matches of ``regex`` (then ``by`` is not given), as a
        :class:`~spmm.GroupedExplanation` (attributions (B, G), NaN past a text's last piece; the
        pieces' texts and character spans in ``group_names``/``group_spans``).  Pieces holding no
        scored token (cut off by truncation) are left out."""
        if regex is not None and by != "words":
            raise SpmmInputError("give either by=... or regex=..., not both")
        if regex is None and by not in AGGREGATIONS:
            raise SpmmInputError(f"texts aggregate by {', '.join(map(repr, AGGREGATIONS))} or regex=..., not {by!r}")
        batch = self._batch()
        result = []
        for i, text in enumerate(batch.texts):
            parts = (text, self._row_scores(i), batch.word_ids[i], batch.offsets[i])
            if regex is not None:
                result.append(region_scores(*parts, pattern_regions(text, regex)))
            elif by == "sentences":
                result.append(region_scores(*parts, sentence_regions(text)))
            elif by == "tokens":
                result.append(piece_scores(*parts, batch.tokens[i]))
            else:
                result.append(word_scores(*parts))
        return self.grouped(f"matches of {regex!r}" if regex is not None else by,
                            padded_rows([pieces.scores for pieces in result]),
                            names=[pieces.units for pieces in result], spans=[list(pieces.spans) for pieces in result])

    # -- renderings -------------------------------------------------------------
    def _heading(self, index: int) -> str:
        top = self.predictions[index][0] if self.predictions and self.predictions[index] else None
        predicted = f"predicted {top.label} ({top.probability:.1%}); " if top is not None else ""
        return f"{predicted}explained {self.target_label(index) or repr(self.target)!r} with {self.method}"

    def _note(self, index: int) -> str:
        batch = self._batch()
        if not batch.truncated[index]:
            return ""
        return (f"truncated to the model's maximum: {batch.scored_words(index)} of "
                f"{batch.total_words[index]} words scored")

    def html(self) -> str:
        """Every text as an HTML fragment with its heading, coloured words and legend."""
        return "\n".join(render_html(self.words(i), self._heading(i), self._note(i)) for i in range(len(self)))

    def terminal(self, colour: bool | None = None) -> str:
        """Every text with its heading and coloured words (ANSI only if ``colour``; default:
        :func:`colour_allowed`)."""
        colour = colour_allowed() if colour is None else colour
        lines = []
        for i in range(len(self)):
            lines.append(self._heading(i))
            lines.append("  " + render_terminal(self.words(i), colour))
            if self._note(i):
                lines.append(f"  ({self._note(i)})")
        return "\n".join(lines)

    def save_formats(self) -> dict[str, Any]:
        return {**super().save_formats(), ".html": self._save_html}

    def _save_html(self, path: Path) -> None:
        path.write_text(html_page([self.html()], f"{self.method} — {self.model_name or 'text model'}"), encoding="utf-8")

    def _show_inline(self) -> None:
        from IPython.display import HTML, display

        display(HTML(self.html()))

    def show(self) -> None:
        """HTML inline in a notebook; else the coloured texts on stdout (plain when ``NO_COLOR`` is set
        or stdout is not a terminal)."""
        if in_notebook():
            self._show_inline()
        else:
            print(self.terminal(), file=sys.stdout)
