"""``ImageGenerationExplanation``: a vision-language model's continuation explained token by token,
on the image's pixels and on the prompt and earlier tokens.

It is the text :class:`~spmm.modalities.text.generation.GenerationExplanation` (the tokens × tokens
``matrix``, rows = continuation tokens, columns = prompt and continuation tokens, the image's
placeholder tokens left out) with one map per row over the image: ``image_maps[r]`` (H, W) is row
r's attribution on the pixels in [−1, 1], summed over the colour channels.  ``save("x.html")``
shows the continuation as a strip of tokens, each with its heatmap over the image (one signed
colour scale for every token), above the matrix.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from spmm.modalities.text.generation import GenerationExplanation, _visible
from spmm.targets import Contrast
from spmm.modalities.text.render import STRIP_STYLE, heat_png_base64, html_page, token_figure_html, token_strip_html

from . import to_display

THUMBNAIL_SIDE = 160
"""Width in CSS pixels of each token's heatmap in the HTML strip (its height keeps the image's aspect ratio)."""


@dataclasses.dataclass(repr=False)
class ImageGenerationExplanation(GenerationExplanation):
    """A continuation explained on an image and its prompt.

    pixel_maps: (R, H, W) each row's attribution on the image, summed over colour channels.
    image: (3, H, W) the explained image in [−1, 1] (what the model sees, through its processor).
    The other fields are those of :class:`GenerationExplanation` (the matrix's columns are the
    prompt's text tokens and the continuation; the image's placeholder tokens are not columns).
    """

    pixel_maps: Tensor | None = None
    image: Tensor | None = None

    modality: ClassVar[str] = "vision-language"
    units: ClassVar[str] = "tokens x tokens, tokens x pixels"

    @property
    def image_maps(self) -> Tensor:
        """(R, H, W) each explained token's map on the image pixels (channels summed)."""
        return self.pixel_maps

    def item_extra(self, index: int) -> dict[str, Any]:
        """The generation fields plus ``image_maps`` (R × H × W, rounded) and the image's size."""
        maps = self.pixel_maps.detach().cpu().double()
        return {**super().item_extra(index), "image_shape": list(maps.shape[1:]),
                "image_maps": np.round(maps.numpy(), 8).tolist()}

    def score_name(self) -> str:
        """What each row explains: a Contrast row is a logit difference."""
        return "logit difference" if isinstance(self.target, Contrast) else super().score_name()

    def _heading(self) -> str:
        return (f"{self.method} on {self.model_name or 'vision-language model'}: each continuation token "
                "explained on the image and on the tokens before it")

    def map_scale(self) -> float:
        """The one colour scale of every token's map: the largest |map value| of all tokens (1 when all are 0)."""
        return float(self.pixel_maps.detach().abs().max()) or 1.0

    def token_html(self, row: int, side: int = THUMBNAIL_SIDE) -> str:
        """Row ``row``'s token over its heatmap on the image (signed colours on :meth:`map_scale`),
        ``side`` CSS pixels wide (the image's aspect ratio), in the strip's style; hover it for the
        token's score."""
        return STRIP_STYLE + self._figure(row, side)

    def _figure(self, row: int, side: int) -> str:
        maps = self.pixel_maps.detach().cpu().double()
        own = f"{float(self.row_scores[row]):+.3g}" if self.row_scores is not None else ""
        picture = heat_png_base64(to_display(self.image).mean(axis=2), maps[row].numpy(), self.map_scale())
        return token_figure_html(_visible(self.row_tokens[row]), picture, f"{self.row_tokens[row]} ({self.score_name()} {own})",
                                 side, round(side * maps.shape[-2] / maps.shape[-1]))

    def strip_html(self) -> str:
        """The continuation as a strip of tokens, each over its heatmap on the image (signed colours,
        one scale: :meth:`map_scale`; hover a map for its token's score)."""
        rows = range(len(self.row_tokens))
        return token_strip_html([self._figure(r, THUMBNAIL_SIDE) for r in rows], self._heading(), self.map_scale())

    def html(self) -> str:
        """The token strip over the image, then the tokens × tokens matrix."""
        return self.strip_html() + super().html()

    def _save_html(self, path: Path) -> None:
        path.write_text(html_page([self.html()], f"{self.method} — {self.model_name or 'vision-language model'}"),
                        encoding="utf-8")

    def summary(self) -> str:
        """The generation summary plus, per token, the pixel where its image map is largest."""
        lines = [super().summary()]
        for r, token in enumerate(self.row_tokens):
            flat = int(self.pixel_maps[r].abs().argmax())
            y, x = divmod(flat, self.pixel_maps.shape[-1])
            lines.append(f"  {token!r}: strongest pixel (row {y}, column {x}) {float(self.pixel_maps[r, y, x]):+.3g}")
        return "\n".join(lines)

