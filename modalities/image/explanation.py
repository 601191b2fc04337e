"""``ImageExplanation``: pixel maps, PNG panels and patch/superpixel aggregation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.explanation import Explanation, GroupedExplanation


@dataclasses.dataclass(repr=False)
class ImageExplanation(Explanation):
    """Explanation of images (B, C, H, W) in [−1, 1]; ``scores`` are pixels: attributions summed over
    the colour channels, (H, W) per image."""

    modality: ClassVar[str] = "image"
    units: ClassVar[str] = "pixels"
    renderings: ClassVar[tuple[str, ...]] = (".png",)

    def item_scores(self, index: int) -> Tensor:
        """(H, W): the signed attribution of each pixel (channels summed)."""
        return self.attributions[index].sum(0)

    def pixel_scores(self) -> Tensor:
        """(B, H, W) signed pixel scores."""
        return self.attributions.sum(1)

    def save_formats(self) -> dict[str, Any]:
        return {**super().save_formats(), ".png": self._save_png}

    def _save_png(self, path: Path) -> None:
        from spmm.modalities.image import save_comparison_grid, save_explanation_panel

        if len(self) == 1:
            save_explanation_panel(self.inputs[0], self.attributions[0], path, title=self._title(0))
        else:
            rows = [f"{self.source(i)}: {self.target_label(i) or ''}" for i in range(len(self))]
            save_comparison_grid(self.inputs, {self.method: self.attributions}, path, row_titles=rows,
                                 title=f"{self.method} — {self.model_name}")

    def _title(self, index: int) -> str:
        target = self.target_label(index)
        return f"{Path(self.source(index)).name}: {self.method} for '{target}' ({self.model_name})"

    def aggregate(self, by: str = "patches", size: int = 16, segments: int = 50) -> GroupedExplanation:
        """Pixel scores summed per region, as the attributions of a :class:`~spmm.GroupedExplanation`:
        ``"patches"`` of ``size`` px -> (B, H/size, W/size); ``"superpixels"`` (SLIC, ``segments``) ->
        (B, H, W) with each pixel holding its region's sum."""
        from spmm.modalities.image import superpixel_groups

        pixels = self.pixel_scores()
        batch, height, width = pixels.shape
        if by == "patches":
            if height % size or width % size:
                raise SpmmInputError(f"patch size {size} does not tile {height}×{width} images")
            return self.grouped("patches", pixels.reshape(batch, height // size, size, width // size, size).sum((2, 4)))
        if by == "superpixels":
            out = torch.empty_like(pixels)
            for i in range(batch):
                labels = superpixel_groups(self.inputs[i], segments).reshape(-1)
                sums = torch.zeros(int(labels.max()) + 1, dtype=pixels.dtype).index_add_(0, labels, pixels[i].reshape(-1))
                out[i] = sums[labels].reshape(height, width)
            return self.grouped("superpixels", out)
        raise SpmmInputError(f"images aggregate by 'patches' or 'superpixels', not {by!r}")

    def _show_inline(self) -> None:
        import tempfile

        from IPython.display import Image, display

        with tempfile.TemporaryDirectory() as folder:
            path = self.save(Path(folder) / "explanation.png")
            display(Image(filename=str(path)))
