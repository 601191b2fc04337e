"""Audio domain: loading, time-frequency feature groups and baselines, rendering,
sonification and audio mosaics.

Waveforms are float32 tensors in [−1, 1]: one clip (N,), a batch (B, N).
Time-frequency (TF) tensors are (T, F) or (B, T, F): frames first, bins second,
as produced by the front-ends of :mod:`spmm.adapters.audio`.

Conversions done on load (documented, not errors): several channels are averaged
to mono; another sample rate is resampled (torchaudio, band-limited sinc) to the
rate asked for.  Errors (:class:`spmm.SpmmInputError`): missing/unreadable file,
empty clip, NaN or Inf samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile
import torch
import torchaudio
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.metrics.groups import FeatureGroups

# --- loading -------------------------------------------------------------------


def check_waveform(waveform: Tensor, what: str = "waveform") -> Tensor:
    """Validate a mono clip (N,) or batch (B, N): non-empty, finite, floating point.  Returns float32."""
    if not isinstance(waveform, Tensor):
        raise SpmmInputError(f"{what} must be a torch.Tensor, got {type(waveform).__name__}")
    if waveform.dim() not in (1, 2):
        raise SpmmInputError(
            f"{what} must be mono, shape (samples,) or (batch, samples); got {tuple(waveform.shape)} "
            "(average the channels of a stereo clip first: to_mono)"
        )
    if waveform.shape[-1] == 0 or waveform.numel() == 0:
        raise SpmmInputError(f"{what} is empty (0 samples)")
    if not waveform.is_floating_point():
        raise SpmmInputError(f"{what} must be floating point in [-1, 1], got dtype {waveform.dtype}")
    if not torch.isfinite(waveform).all():
        bad = "NaN" if torch.isnan(waveform).any() else "Inf"
        raise SpmmInputError(f"{what} contains {bad} samples")
    return waveform.float()


def to_mono(channels_first: Tensor) -> Tensor:
    """(C, N) -> (N,) by averaging the channels (a documented conversion for stereo files)."""
    return channels_first.mean(dim=0)


def resample(waveform: Tensor, source_rate: int, target_rate: int) -> Tensor:
    """Resample (..., N) from ``source_rate`` to ``target_rate`` Hz (torchaudio, sinc interpolation)."""
    if source_rate <= 0 or target_rate <= 0:
        raise SpmmInputError(f"sample rates must be positive, got {source_rate} -> {target_rate}")
    if source_rate == target_rate:
        return waveform
    return torchaudio.functional.resample(waveform, source_rate, target_rate)


def load_audio(path: str | Path, sample_rate: int) -> Tensor:
    """Read a wav/flac/ogg/mp3 file with soundfile as a mono float32 clip (N,) at ``sample_rate``.

    Stereo (or more channels) is averaged to mono; another file rate is resampled.
    """
    path = Path(path)
    if not path.is_file():
        raise SpmmInputError(f"audio file not found: {path}")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise SpmmInputError(f"cannot read {path} as audio: {error}") from error
    if data.shape[0] == 0:
        raise SpmmInputError(f"{path} holds no samples")
    clip = to_mono(torch.from_numpy(np.ascontiguousarray(data.T)))
    check_waveform(clip, str(path))
    return resample(clip, int(file_rate), sample_rate)


def pad_or_crop(waveform: Tensor, length: int, offset: int = 0) -> Tensor:
    """(..., N) -> (..., length): samples ``offset .. offset + length``, zero-padded at the end."""
    clip = waveform[..., offset: offset + length]
    return torch.nn.functional.pad(clip, (0, length - clip.shape[-1]))


def batch_clips(clips: Sequence[Tensor], length: int | None = None) -> Tensor:
    """Stack mono clips (N_i,) into (B, length), padding/cropping each (default: the longest)."""
    if not clips:
        raise SpmmInputError("no clips to batch")
    clips = [check_waveform(c, f"clip {i}") for i, c in enumerate(clips)]
    length = length or max(c.shape[-1] for c in clips)
    return torch.stack([pad_or_crop(c, length) for c in clips])


def save_wav(path: str | Path, waveform: Tensor, sample_rate: int) -> Path:
    """Write a mono clip (N,) as 16-bit PCM WAV (peak-clipped to [−1, 1])."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), waveform.detach().cpu().clamp(-1, 1).numpy(), sample_rate, subtype="PCM_16")
    return path


# --- feature groups and baselines ----------------------------------------------


def _grid_groups(shape: tuple[int, int], frames: int, bins: int) -> Tensor:
    t_index = torch.arange(shape[0]) // frames
    f_index = torch.arange(shape[1]) // bins
    columns = (shape[1] + bins - 1) // bins
    return t_index[:, None] * columns + f_index[None, :]


def tf_patches(shape: tuple[int, int], frames: int, bins: int) -> Tensor:
    """Group ids (T, F) of rectangular patches of ``frames`` × ``bins`` (edge patches may be smaller)."""
    if frames < 1 or bins < 1:
        raise SpmmInputError(f"patch size must be positive, got {frames}×{bins}")
    return _grid_groups(shape, frames, bins)


def tf_frames(shape: tuple[int, int], frames: int = 1) -> Tensor:
    """Group ids (T, F): runs of ``frames`` whole frames (all bins)."""
    return tf_patches(shape, frames, shape[1])


