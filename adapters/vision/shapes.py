"""Small classifiers of the synthetic-shapes benchmark (:mod:`spmm.modalities.image.shapes`),
trained here on CPU (``examples/train_shapes.py``) and shipped as safetensors in ``adapters/data``.

Three architectures, all taking 64 × 64 images in [−1, 1] (SPEC §3) and returning logits over
:data:`~spmm.modalities.image.shapes.SHAPE_CLASSES`:

* ``resnet``: timm ``ResNet`` with basic blocks (1, 1, 1, 1), channels (16, 32, 64, 128) —
  BatchNorm, ReLU, max-pool stem, residual additions.
* ``vgg``: :class:`ShapesVGG` — 3 × 3 convolutions, ReLU and max-pool stages, average pool, linear.
* ``vit``: timm ``VisionTransformer``, 8 × 8 tokens, width 64, depth 4, 4 heads — LayerNorm,
  GELU, softmax attention, class token — whose patch embedding is a convolutional stem
  (:class:`ConvPatchEmbed`, three stride-2 3 × 3 convolutions with GELU) instead of one 8 × 8
  convolution: with the plain embedding the ViT stayed near chance (0.16 after 2 epochs, 0.58
  after 6) within the CPU budget; with the stem it reaches 0.97 in 6 epochs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from timm.layers import PatchEmbed
from torch import nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable
from spmm.load import register_model

SHAPES_SIZE = 64
ARCHITECTURES = ("resnet", "vgg", "vit")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
UNIT_MEAN = (0.5, 0.5, 0.5)
UNIT_STD = (0.5, 0.5, 0.5)
"""[−1, 1] -> [0, 1] -> normalised with 0.5/0.5: the inner model sees the [−1, 1] image itself."""


class ShapesVGG(nn.Module):
    """VGG-style: ``features`` = [conv 3 × 3, ReLU, max-pool 2] × 4 (16, 32, 64, 64 channels),
    then average pool and a linear head.  x: (B, 3, H, W) -> logits (B, classes)."""

    def __init__(self, classes: int, widths: tuple[int, ...] = (16, 32, 64, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class ConvPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` with a convolutional stem as the projection: 3 → 24 → 48 → embed_dim
    channels, each a 3 × 3 stride-2 convolution (GELU between), so one token covers 8 × 8 pixels with
    overlapping receptive fields.  (B, 3, H, W) -> (B, H/8 · W/8, embed_dim)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.patch_size != (8, 8):
            raise SpmmInputError(f"the convolutional stem gives patch size 8, not {self.patch_size}")
        width = kwargs["embed_dim"]
        self.proj = nn.Sequential(
            nn.Conv2d(3, 24, 3, 2, 1), nn.GELU(), nn.Conv2d(24, 48, 3, 2, 1), nn.GELU(), nn.Conv2d(48, width, 3, 2, 1),
        )


def build_shapes_model(arch: str, classes: int) -> nn.Module:
    """An untrained classifier of architecture ``arch`` (one of :data:`ARCHITECTURES`)."""
    if arch == "resnet":
        from timm.models.resnet import BasicBlock, ResNet

        return ResNet(BasicBlock, (1, 1, 1, 1), num_classes=classes, stem_width=16, channels=(16, 32, 64, 128))
    if arch == "vgg":
        return ShapesVGG(classes)
    if arch == "vit":
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(img_size=SHAPES_SIZE, patch_size=8, num_classes=classes, embed_dim=64, depth=4,
                                 num_heads=4, mlp_ratio=2.0, embed_layer=ConvPatchEmbed)
    raise SpmmInputError(f"unknown shapes architecture {arch!r}; use one of {', '.join(ARCHITECTURES)}")


def wrap_unit_range(model: nn.Module, arch: str) -> nn.Module:
    """``model`` behind the [−1, 1] input wrapper shared by every vision model."""
    from .models import UnitRangeInput

    return UnitRangeInput(model, UNIT_MEAN, UNIT_STD, name=f"shapes-{arch}")


def weights_path(arch: str) -> Path:
    return DATA_DIR / f"shapes_{arch}.safetensors"


def load_shapes_model(arch: str, weights: str | Path | None = None) -> nn.Module:
    """The shipped (or ``weights``) ``arch`` classifier, eval mode, (B, 3, 64, 64) in [−1, 1] ->
    logits (B, 6)."""
    from spmm.adapters.checkpoints import read_state_dict
    from spmm.modalities.image.shapes import SHAPE_CLASSES

    from .weights import load_into

    model = build_shapes_model(arch, len(SHAPE_CLASSES))
    path = weights_path(arch) if weights is None else Path(weights)
    load_into(model, read_state_dict(path), str(path))
    return wrap_unit_range(model, arch).eval()


def shapes_card(arch: str) -> dict[str, Any]:
    """The training record shipped next to the weights (accuracy, interventions, command)."""
    return json.loads(weights_path(arch).with_suffix(".json").read_text())


def _explainable(arch: str, weights: str | Path | None) -> Explainable:
    from spmm.modalities.image.modality import ImageModality
    from spmm.modalities.image.shapes import SHAPE_CLASSES

    from .registry import VISION_RULES

    return Explainable(load_shapes_model(arch, weights), ImageModality(SHAPES_SIZE), VISION_RULES,
                       list(SHAPE_CLASSES), f"shapes-{arch}")


@register_model("shapes-resnet", "image", "synthetic-shapes ResNet-style CNN (embedded, 6 classes, 64 px)")
def load_shapes_resnet(weights: str | Path | None = None) -> Explainable:
    return _explainable("resnet", weights)


@register_model("shapes-vgg", "image", "synthetic-shapes VGG-style CNN (embedded, 6 classes, 64 px)")
def load_shapes_vgg(weights: str | Path | None = None) -> Explainable:
    return _explainable("vgg", weights)


@register_model("shapes-vit", "image", "synthetic-shapes small ViT (embedded, 6 classes, 64 px)")
def load_shapes_vit(weights: str | Path | None = None) -> Explainable:
    return _explainable("vit", weights)
