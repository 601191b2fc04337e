"""Hugging Face image classifiers (ViT, DeiT, Swin, ConvNeXt, BEiT, ResNet…) on the [−1, 1] convention.

>>> m = spmm.load("./vit_dir")                     # a save_pretrained folder with its image processor
>>> ex = m.explain("cat.jpg", method="guided_pb_cam")

The saved image processor itself gives the input side: a PIL image goes through the processor (its
resize of the shortest edge or to (h, w), ``crop_pct``, centre crop…), and its ``pixel_values`` are
mapped back to pixels x in [−1, 1] through the processor's colour map, so the explained image is
the one the model sees.  The colour map (rescale, mean/std, EfficientNet's ``include_top``,
MobileViT's channel flip…) is read off the processor by running it on plain colours
(:func:`colour_map`), never re-implemented; inside the explained model (:class:`PixelValuesLogits`)
it turns x back into the processor's ``pixel_values`` = ((x + 1)/2 − mean)/std in the processor's
channel order, so perturbations and ascent steps keep the image modality's scale and the
processor's own code never runs in the differentiated graph.  Labels come from
``config.id2label``; Grad-CAM layers are facts in :data:`spmm.adapters.vision.facts.CAM_LAYERS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from PIL import Image
from torch import Tensor, nn

from spmm.adapters.vision.models import UnitRangeInput
from spmm.errors import SpmmInputError
from spmm.explainable import Explainable

from .preprocessors import saved_preprocessor
from .tasks import register_hf_task, source_name

UINT8_MAX = 255.0
PROBE_SIDE = 64
"""Side of the plain-colour images the processor is probed with."""
PROBE_CHECK = (37, 142, 219)
"""A colour the fitted colour map must reproduce (so a map that is not per-channel affine is refused)."""
PROBE_TOLERANCE = 1e-4
"""Largest difference (relative to the pixel_values' scale) between the fitted map and the processor."""


@dataclasses.dataclass(frozen=True)
class ColourMap:
    """The processor's per-pixel colour transform: ``pixel_values[:, c] = (x01[:, order[c]] − mean[c]) / std[c]``
    for x01 = (x + 1)/2 in [0, 1] (``order`` is (2, 1, 0) for processors that flip RGB to BGR)."""

    order: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_unit_range(self, pixel_values: Tensor) -> Tensor:
        """The processor's ``pixel_values`` (C, H, W) -> RGB pixels (3, H, W) in [−1, 1]."""
        mean = torch.tensor(self.mean, dtype=torch.float64).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float64).view(-1, 1, 1)
        x01 = torch.empty_like(pixel_values, dtype=torch.float64)
        x01[list(self.order)] = pixel_values.double() * std + mean
        return (x01 * 2.0 - 1.0).clamp(-1.0, 1.0).float()


