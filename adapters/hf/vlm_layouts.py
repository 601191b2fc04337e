"""How each vision-language family's ``pixel_values`` relate to the image: the explained pixels
in [−1, 1], the model's ``pixel_values`` made from them (differentiably), and the maps on the image.

A layout turns the image processor's output for one image into the explained pixels (1, *S) and
where they lie on the image (:meth:`prepare`, the processor's colour map undone, so they equal the
processor's output to float precision), makes the model's ``pixel_values`` from rows of them (:meth:`pixel_values`, the colour
map redone), names the other image inputs the model takes (``image_keys``), and puts attributions
on the explained pixels (R, *S) back on the image (:meth:`on_image`, channels summed: (R, H, W)),
with the image shown under them (:meth:`display`, (3, H, W)).

- :class:`WholeImage` (LLaVA, PaliGemma): ``pixel_values`` (1, 3, H, W) is the image.
- :class:`TiledImage` (LLaVA-NeXT "anyres"): ``pixel_values`` (1, 1 + T, 3, h, w) is the whole
  image squashed to h × w, then T tiles of the image resized (aspect kept) and padded onto the
  best grid of ``image_grid_pinpoints``.  The explained pixels are these views; the maps are on the
  image at the tiles' resolution (the padding cut off): the tiles' maps in place plus the whole
  view's map spread over the image (bilinear, scaled by the ratio of the areas, so its sum stays).
- :class:`SplitImage` (Idefics3, SmolVLM): tiles first, the whole view last, each padded at its
  bottom and right (``pixel_attention_mask``); the maps as LLaVA-NeXT's.
- :class:`PatchGrid` (Qwen2-VL, Qwen2.5-VL): ``pixel_values`` (N, 3·T·p·p) are the patches of the
  image resized to a multiple of the merged patch side, each repeated over T frames, in the order
  of the spatial merge, with ``image_grid_thw`` (1, 3).  The explained pixels are the resized image
  (1, 3, H, W); the patches are a rearrangement of it, so the maps are on that image exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from spmm.errors import SpmmInputError

from .vision import ColourMap, colour_map


def colour_affine(colours: ColourMap, x: Tensor, channel_dim: int) -> Tensor:
    """Pixels x in [−1, 1] (RGB along ``channel_dim``) -> the processor's values ((x + 1)/2 − mean)/std
    in the processor's channel order."""
    shape = [1] * x.dim()
    shape[channel_dim] = 3
    mean = torch.tensor(colours.mean, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(colours.std, dtype=x.dtype, device=x.device).view(shape)
    if colours.order != (0, 1, 2):
        x = x.index_select(channel_dim, torch.tensor(colours.order, device=x.device))
    return ((x + 1.0) / 2.0 - mean) / std


class FirstView:
    """An image processor seen through one view per image: ``pixel_values`` (N, 3, h, w) (the
    colour map is read off it by :func:`colour_map`); ``nested``: each image is a sample of its own
    (processors that read a flat list as the images of one sample)."""

    def __init__(self, image_processor: Any, views: Any, nested: bool = False) -> None:
        self.image_processor, self.views, self.nested = image_processor, views, nested

    def __call__(self, images: list[Image.Image], return_tensors: str = "pt") -> dict[str, Tensor]:
        images = [[image] for image in images] if self.nested else images
        return {"pixel_values": self.views(self.image_processor(images=images, return_tensors=return_tensors))}


@dataclasses.dataclass
class WholeImage:
    """``pixel_values`` (1, 3, H, W): the explained pixels are the image itself."""

    image_processor: Any
    image_keys: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.colours = colour_map(self.image_processor)

    def prepare(self, image: Image.Image) -> tuple[Tensor, Any]:
        """The image -> (pixels (1, 3, H, W) in [−1, 1], geometry: None)."""
        values = self.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        if values.dim() != 4:
            raise SpmmInputError(f"{type(self.image_processor).__name__} makes pixel_values of shape "
                                 f"{tuple(values.shape)}, not one image (1, 3, H, W)")
        return self.colours.to_unit_range(values[0])[None], None

    def pixel_values(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [−1, 1] -> the model's ``pixel_values`` (B, 3, H, W)."""
        return colour_affine(self.colours, x, 1)

    def on_image(self, values: Tensor, geometry: Any) -> Tensor:
        """(R, 3, H, W) -> (R, H, W), channels summed."""
        return values.sum(1)

    def display(self, pixels: Tensor, geometry: Any) -> Tensor:
        """(1, 3, H, W) -> the image (3, H, W)."""
        return pixels[0]


@dataclasses.dataclass(frozen=True)
class TileGeometry:
    """Where tiled views lie: views ``first`` … ``first`` + rows·cols − 1 are ``rows`` × ``cols`` tiles
    of side ``side`` in row-major order; the image fills [top, top + height) × [left, left + width)
    of their canvas (the rest is padding); view ``whole`` (None: none) is the whole image, in its
    top-left ``whole_height`` × ``whole_width`` pixels."""

    rows: int
    cols: int
    side: int
    top: int
    left: int
    height: int
    width: int
    first: int = 1
    whole: int | None = 0
    whole_height: int = 0
    whole_width: int = 0


@dataclasses.dataclass
class TiledImage:
    """``pixel_values`` (1, 1 + T, 3, h, w) with ``image_sizes`` (1, 2): LLaVA-NeXT's views (module
    docstring)."""

    image_processor: Any
    image_keys: ClassVar[tuple[str, ...]] = ("image_sizes",)

    def __post_init__(self) -> None:
        self.colours = colour_map(FirstView(self.image_processor, lambda output: output["pixel_values"][:, 0]))

    def geometry(self, height: int, width: int, views: Tensor) -> TileGeometry:
        """The tile grid and the image's place on it, as the processor lays them out for an image of
        ``height`` × ``width`` (views: (1 + T, 3, side, side))."""
        from transformers.image_processing_utils import (
            get_patch_output_size,
            select_best_resolution,
        )

        side = views.shape[-1]
        best_height, best_width = select_best_resolution((height, width), self.image_processor.image_grid_pinpoints)
        rows, cols = best_height // side, best_width // side
        if rows * cols != views.shape[0] - 1:
            raise SpmmInputError(f"{type(self.image_processor).__name__} made {views.shape[0] - 1} tiles, not the "
                                 f"{rows}×{cols} grid of its image_grid_pinpoints; spmm cannot place them on the image")
        new_height, new_width = get_patch_output_size(torch.zeros(1, height, width), (best_height, best_width), "channels_first")
        return TileGeometry(rows, cols, side, (best_height - new_height) // 2, (best_width - new_width) // 2,
                            new_height, new_width, whole_height=side, whole_width=side)

    def prepare(self, image: Image.Image) -> tuple[Tensor, TileGeometry]:
        """The image -> (its views (1, 1 + T, 3, s, s) in [−1, 1], where they lie on it)."""
        views = self.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
        pixels = torch.stack([self.colours.to_unit_range(view) for view in views])
        return pixels[None], self.geometry(image.height, image.width, views)

    def pixel_values(self, x: Tensor) -> Tensor:
        """(B, 1 + T, 3, h, w) in [−1, 1] -> the model's ``pixel_values`` (same shape)."""
        return colour_affine(self.colours, x, 2)

    def canvas(self, tiles: Tensor, geometry: TileGeometry) -> Tensor:
        """Tiles (R, T, C, s, s) in row-major order -> the image's part of their canvas (R, C, height, width)."""
        g = geometry
        tiles = tiles[:, g.first: g.first + g.rows * g.cols]
        r, _, c, s, _ = tiles.shape
        whole = tiles.reshape(r, g.rows, g.cols, c, s, s).permute(0, 3, 1, 4, 2, 5).reshape(r, c, g.rows * s, g.cols * s)
        return whole[:, :, g.top: g.top + g.height, g.left: g.left + g.width]

    def on_image(self, values: Tensor, geometry: TileGeometry) -> Tensor:
        """(R, 1 + T, 3, s, s) -> (R, height, width): the tiles' maps plus the whole view's map spread
        over the image (its sum kept)."""
        g = geometry
        maps = values.sum(2)
        tiles = self.canvas(maps[:, :, None], g)[:, 0]
        if g.whole is None:
            return tiles
        whole = maps[:, g.whole: g.whole + 1, : g.whole_height, : g.whole_width].double()
        spread = F.interpolate(whole, size=tiles.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        area = whole.shape[-1] * whole.shape[-2] / (tiles.shape[-1] * tiles.shape[-2])
        return tiles + (spread * area).to(tiles.dtype)

    def display(self, pixels: Tensor, geometry: TileGeometry) -> Tensor:
        """(1, 1 + T, 3, s, s) -> the image at the tiles' resolution (3, height, width)."""
        return self.canvas(pixels, geometry)[0]


class SplitImage(TiledImage):
    """``pixel_values`` (1, T + 1, 3, s, s) with ``pixel_attention_mask`` (1, T + 1, s, s): Idefics3's
    and SmolVLM's tiles of the image resized to whole tiles (row-major), then the whole image resized
    into one tile, each padded at the bottom and right (the mask: 1 on the image); without splitting,
    one view, the whole image padded."""

    image_keys: ClassVar[tuple[str, ...]] = ("pixel_attention_mask",)

    def __post_init__(self) -> None:
        self.colours = colour_map(FirstView(self.image_processor, lambda output: output["pixel_values"][:, -1], nested=True))

    def prepare(self, image: Image.Image) -> tuple[Tensor, TileGeometry]:
        """The image -> (its views (1, T + 1, 3, s, s) in [−1, 1], where they lie on it)."""
        output = self.image_processor(images=[image], return_tensors="pt", return_row_col_info=True)
        views, mask = output["pixel_values"][0], output["pixel_attention_mask"][0].bool()
        pixels = torch.stack([self.colours.to_unit_range(view) for view in views])
        rows, cols, side = int(output["rows"][0][0]), int(output["cols"][0][0]), views.shape[-1]
        split = rows * cols > 0 and views.shape[0] == rows * cols + 1
        if not split and views.shape[0] != 1:
            raise SpmmInputError(f"{type(self.image_processor).__name__} made {views.shape[0]} views, not the "
                                 f"{rows}×{cols} tiles and the whole image; spmm cannot place them on the image")
        tiles = mask[:-1] if split else mask
        rows, cols = (rows, cols) if split else (1, 1)
        canvas = tiles.reshape(rows, cols, side, side).permute(0, 2, 1, 3).reshape(rows * side, cols * side)
        height, width = int(canvas.any(1).sum()), int(canvas.any(0).sum())
        whole = views.shape[0] - 1
        geometry = TileGeometry(rows, cols, side, 0, 0, height, width, first=0, whole=whole if split else None,
                                whole_height=int(mask[whole].any(1).sum()), whole_width=int(mask[whole].any(0).sum()))
        return pixels[None], geometry

    def pixel_values(self, x: Tensor) -> Tensor:
        """(B, T + 1, 3, s, s) in [−1, 1] -> the model's ``pixel_values``; a view whose values are all 0
        is a one-line error (the model takes it for padding and drops it, so its image tokens go unfilled)
        naming a baseline that is not such a view: black, or white where black is."""
        values = colour_affine(self.colours, x, 2)
        if (values == 0).flatten(2).all(-1).any():
            padding = [round(2 * mean - 1, 3) for mean in self.colours.mean]
            other = "baseline=1.0, white" if all(value == -1.0 for value in padding) else "baseline=-1.0, black"
            raise SpmmInputError(f"Idefics3 and SmolVLM drop an image view whose pixel_values are all 0 (pixels {padding} in "
                                 f"[−1, 1]) as padding, leaving its image tokens unfilled; give the method another "
                                 f"baseline (e.g. {other})")
        return values


class PatchGrid(WholeImage):
    """``pixel_values`` (N, 3·T·p·p) with ``image_grid_thw`` (1, 3): Qwen2-VL's merged patches of one
    image (module docstring); the maps and the image shown are those of :class:`WholeImage`."""

    image_keys: ClassVar[tuple[str, ...]] = ("image_grid_thw",)

    def __post_init__(self) -> None:
        self.patch = self.image_processor.patch_size
        self.merge = self.image_processor.merge_size
        self.frames = self.image_processor.temporal_patch_size
        self.colours = colour_map(FirstView(self.image_processor, self.images))

    def images(self, output: Any) -> Tensor:
        """The processor's output for N images of one size -> the images (N, 3, H, W) (frame 0)."""
        grids = output["image_grid_thw"].tolist()
        if len({tuple(grid) for grid in grids}) > 1 or any(t != 1 for t, _, _ in grids):
            raise SpmmInputError(f"{type(self.image_processor).__name__} gives these images different grids")
        _, height, width = grids[0]
        m, p, t = self.merge, self.patch, self.frames
        patches = output["pixel_values"].reshape(len(grids), height // m, width // m, m, m, 3, t, p, p)[..., 0, :, :]
        return patches.permute(0, 5, 1, 3, 6, 2, 4, 7).reshape(len(grids), 3, height * p, width * p)

    def prepare(self, image: Image.Image) -> tuple[Tensor, Any]:
        """The image -> (the resized image (1, 3, H, W) in [−1, 1], geometry: None)."""
        output = self.image_processor(images=[image], return_tensors="pt")
        return self.colours.to_unit_range(self.images(output)[0])[None], None

    def pixel_values(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [−1, 1] -> the model's ``pixel_values`` (B·N, 3·T·p·p), the processor's patch order."""
        m, p, t = self.merge, self.patch, self.frames
        b, c, height, width = x.shape
        values = colour_affine(self.colours, x, 1)
        patches = values.reshape(b, c, height // (m * p), m, p, width // (m * p), m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
        frames = patches.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, t, -1, -1)
        return frames.reshape(b * (height // p) * (width // p), c * t * p * p)
