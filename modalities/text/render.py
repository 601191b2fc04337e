"""Texts coloured by their scores: HTML fragments and pages with a legend, terminal text.

Red is positive, blue negative, white zero; the strength is |score| over the text's
largest |score|.  Each word's text is black or white, whichever contrasts more with its
background (WCAG 2 relative luminance).
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np

from .words import SpanScores

RESET = "\x1b[0m"


def _scale(scores: Sequence[float]) -> float:
    return max((abs(s) for s in scores), default=0.0) or 1.0


def score_rgb(score: float, scale: float) -> tuple[int, int, int]:
    """Diverging colour of ``score``: (255, f, f) for positive, (f, f, 255) for negative, f = 255·(1 − |score|/scale)."""
    fade = round(255 * (1 - min(abs(score) / scale, 1.0)))
    return (255, fade, fade) if score >= 0 else (fade, fade, 255)


def html_colour(score: float, scale: float) -> str:
    """CSS ``rgb(...)`` of :func:`score_rgb`."""
    return "rgb({},{},{})".format(*score_rgb(score, scale))


def relative_luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0–255 channels): 0 for black, 1 for white."""
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_rgb(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever has the higher WCAG contrast ratio (L1 + 0.05) / (L2 + 0.05) against
    ``background``; black on a tie."""
    luminance = relative_luminance(background)
    on_black = (luminance + 0.05) / 0.05
    on_white = 1.05 / (luminance + 0.05)
    return (0, 0, 0) if on_black >= on_white else (255, 255, 255)


def _span_style(score: float, scale: float) -> str:
    background = score_rgb(score, scale)
    return "background:rgb({},{},{});color:rgb({},{},{})".format(*background, *text_rgb(background))


def _pieces(scored: SpanScores) -> list[tuple[str, float | None]]:
    """The whole text as (piece, score) in order; the text between scored spans has score None."""
    pieces: list[tuple[str, float | None]] = []
    cursor = 0
    for score, (start, end) in zip(scored.scores, scored.spans):
        pieces.append((scored.text[cursor:start], None))
        pieces.append((scored.text[start:end], score))
        cursor = end
    pieces.append((scored.text[cursor:], None))
    return [(text, score) for text, score in pieces if text]


def render_html(scored: SpanScores, title: str = "", note: str = "") -> str:
    """One text as an HTML fragment: each scored piece coloured, its score shown on hover, then a
    legend of the colour scale (and ``note``, e.g. that the text was truncated)."""
    scale = _scale(scored.scores)
    parts = [
        html.escape(text) if score is None
        else f'<span style="{_span_style(score, scale)}" title="{score:+.4g}">{html.escape(text)}</span>'
        for text, score in _pieces(scored)
    ]
    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
    remark = f'<p class="spmm-note"><em>{html.escape(note)}</em></p>' if note else ""
    return (
        f'<div class="spmm-text">{heading}<p style="line-height:1.8">{"".join(parts)}</p>{remark}'
        f"{legend_html(scale)}</div>"
    )


def legend_html(scale: float) -> str:
    """The colour scale from −``scale`` (blue) through 0 (white) to +``scale`` (red)."""
    low, high = html_colour(-scale, scale), html_colour(scale, scale)
    return (
        '<p class="spmm-legend" style="font-size:small">'
        f'<span style="{_span_style(-scale, scale)}">&nbsp;{-scale:+.3g}&nbsp;</span>'
        f'<span style="display:inline-block;width:10em;background:linear-gradient(to right,{low},white,{high})">'
        "&nbsp;</span>"
        f'<span style="{_span_style(scale, scale)}">&nbsp;{scale:+.3g}&nbsp;</span>'
        " relevance for the explained class (red: for, blue: against)</p>"
    )


def html_page(fragments: Sequence[str], title: str = "spmm text explanations") -> str:
    """A standalone HTML page holding ``fragments``."""
    body = "\n".join(fragments)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f'<body style="font-family:sans-serif;max-width:60em">\n{body}\n</body></html>\n'
    )


def render_terminal(scored: SpanScores, colour: bool = True) -> str:
    """The text with 24-bit ANSI background colours (red positive, blue negative); without ``colour``,
    each scored piece is followed by its score in brackets and no escape code is written."""
    scale = _scale(scored.scores)
    parts = []
    for text, score in _pieces(scored):
        if score is None:
            parts.append(text)
        elif colour:
            background = score_rgb(score, scale)
            r, g, b = background
            fr, fg, fb = text_rgb(background)
            parts.append(f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;{fr};{fg};{fb}m{text}{RESET}")
        else:
            parts.append(f"{text}[{score:+.3g}]")
    return "".join(parts)


HEAT_WEIGHT = 0.7
"""How much a full-scale score colours a pixel of a heat picture over its grey background."""


def heat_png_base64(grey: np.ndarray, heat: np.ndarray, scale: float) -> str:
    """A PNG (base64) of ``heat`` (H, W) in the signed colours of :func:`score_rgb` over ``grey``
    (H, W) in [0, 1]: a pixel is coloured by ``HEAT_WEIGHT``·min(|heat|/scale, 1)."""
    import base64
    import io

    from PIL import Image

    values = np.asarray(heat, dtype=np.float64)
    fade = np.round(255 * (1 - np.minimum(np.abs(values) / scale, 1.0)))
    full = np.full_like(fade, 255.0)
    colours = np.where((values >= 0)[..., None], np.stack([full, fade, fade], -1), np.stack([fade, fade, full], -1))
    weight = HEAT_WEIGHT * np.clip(np.abs(values) / scale, 0, 1)[..., None]
    background = np.repeat(np.asarray(grey, dtype=np.float64)[..., None] * 255.0, 3, axis=2)
    blended = ((1 - weight) * background + weight * colours).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blended).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


STRIP_STYLE = ("<style>.spmm-strip{display:flex;flex-wrap:wrap;gap:6px}.spmm-strip-token{margin:0;"
               "text-align:center;font-family:monospace}.spmm-strip-token img{image-rendering:pixelated;"
               "border:1px solid #ccc}</style>")
"""The CSS of :func:`token_figure_html` figures."""


def token_figure_html(token: str, picture: str, title: str, width: int, height: int) -> str:
    """One generated token (HTML, already escaped) under its picture (a base64 PNG of
    :func:`heat_png_base64`, shown ``width`` × ``height`` CSS pixels, ``title`` on hover)."""
    return (f'<figure class="spmm-strip-token" title="{html.escape(title)}"><img width="{width}" height="{height}" '
            f'src="data:image/png;base64,{picture}"><figcaption>{token}</figcaption></figure>')


def token_strip_html(figures: Sequence[str], heading: str, scale: float) -> str:
    """Generated tokens as a strip of :func:`token_figure_html` figures, with the legend of their one
    colour ``scale``."""
    return (f'<div class="spmm-token-strip">{STRIP_STYLE}<h3>{html.escape(heading)}</h3>'
            f'<div class="spmm-strip">{"".join(figures)}</div>{legend_html(scale)}</div>')
