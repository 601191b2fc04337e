"""Reading, checking, cutting and writing waveforms.

Waveforms are float32 tensors in [−1, 1]: one clip (N,), a batch (B, N).
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
