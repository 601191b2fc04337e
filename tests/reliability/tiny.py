"""Tiny models and fast method settings shared by the reliability tests."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import spmm


class TinyConvNet(nn.Module):
    """(B, 3, 8, 8) -> (B, 5) logits: conv, optional batch norm, ReLU, max-pool, optional dropout, linear."""

    def __init__(self, norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4) if norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: Tensor) -> Tensor:
        h = F.max_pool2d(F.relu(self.norm(self.conv(x))), 2)
        return self.fc(self.dropout(h.flatten(1)))


def fast_params(method: str, model: TinyConvNet) -> dict[str, Any]:
    """Small sample counts, so every method runs in well under a second on the tiny net."""
    family = {
        "smoothgrad": {"samples": 3}, "smooth_pullback": {"samples": 3},
        "fusiongrad": {"model_samples": 2, "input_samples": 2}, "fusion_pullback": {"model_samples": 2, "input_samples": 2},
        "integrated_gradients": {"steps": 4}, "integrated_pullbacks": {"steps": 4},
        "gradient_shap": {"samples": 4, "baseline_draws": 3}, "pullback_shap": {"samples": 4, "baseline_draws": 3},
        "guided_gradcam": {"layer": model.conv}, "guided_pb_cam": {"layer": model.conv},
        "gradient_ascent": {"steps": 2}, "pullback_ascent": {"steps": 2},
    }
    return dict(family.get(method, {}))


def plain_gradient(model: nn.Module, x: Tensor, target: int) -> Tensor:
    """d logit_target / d x by autograd, outside spmm: (B, ...)."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)
    return grad


def seeded_explainer(method: str) -> Callable[[int], Tensor]:
    """``method``'s attributions (2, 3, 8, 8) of class 1 for one fixed tiny model and batch, as a
    function of the seed."""
    model = TinyConvNet().eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    params = fast_params(method, model)
    return lambda seed: spmm.explain(model, x, 1, method, seed=seed, **params).attributions
