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

from spmm.targets import Contrast
from spmm.modalities.text.render import html_page
from spmm.modalities.text.token_maps import TokenMapsExplanation

from . import to_display



@dataclasses.dataclass(repr=False)
class ImageGenerationExplanation(TokenMapsExplanation):
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

    def shown_maps(self) -> Tensor:
        return self.pixel_maps

    def background(self) -> np.ndarray:
        return to_display(self.image).mean(axis=2)

    def figure_height(self, width: int) -> int:
        """The image's aspect ratio."""
        return round(width * self.pixel_maps.shape[-2] / self.pixel_maps.shape[-1])

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