def patch_grid(patches: Tensor, height: int, width: int) -> Tensor:
    """Patches (height·width, p·p·C) in row-major order, each (p, p, C) flattened -> an image (C, height·p, width·p)."""
    channels = 3
    side = round((patches.shape[-1] // channels) ** 0.5)
    grid = patches[: height * width].reshape(height, width, side, side, channels)
    return grid.permute(4, 0, 2, 1, 3).reshape(channels, height * side, width * side)


def processor_images(processor: Any, images: Sequence[Image.Image]) -> Tensor:
    """The processor's ``pixel_values`` of ``images`` as images (N, C, H, W); patch sequences
    (N, P, p·p·C) with ``spatial_shapes`` (Siglip2) are laid back out on their patch grids."""
    output = processor(images=list(images), return_tensors="pt")
    values = output["pixel_values"]
    if values.dim() == 4:
        return values
    shapes = output.get("spatial_shapes")
    if values.dim() != 3 or shapes is None:
        raise SpmmInputError(
            f"{type(processor).__name__} makes pixel_values of shape {tuple(values.shape)}, not images (B, C, H, W)"
        )
    grids = [patch_grid(row, int(h), int(w)) for row, (h, w) in zip(values, shapes.tolist())]
    if len({grid.shape for grid in grids}) > 1:
        raise SpmmInputError(f"{type(processor).__name__} gives these images different sizes; explain them one at a time")
    return torch.stack(grids)


def _probe(processor: Any, colours: Sequence[tuple[int, int, int]]) -> Tensor:
    """The processor's ``pixel_values`` at the centre of plain images of ``colours``: (N, C) float64."""
    values = processor_images(processor, [Image.new("RGB", (PROBE_SIDE, PROBE_SIDE), colour) for colour in colours])
    return values[:, :, values.shape[2] // 2, values.shape[3] // 2].double()


def colour_map(processor: Any) -> ColourMap:
    """The processor's colour transform, read off its output on black, red, green, blue and a check
    colour; a one-line error when it is not a per-channel affine map of the RGB channels."""
    name = type(processor).__name__
    black, red, green, blue, check = _probe(processor, [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), PROBE_CHECK])
    if black.numel() != 3:
        raise SpmmInputError(f"{name} makes {black.numel()}-channel pixel_values; spmm explains RGB images")
    gain = torch.stack([red, green, blue], dim=1) - black[:, None]  # (C, 3): output channel c per input 255
    order = tuple(int(i) for i in gain.abs().argmax(dim=1))
    diagonal = gain[torch.arange(3), list(order)]
    off_diagonal = gain.abs().sum(dim=1) - diagonal.abs()
    scale = float(max(black.abs().max(), gain.abs().max()))
    if sorted(order) != [0, 1, 2] or (diagonal <= 0).any() or (off_diagonal > PROBE_TOLERANCE * scale).any():
        raise SpmmInputError(f"{name} mixes colour channels (gains {gain.tolist()}); spmm maps RGB channels one to one")
    std = 1.0 / diagonal  # x01 from 0 to 1 moves pixel_values by 1/std
    mean = -black * std
    expected = (torch.tensor(PROBE_CHECK, dtype=torch.float64)[list(order)] / UINT8_MAX - mean) / std
    if (expected - check).abs().max() > PROBE_TOLERANCE * scale:
        raise SpmmInputError(f"{name}'s colour transform is not a per-channel affine map; spmm cannot invert it")
    return ColourMap(order, tuple(mean.tolist()), tuple(std.tolist()))


def model_side(processor: Any) -> int:
    """Side of the square image the model sees: the processor's output on a square probe."""
    height, width = processor_images(processor, [Image.new("RGB", (PROBE_SIDE, PROBE_SIDE))]).shape[-2:]
    if height != width:
        raise SpmmInputError(f"{type(processor).__name__} makes {height}×{width} inputs; spmm explains square inputs")
    return int(height)


class ProcessorPixels:
    """A PIL image -> (3, H, W) in [−1, 1]: the processor's own geometry (resize, ``crop_pct``,
    centre crop) with its colour map undone; ``pixel_values`` rebuilt from it by
    :class:`PixelValuesLogits` equal the processor's to float precision."""

    def __init__(self, processor: Any, colours: ColourMap) -> None:
        self.processor = processor
        self.colours = colours

    def __call__(self, image: Image.Image) -> Tensor:
        from transformers.image_transforms import convert_to_rgb

        rgb = image if image.mode == "RGB" else convert_to_rgb(image)  # transparency onto white, as transformers does
        return self.colours.to_unit_range(processor_images(self.processor, [rgb])[0])


class ProcessorInput(UnitRangeInput):
    """A Hugging Face image model taking images in [−1, 1]: (B, 3, H, W) -> ``model(pixel_values)``.

    ``mean``/``std`` (on (x + 1)/2 in [0, 1]) and ``order`` (the processor's channel order) come
    from :func:`colour_map`: ``pixel_values`` = ((x + 1)/2 − mean)/std with channels in ``order``.
    """

    def __init__(self, model: nn.Module, colours: ColourMap, name: str = "") -> None:
        super().__init__(model, colours.mean, colours.std, name=name)
        self.order = None if colours.order == (0, 1, 2) else list(colours.order)

    def pixel_values(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [−1, 1] -> the processor's ``pixel_values`` (B, 3, H, W)."""
        if self.order is not None:
            x = x[:, self.order]
        return ((x + 1.0) / 2.0 - self.mean) / self.std

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.pixel_values(x))


class PixelValuesLogits(ProcessorInput):
    """A Hugging Face image classifier taking images in [−1, 1]: (B, 3, H, W) -> logits (B, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.model(pixel_values=self.pixel_values(x)).logits


def load_image_processor(source: str | None, processor: Any, model: nn.Module) -> Any:
    """The image processor given (``processor=``) or saved next to the model in ``source``."""
    return saved_preprocessor(source, processor, model, "processor", "image processor", "AutoImageProcessor")


def config_labels(config: Any) -> list[str]:
    """Class names in output order from ``config.id2label`` (``LABEL_i``, as transformers names them, where it has none)."""
    names = config.id2label or {}
    return [str(names.get(i, f"LABEL_{i}")) for i in range(config.num_labels)]


@register_hf_task("image-classification", ("ForImageClassification", "DeiTForImageClassificationWithTeacher"))
def load_image_classifier(model: nn.Module, source: str | None, processor: Any = None,
                          labels: Sequence[str] | None = None) -> Explainable:
    """An image classifier explained on pixels in [−1, 1] with the vision rule set.

    processor: the image processor (default: the one saved in the model's folder).
    labels: class names (default: ``config.id2label``).
    """
    from spmm.adapters.vision.registry import VISION_RULES
    from spmm.modalities.image.modality import ImageModality

    processor = load_image_processor(source, processor, model)
    colours = colour_map(processor)
    name = source_name(source, model)
    wrapped = PixelValuesLogits(model, colours, name=name).to(next(model.parameters()).device)
    wrapped.training = model.training  # the user's model keeps its mode (train() would recurse into it)
    multi_label = getattr(model.config, "problem_type", None) == "multi_label_classification"
    names = list(labels) if labels is not None else config_labels(model.config)
    modality = ImageModality(model_side(processor), ProcessorPixels(processor, colours), unit_range=True)
    return Explainable(wrapped, modality, VISION_RULES, names, name, multi_label)
