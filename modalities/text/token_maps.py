"""``TokenMapsExplanation``: a generation explanation whose rows (generated or transcribed tokens)
also have one map each on another input (an image, a spectrogram), shown as a strip of tokens, each
over its map, all on one signed colour scale.  The vision-language and speech-to-text explanations
say what their maps and background look like; this class draws them, once per explanation."""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import numpy as np
from torch import Tensor

from .generation import GenerationExplanation, _visible
from .render import STRIP_STYLE, heat_png_base64, token_figure_html, token_strip_html


@dataclasses.dataclass(repr=False)
class TokenMapsExplanation(GenerationExplanation):
    """Subclasses give :meth:`shown_maps`, :meth:`background`, :meth:`figure_height` and ``strip_width``."""

    strip_width: ClassVar[int] = 160
    """Width in CSS pixels of each token's picture in the strip."""

    def shown_maps(self) -> Tensor:
        """(R, H, W) each row's map as drawn (rows of pixels top down)."""
        raise NotImplementedError

    def background(self) -> np.ndarray:
        """(H, W) in [0, 1]: the grey picture under the maps."""
        raise NotImplementedError

    def figure_height(self, width: int) -> int:
        """Height in CSS pixels of a token's picture ``width`` pixels wide."""
        raise NotImplementedError

    def map_scale(self) -> float:
        """The one colour scale of every token's map: the largest |map value| of all tokens (1 when all are 0)."""
        return float(self.shown_maps().detach().abs().max()) or 1.0

    @functools.cached_property
    def _pictures(self) -> list[str]:
        """Each row's map over the background as a base64 PNG, drawn once for the strip, the enlarged
        tokens and the HTML file."""
        maps, scale, grey = self.shown_maps().detach().cpu().double(), self.map_scale(), self.background()
        return [heat_png_base64(grey, maps[r].numpy(), scale) for r in range(maps.shape[0])]

    def _figure(self, row: int, width: int) -> str:
        own = f"{float(self.row_scores[row]):+.3g}" if self.row_scores is not None else ""
        token = self.row_tokens[row]
        return token_figure_html(_visible(token), self._pictures[row], f"{token} ({self.score_name()} {own})", width,
                                 self.figure_height(width))

    def token_html(self, row: int, width: int | None = None) -> str:
        """Row ``row``'s token over its map (signed colours on :meth:`map_scale`), ``width`` CSS pixels
        wide (default ``strip_width``), in the strip's style; hover it for the token's score."""
        return STRIP_STYLE + self._figure(row, width or self.strip_width)

    def strip_html(self) -> str:
        """The rows as a strip of tokens, each over its map (hover a map for its token's score)."""
        figures = [self._figure(r, self.strip_width) for r in range(len(self.row_tokens))]
        return token_strip_html(figures, self._heading(), self.map_scale())
