"""Small audio helpers shared by the audio tests."""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio


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


def numpy_mel_power(clip: np.ndarray, n_fft: int, hop: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """librosa-style mel power spectrogram written out by hand: (T, n_mels)."""
    padded = np.pad(clip, n_fft // 2, mode="reflect")
    count = 1 + (len(padded) - n_fft) // hop
    frames = np.stack([padded[i * hop: i * hop + n_fft] for i in range(count)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    banks = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, 16000, "slaney", "slaney")
    return power @ banks.double().numpy()
