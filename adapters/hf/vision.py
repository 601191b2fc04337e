"""Hugging Face image classifiers (ViT, DeiT, Swin, ConvNeXt, BEiT, ResNet…) on the [−1, 1] convention.

>>> m = spmm.load("./vit_dir")                     # a save_pretrained folder with its image processor
>>> ex = m.explain("cat.jpg", method="guided_pb_cam")

The saved image processor gives the input side and the normalisation: pixels x in [−1, 1] become
the processor's ``pixel_values`` = ((x + 1)/2 · 255 · rescale_factor − mean) / std inside the
explained model (:class:`PixelValuesLogits`), so perturbations and ascent steps keep the image
modality's scale; the processor's own PIL path never runs in the differentiated graph.  Images are
resized by the image modality (on an image already at the processor's size both give the same
tensor).  Labels come from ``config.id2label``; Grad-CAM layers are facts in
:data:`spmm.adapters.vision.facts.CAM_LAYERS`.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn

from spmm.adapters.vision.models import UnitRangeInput
from spmm.errors import SpmmInputError
from spmm.explainable import Explainable

from .preprocessors import saved_preprocessor
from .tasks import register_hf_task, source_name

UINT8_MAX = 255.0


class PixelValuesLogits(UnitRangeInput):
    """A Hugging Face image classifier taking images in [−1, 1]: (B, 3, H, W) -> logits (B, C).

    ``mean``/``std`` are the processor's, already divided by 255 · rescale_factor, so that
    ((x + 1)/2 − mean)/std is the processor's ``pixel_values``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return self.model(pixel_values=((x + 1.0) / 2.0 - self.mean) / self.std).logits


def load_image_processor(source: str | None, processor: Any, model: nn.Module) -> Any:
    """The image processor given (``processor=``) or saved next to the model in ``source``."""
    return saved_preprocessor(source, processor, model, "processor", "image processor", "AutoImageProcessor")

def _side(size: Any, what: str) -> int | None:
    """The square side of a processor size ({height, width} or {shortest_edge}), None when unset."""
    if size is None:
        return None
    get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
    height, width, shortest = get("height"), get("width"), get("shortest_edge")
    if height is not None or width is not None:
        if height != width:
            raise SpmmInputError(f"the image processor's {what} is {height}×{width}; spmm explains square inputs")
        return int(height)
    return int(shortest) if shortest is not None else None


def input_side(processor: Any) -> int:
    """Side of the square image the model sees: the crop size when the processor crops, else its size."""
    crop = _side(getattr(processor, "crop_size", None), "crop size") if getattr(processor, "do_center_crop", False) else None
    side = crop or _side(getattr(processor, "size", None), "size")
    if side is None:
        raise SpmmInputError(f"cannot read an input size from {type(processor).__name__} (size={processor.size!r})")
    return side


def pixel_normalisation(processor: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on (x + 1)/2 in [0, 1] reproducing the processor's rescale and normalisation."""
    scale = UINT8_MAX * (processor.rescale_factor if getattr(processor, "do_rescale", True) else 1.0)
    channels = 3
    if getattr(processor, "do_normalize", True):
        mean, std = processor.image_mean, processor.image_std
        mean = tuple(mean) if isinstance(mean, (list, tuple)) else (mean,) * channels
        std = tuple(std) if isinstance(std, (list, tuple)) else (std,) * channels
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    return tuple(float(m) / scale for m in mean), tuple(float(s) / scale for s in std)


def config_labels(config: Any) -> list[str]:
    """Class names in output order from ``config.id2label``."""
    return [str(config.id2label[i]) for i in range(config.num_labels)]


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
    mean, std = pixel_normalisation(processor)
    name = source_name(source, model)
    wrapped = PixelValuesLogits(model, mean, std, name=name).to(next(model.parameters()).device)
    wrapped.training = model.training  # the user's model keeps its mode (train() would recurse into it)
    multi_label = getattr(model.config, "problem_type", None) == "multi_label_classification"
    names = list(labels) if labels is not None else config_labels(model.config)
    return Explainable(wrapped, ImageModality(input_side(processor)), VISION_RULES, names, name, multi_label)
