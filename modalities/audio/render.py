"""Rendering attributions on spectrograms (PNG) and sonification (the clip filtered by the
positive attribution)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torchaudio
from torch import Tensor, nn

from spmm.errors import SpmmInputError

from .io import check_waveform


def time_profile(attributions: Tensor) -> Tensor:
    """Signed attribution per frame: (..., T, F) -> (..., T)."""
    return attributions.sum(dim=-1)


def render_explanation(
    path: str | Path,
    tf_input: Tensor,
    attribution: Tensor,
    *,
    frame_seconds: float,
    band_frequencies: Tensor | None = None,
    title: str | Sequence[str] = "",
    axis_name: str = "bin",
) -> Path:
    """PNG: the explained TF input (grey) with the signed attribution overlaid (red +, blue −),
    and below it the time profile (attribution summed over bins per frame).

    tf_input, attribution: (T, F), or (B, T, F) for B clips drawn one under the other (each
    with its own colour scale); title: one, or one per clip.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inputs = tf_input[None] if tf_input.dim() == 2 else tf_input
    attributions = attribution[None] if attribution.dim() == 2 else attribution
    titles = [title] * inputs.shape[0] if isinstance(title, str) else list(title)
    figure, axes = plt.subplots(2 * inputs.shape[0], 1, figsize=(8, 5.5 * inputs.shape[0]), sharex=True,
                                height_ratios=(3, 1) * inputs.shape[0], squeeze=False, layout="constrained")
    for i, (clip_input, clip_attribution, clip_title) in enumerate(zip(inputs, attributions, titles)):
        top, bottom = axes[2 * i, 0], axes[2 * i + 1, 0]
        _draw_clip(figure, top, bottom, clip_input, clip_attribution, frame_seconds, band_frequencies, clip_title,
                   axis_name)
    axes[-1, 0].set_xlabel("time (s)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _draw_clip(figure, top, bottom, tf_input: Tensor, attribution: Tensor, frame_seconds: float,
               band_frequencies: Tensor | None, title: str, axis_name: str) -> None:
    """One clip's overlay on ``top`` and time profile on ``bottom``; tf_input, attribution: (T, F)."""
    spectrum = tf_input.detach().cpu().float().numpy().T
    signed = attribution.detach().cpu().float().numpy().T
    limit = float(np.abs(signed).max()) or 1.0
    frames, bins = tf_input.shape
    extent = (0.0, frames * frame_seconds, -0.5, bins - 0.5)
    top.imshow(spectrum, origin="lower", aspect="auto", cmap="gray_r", extent=extent)
    overlay = top.imshow(signed, origin="lower", aspect="auto", cmap="bwr", vmin=-limit, vmax=limit, alpha=0.6,
                         extent=extent)
    figure.colorbar(overlay, ax=[top, bottom], label="attribution")
    if band_frequencies is not None:
        ticks = np.linspace(0, bins - 1, 5).round().astype(int)
        top.set_yticks(ticks, [f"{band_frequencies[i]:.0f}" for i in ticks])
        top.set_ylabel("Hz")
    else:
        top.set_ylabel(axis_name)
    top.set_title(title)
    profile = time_profile(attribution).detach().cpu().float().numpy()
    times = (np.arange(frames) + 0.5) * frame_seconds
    bottom.fill_between(times, 0, np.clip(profile, 0, None), color="tab:red", step="mid")
    bottom.fill_between(times, 0, np.clip(profile, None, 0), color="tab:blue", step="mid")
    bottom.axhline(0, color="black", lw=0.5)
    bottom.set_ylabel("per frame")


def positive_mask(attribution: Tensor) -> Tensor:
    """(T, F) attribution -> (T, F) mask in [0, 1]: positive part divided by its maximum."""
    positive = attribution.clamp_min(0)
    peak = positive.max()
    return positive / peak if peak > 0 else positive


def sonify(
    waveform: Tensor,
    attribution: Tensor,
    *,
    n_fft: int,
    hop: int,
    band_to_linear: Tensor,
) -> Tensor:
    """The clip filtered by the positive attribution mask, so one can LISTEN to what drove a decision.

    waveform: (N,); attribution: (T, F) on the front-end's frames (hop ``hop``, centred);
    band_to_linear: (n_fft // 2 + 1, F) maps per-bin masks to STFT bins (identity for
    STFT-magnitude inputs, the row-normalised mel filterbank for mel inputs).  Each STFT
    bin is multiplied by its mask value; the result is inverted with the same STFT: (N,).
    The last STFT frame gets mask 0 when the front-end drops it (Whisper).
    """
    check_waveform(waveform)
    stft = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop, power=None, pad_mode="reflect")
    istft = torchaudio.transforms.InverseSpectrogram(n_fft=n_fft, hop_length=hop)
    spectrum = stft(waveform)  # (n_fft // 2 + 1, T)
    mask = band_to_linear.to(attribution) @ positive_mask(attribution).T
    if mask.shape[0] == spectrum.shape[0] and mask.shape[1] == spectrum.shape[1] - 1:
        mask = nn.functional.pad(mask, (0, 1))
    if mask.shape != spectrum.shape:
        raise SpmmInputError(f"attribution maps to a mask of {tuple(mask.shape)}, the STFT is {tuple(spectrum.shape)}")
    return istft(spectrum * mask, waveform.shape[-1])
