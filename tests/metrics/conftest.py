"""Tiny seeded models for metric tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class LinearScorer(nn.Module):
    """logits = x·W (flattened): every class logit is linear, so its gradient is W[:, c]."""

    def __init__(self, shape: tuple[int, ...], classes: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(int(torch.tensor(shape).prod()), classes, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).to(self.weight.dtype) @ self.weight


def tiny_cnn(classes: int = 2) -> nn.Module:
    """(B, 1, 8, 8) -> (B, classes), with a ReLU so that it is not linear."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes)
    ).eval()


@pytest.fixture
def linear_model() -> LinearScorer:
    torch.manual_seed(2)
    return LinearScorer((1, 8, 8)).eval()


@pytest.fixture
def cnn() -> nn.Module:
    return tiny_cnn()


@pytest.fixture
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.rand((4, 1, 8, 8), generator=generator, dtype=torch.float64) * 2 - 1


def generators_for(seed: int, ids, metric: str) -> list[torch.Generator]:
    """The per-sample generators the metrics document, derived here independently:
    seed = first 8 bytes (little-endian) of sha256(JSON [seed, metric, str(id)])."""
    import hashlib
    import json

    return [
        torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(json.dumps([seed, metric, str(i)]).encode()).digest()[:8], "little"))
        for i in ids
    ]
