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

import base64
import dataclasses
import html
import io
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from torch import Tensor

from spmm.modalities.text.generation import GenerationExplanation, _visible
from spmm.targets import Contrast
from spmm.modalities.text.render import html_page, legend_html, score_rgb

from . import to_display

THUMBNAIL_SIDE = 160
"""Side in CSS pixels of each token's heatmap in the HTML strip."""
HEAT_WEIGHT = 0.7
"""How much a full-scale score colours a pixel over the greyed image."""
TOKEN_STYLE = ("<style>.spmm-vlm-strip{display:flex;flex-wrap:wrap;gap:6px}.spmm-vlm-token{margin:0;"
               "text-align:center;font-family:monospace}.spmm-vlm-token img{image-rendering:pixelated;"
               "border:1px solid #ccc}</style>")
"""The CSS of :meth:`ImageGenerationExplanation.token_html` figures."""


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
        ``side`` CSS pixels wide; hover it for the token's score."""
        token = self.row_tokens[row]
        own = f"{float(self.row_scores[row]):+.3g}" if self.row_scores is not None else ""
        heat = self.pixel_maps[row].detach().cpu().double()
        return (f'<figure class="spmm-vlm-token" title="{html.escape(token)} ({self.score_name()} {own})">'
                f'<img width="{side}" height="{side}" src="data:image/png;base64,'
                f'{_png_base64(self.image, heat, self.map_scale())}"><figcaption>{_visible(token)}</figcaption></figure>')

    def strip_html(self) -> str:
        """The continuation as a strip of tokens, each over its heatmap on the image (:meth:`token_html`)."""
        cells = [self.token_html(r) for r in range(len(self.row_tokens))]
        return (f'<div class="spmm-vlm">{TOKEN_STYLE}<h3>{html.escape(self._heading())}</h3>'
                f'<div class="spmm-vlm-strip">{"".join(cells)}</div>{legend_html(self.map_scale())}</div>')

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


def _png_base64(image: Tensor, heat: Tensor, scale: float) -> str:
    """A PNG (base64) of ``heat`` (H, W) in signed colours over the greyed ``image`` (3, H, W)."""
    grey = to_display(image).mean(axis=2, keepdims=True).repeat(3, axis=2) * 255.0
    values = heat.numpy()
    colours = np.array([[score_rgb(float(v), scale) for v in row] for row in values], dtype=np.float64)
    weight = HEAT_WEIGHT * np.clip(np.abs(values) / scale, 0, 1)[..., None]
    blended = ((1 - weight) * grey + weight * colours).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blended).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
