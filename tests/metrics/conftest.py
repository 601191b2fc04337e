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


def _fmix32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    return x ^ (x >> 16)


class ReferenceStream:
    """The documented per-sample draws, written here in plain Python integers: keys k0, k1 from
    sha256(JSON [seed, metric, str(id)]); draw p, element e ->
    (fmix32((fmix32(e ^ fmix32(k0 ^ fmix32(p + k1))) + k0) mod 2³²) >> 8) / 2²⁴."""

    def __init__(self, seed: int, sample, metric: str) -> None:
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps([seed, metric, str(sample)]).encode()).digest()
        self.k0, self.k1 = int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")
        self.drawn = 0

    def next(self, shape, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """One draw of ``shape`` (float32, U(low, high))."""
        h = _fmix32(self.k0 ^ _fmix32((self.drawn + self.k1) & 0xFFFFFFFF))
        self.drawn += 1
        count = int(torch.Size(shape).numel())
        unit = [(_fmix32((_fmix32(e ^ h) + self.k0) & 0xFFFFFFFF) >> 8) / 2**24 for e in range(count)]
        return (low + (high - low) * torch.tensor(unit, dtype=torch.float32)).view(*shape)


def streams_for(seed: int, ids, metric: str) -> list[ReferenceStream]:
    return [ReferenceStream(seed, i, metric) for i in ids]


def content_ids(x: torch.Tensor) -> list[str]:
    """The documented id of samples given without ids: "sha256:" + sha256 of the JSON list of a
    sample's shape followed by its float32 values (little-endian, −0 as 0)."""
    import hashlib
    import json

    import numpy as np

    ids = []
    for item in x:
        values = np.asarray(item.detach().float().numpy(), dtype="<f4") + np.float32(0.0)
        ids.append("sha256:" + hashlib.sha256(json.dumps(list(item.shape)).encode() + values.tobytes()).hexdigest())
    return ids
