"""Small audio helpers shared by the audio tests."""

from __future__ import annotations

import math

import torch


def tone(frequency: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.5) -> torch.Tensor:
    """A sine clip (N,)."""
    t = torch.arange(round(seconds * sample_rate), dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * frequency * t)).float()


def speechlike(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """Seeded noise shaped by a slow envelope plus two tones: (N,)."""
    generator = torch.Generator().manual_seed(seed)
    n = round(seconds * sample_rate)
    envelope = torch.sin(torch.linspace(0, math.pi, n)) ** 2
    noise = 0.05 * torch.randn(n, generator=generator)
    return (envelope * (tone(300, seconds, sample_rate, 0.3) + tone(1200, seconds, sample_rate, 0.1)) + noise).float()