def tf_bands(shape: tuple[int, int], bins: int = 1) -> Tensor:
    """Group ids (T, F): runs of ``bins`` whole bands (all frames)."""
    return tf_patches(shape, shape[0], bins)


def as_feature_groups(groups: Tensor) -> FeatureGroups:
    """Group ids (T, F) -> :class:`spmm.metrics.FeatureGroups` for the metrics."""
    return FeatureGroups(groups.long(), int(groups.max()) + 1)


def group_scores(attributions: Tensor, groups: Tensor) -> Tensor:
    """Sum of attributions per group: (B, T, F), (T, F) ids -> (B, G)."""
    count = int(groups.max()) + 1
    flat = attributions.flatten(1)
    index = groups.flatten().to(flat.device).expand_as(flat)
    return torch.zeros(flat.shape[0], count, dtype=flat.dtype, device=flat.device).scatter_add_(1, index, flat)


def silence_baseline(inputs: Tensor, front_end: torch.nn.Module, samples: int) -> Tensor:
    """The TF representation of digital silence, shaped like ``inputs`` (B, T, F)."""
    with torch.no_grad():
        silent = front_end(torch.zeros(1, samples, device=inputs.device))
    if silent.shape[1:] != inputs.shape[1:]:
        raise SpmmInputError(f"silence of {samples} samples gives {tuple(silent.shape[1:])}, inputs are "
                             f"{tuple(inputs.shape[1:])}")
    return silent.expand_as(inputs).clone()


def mean_spectrum_baseline(inputs: Tensor) -> Tensor:
    """Each clip's mean spectrum over time, repeated in every frame: (B, T, F)."""
    return inputs.mean(dim=1, keepdim=True).expand_as(inputs).clone()


def noise_floor_baseline(inputs: Tensor, quantile: float = 0.1) -> Tensor:
    """Each clip's per-bin ``quantile`` over time (a stationary noise-floor estimate): (B, T, F)."""
    return inputs.quantile(quantile, dim=1, keepdim=True).expand_as(inputs).clone()


# --- rendering and sonification ----------------------------------------------------


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
    title: str = "",
    axis_name: str = "bin",
) -> Path:
    """PNG: the explained TF input (grey) with the signed attribution overlaid (red +, blue −),
    and below it the time profile (attribution summed over bins per frame).

    tf_input, attribution: (T, F).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spectrum = tf_input.detach().cpu().float().numpy().T
    signed = attribution.detach().cpu().float().numpy().T
    limit = float(np.abs(signed).max()) or 1.0
    frames, bins = tf_input.shape
    extent = (0.0, frames * frame_seconds, -0.5, bins - 0.5)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, height_ratios=(3, 1))
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
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("per frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


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
    """
    check_waveform(waveform)
    stft = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop, power=None, pad_mode="reflect")
    istft = torchaudio.transforms.InverseSpectrogram(n_fft=n_fft, hop_length=hop)
    spectrum = stft(waveform)  # (n_fft // 2 + 1, T)
    mask = band_to_linear.to(attribution) @ positive_mask(attribution).T
    if mask.shape != spectrum.shape:
        raise SpmmInputError(f"attribution maps to a mask of {tuple(mask.shape)}, the STFT is {tuple(spectrum.shape)}")
    return istft(spectrum * mask, waveform.shape[-1])


# --- audio mosaics ------------------------------------------------------------------


def audio_mosaic(target: Tensor, distractors: Sequence[Tensor], target_slots: Sequence[int]) -> Tensor:
    """Concatenate clips of equal length into one mosaic: the target clip in ``target_slots``,
    the distractors, in order, in the other slots.  Returns (slots · N,) with
    slots = len(target_slots) + len(distractors)."""
    slots = len(target_slots) + len(distractors)
    if not target_slots or any(not 0 <= s < slots for s in target_slots) or len(set(target_slots)) != len(target_slots):
        raise SpmmInputError(f"target_slots {list(target_slots)} must be distinct slots in 0..{slots - 1}")
    lengths = {target.shape[-1], *(d.shape[-1] for d in distractors)}
    if len(lengths) != 1:
        raise SpmmInputError(f"mosaic clips must have one length, got {sorted(lengths)}")
    others = iter(distractors)
    return torch.cat([target if s in target_slots else next(others) for s in range(slots)], dim=-1)


def frame_slots(frames: int, hop: int, slot_samples: int, slots: int) -> Tensor:
    """(T,) slot of each centred frame (frame t is centred on sample t·hop)."""
    return (torch.arange(frames) * hop // slot_samples).clamp_max(slots - 1)


def focus(attribution: Tensor, slot_of_frame: Tensor, target_slots: Sequence[int]) -> Tensor:
    """Share of positive relevance in the target slots: (B, T, F) or (T, F) -> (B,) or ().

    Relevance is the positive part of the attribution itself (log-mel values have an
    arbitrary sign, so attribution ⊙ input would not mean "evidence").  A map without
    positive relevance scores 0.
    """
    positive = attribution.clamp_min(0).sum(dim=-1)  # (..., T)
    in_target = torch.isin(slot_of_frame.to(positive.device), torch.tensor(list(target_slots), device=positive.device))
    total = positive.sum(dim=-1)
    share = (positive * in_target).sum(dim=-1)
    return torch.where(total > 0, share / total.clamp_min(1e-30), torch.zeros_like(total))
