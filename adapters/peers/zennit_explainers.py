"""zennit's LRP composites as bench explainers of image classifiers.

Called as zennit's documentation shows: ``with Gradient(model, composite) as attributor:
output, relevance = attributor(x, one_hot_targets)``, on the normalised input the network's first
layer sees (a :class:`~spmm.adapters.vision.models.UnitRangeInput`'s inner model), with the
canonizer zennit provides for the architecture (``ResNetCanonizer`` for torchvision ResNets,
``VGGCanonizer`` for VGGs, ``SequentialMergeBatchNorm`` otherwise) and, for EpsilonGammaBox, the
box bounds of the input range mapped through the normalisation.  The relevance (B, 3, H, W) is
returned per pixel; it sums to the target logit when the composite conserves relevance (it does not
on timm's EfficientNet-Lite0: report that model's rows as experimental).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from spmm.metrics.base import ExplainFn

from .versions import peer_version

COMPOSITES = {"epsilon_plus_flat": "EpsilonPlusFlat", "epsilon_gamma_box": "EpsilonGammaBox"}
"""Bench name -> zennit composite class (zennit's recommended composites for CNNs)."""


def canonizers(model: nn.Module) -> list[Any]:
    """zennit's canonizers for ``model``'s architecture."""
    from torchvision.models import VGG, ResNet
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    if isinstance(model, ResNet):
        return [ResNetCanonizer()]
    if isinstance(model, VGG):
        return [VGGCanonizer()]
    return [SequentialMergeBatchNorm()]


def normalised(model: Callable[[Tensor], Any], inputs: Tensor) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    """(network, its input, lowest and highest input values (1, C, 1, 1)) for images in [−1, 1]:
    a ``UnitRangeInput``'s inner model on its normalised input, or ``model`` itself on [−1, 1]."""
    mean, std = getattr(model, "mean", None), getattr(model, "std", None)
    if isinstance(getattr(model, "model", None), nn.Module) and isinstance(mean, Tensor) and isinstance(std, Tensor):
        return model.model, ((inputs + 1) / 2 - mean) / std, (0 - mean) / std, (1 - mean) / std
    ones = torch.ones(1, inputs.shape[1], 1, 1, device=inputs.device, dtype=inputs.dtype)
    return model, inputs, -ones, ones


def zennit_explainer(composite: str, seed: int = 0) -> ExplainFn:
    """``explain_fn(model, images (B, C, H, W), targets (B,)) -> relevance (B, C, H, W)`` with zennit's
    ``composite`` (a key of :data:`COMPOSITES`).  Deterministic: ``seed`` is unused."""
    version = peer_version("zennit")

    def explain_fn(model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor) -> Tensor:
        import zennit.composites
        from zennit.attribution import Gradient

        network, x, low, high = normalised(model, inputs.detach())
        kind = getattr(zennit.composites, COMPOSITES[composite])
        options = {"low": low.expand_as(x), "high": high.expand_as(x)} if composite == "epsilon_gamma_box" else {}
        rule_set = kind(canonizers=canonizers(network), **options)

        def one_hot(output: Tensor) -> Tensor:
            return torch.nn.functional.one_hot(targets.to(output.device), output.shape[1]).to(output.dtype)

        with torch.enable_grad(), Gradient(model=network, composite=rule_set) as attributor:
            _, relevance = attributor(x.clone().requires_grad_(True), one_hot)
        return relevance.detach()

    explain_fn.method = f"zennit:{composite}"  # type: ignore[attr-defined]
    explain_fn.params = {"composite": COMPOSITES[composite], "zennit": version}  # type: ignore[attr-defined]
    return explain_fn
