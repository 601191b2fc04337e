"""Audio front-ends: waveform -> the time-frequency tensor that spmm explains.

Every front-end maps a batch of waveforms (B, N) to a real tensor (B, T, F):
T frames, F bins (mel bands or STFT bins), time first.  What comes after the
front-end is "the explained model"; linear steps a checkpoint expects after the
front-end (the DCT of an MFCC model, the inverse STFT of a waveform model) are
put into the explained model so that attributions land on (T, F) bins.
"""

from __future__ import annotations

from typing import Any

import torch
import torchaudio
from torch import Tensor, nn


class LogMel(nn.Module):
    """Mel power spectrogram (librosa conventions: Slaney mel scale and norm, centred
    frames with reflect padding, periodic Hann window) followed by a log.

    ``log``: ``"natural_positive"`` (ln of positive entries, zeros stay zero: honk),
    ``"log10_10000"`` (log10(10000·S + 1): musicnn) or ``"whisper"`` (log10(max(S, 1e-10)), raised
    to at least the clip's maximum − 8, then (x + 4)/4, the STFT's last frame dropped: Whisper's
    feature extractor).  (B, N) -> (B, T, n_mels).
    """

    LOGS = ("natural_positive", "log10_10000", "whisper")
    WHISPER_FLOOR = 1e-10
    WHISPER_RANGE = 8.0

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int, f_min: float = 0.0,
                 f_max: float | None = None, log: str = "natural_positive") -> None:
        super().__init__()
        if log not in self.LOGS:
            raise ValueError(f"log must be one of {self.LOGS}, got {log!r}")
        self.sample_rate, self.n_fft, self.hop = sample_rate, n_fft, hop
        self.log = log
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft=n_fft, hop_length=hop, f_min=f_min, f_max=f_max, n_mels=n_mels,
            pad_mode="reflect", power=2.0, norm="slaney", mel_scale="slaney",
        )

    def forward(self, waveform: Tensor) -> Tensor:
        power = self.mel(waveform).transpose(-1, -2)
        if self.log == "natural_positive":
            return torch.where(power > 0, power.clamp_min(torch.finfo(power.dtype).tiny).log(), torch.zeros_like(power))
        if self.log == "whisper":
            log_power = power[..., :-1, :].clamp_min(self.WHISPER_FLOOR).log10()
            peak = log_power.amax(dim=(-2, -1), keepdim=True)
            return (torch.maximum(log_power, peak - self.WHISPER_RANGE) + 4.0) / 4.0
        return torch.log10(10000.0 * power + 1.0)

    def band_to_linear(self) -> Tensor:
        """(n_fft // 2 + 1, n_mels): row-normalised mel filterbank, mapping a per-band mask to
        STFT bins (bins no band sees get 0)."""
        banks = self.mel.mel_scale.fb
        return banks / banks.sum(dim=1, keepdim=True).clamp_min(1e-12)

    def band_frequencies(self) -> Tensor:
        """(n_mels,) centre frequency of each band in Hz (peak of its filter)."""
        banks = self.mel.mel_scale.fb
        freqs = torch.linspace(0, self.sample_rate / 2, self.n_fft // 2 + 1, device=banks.device)
        return freqs[banks.argmax(dim=0)]


class STFTMagnitude(nn.Module):
    """|STFT| of a waveform: (B, N) -> (B, T, n_fft // 2 + 1); ``phase`` gives the matching
    unit-modulus factors (B, F, T).  Hann window, centred frames, reflect padding."""

    def __init__(self, sample_rate: int, n_fft: int = 512, hop: int = 128) -> None:
        super().__init__()
        self.sample_rate, self.n_fft, self.hop = sample_rate, n_fft, hop
        self.stft = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop, power=None, pad_mode="reflect")

    def forward(self, waveform: Tensor) -> Tensor:
        return self.stft(waveform).abs().transpose(-1, -2)

    def phase(self, waveform: Tensor) -> Tensor:
        """e^{iφ} per bin, (B, F, T) complex; 1 where the magnitude is 0."""
        spectrum = self.stft(waveform)
        magnitude = spectrum.abs()
        return torch.where(magnitude > 0, spectrum / magnitude.clamp_min(1e-30), torch.ones_like(spectrum))

    def band_to_linear(self) -> Tensor:
        bins = self.n_fft // 2 + 1
        return torch.eye(bins)

    def band_frequencies(self) -> Tensor:
        return torch.linspace(0, self.sample_rate / 2, self.n_fft // 2 + 1)


class KaldiFbank(nn.Module):
    """The Audio Spectrogram Transformer input: Kaldi log-mel filterbank (25 ms Hann frames,
    10 ms shift, no dither) cut or zero-padded to ``max_length`` frames, then
    (x − mean) / (2·std).  (B, N) -> (B, max_length, num_mel_bins)."""

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 128, max_length: int = 1024,
                 mean: float = -4.2677393, std: float = 4.5689974) -> None:
        super().__init__()
        self.sample_rate, self.num_mel_bins, self.max_length = sample_rate, num_mel_bins, max_length
        self.mean, self.std = mean, std
        self.hop = sample_rate // 100

    def forward(self, waveform: Tensor) -> Tensor:
        features = []
        for clip in waveform:
            fbank = torchaudio.compliance.kaldi.fbank(
                clip.unsqueeze(0), htk_compat=True, sample_frequency=self.sample_rate, use_energy=False,
                window_type="hanning", num_mel_bins=self.num_mel_bins, dither=0.0, frame_shift=10,
            )
            fbank = fbank[: self.max_length]
            fbank = nn.functional.pad(fbank, (0, 0, 0, self.max_length - fbank.shape[0]))
            features.append(fbank)
        return (torch.stack(features) - self.mean) / (2 * self.std)


class DCTThenModel(nn.Module):
    """Log-mel (B, T, M) -> orthonormal DCT-II along the mel axis (MFCC, (B, T, C)) -> ``model``.

    The DCT is linear, so explaining this module puts attributions on log-mel bins.
    """

    def __init__(self, model: nn.Module, n_mels: int, n_coefficients: int | None = None) -> None:
        super().__init__()
        self.model = model
        dct = torchaudio.functional.create_dct(n_coefficients or n_mels, n_mels, norm="ortho")
        self.register_buffer("dct", dct, persistent=False)

    def forward(self, log_mel: Tensor) -> Tensor:
        return self.model(log_mel @ self.dct)


class MeanOverFrames(nn.Module):
    """Frame-level logits (B, frames, C) -> clip logits (B, C): the mean over frames (linear)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).mean(dim=1)


class PhaseLockedWaveformModel(nn.Module):
    """A waveform model seen from STFT magnitudes: |X| (B, T, F) -> model(iSTFT(|X|·e^{iφ})).

    Magnitude and phase: the explained input is the magnitude of every time-frequency
    bin; the phase e^{iφ} of the clip being explained is held constant (a buffer, like a
    weight).  The map |X| -> waveform is therefore linear, the SP rules act only inside
    the waveform model, and the attribution of a bin is ∂score/∂|X| at fixed phase
    (equivalently, the real part of the complex gradient projected on the bin's phase).
    Phase itself is not attributed.  With the clip's own magnitude the inverse STFT
    gives back the clip (error ~1e-7), so the model output is unchanged by the wrapper.

    ``phase``: (P, F, T) complex, P = 1 (broadcast over any batch) or P = B (one per
    clip; methods that repeat samples call :meth:`take`).
    """

    def __init__(self, model: nn.Module, phase: Tensor, n_fft: int, hop: int, length: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("phase", phase, persistent=False)
        self.n_fft, self.hop, self.length = n_fft, hop, length
        self.istft = torchaudio.transforms.InverseSpectrogram(n_fft=n_fft, hop_length=hop)

    def waveform(self, magnitude: Tensor) -> Tensor:
        """(B, T, F) magnitudes -> (B, length) waveform with the stored phase."""
        if self.phase.shape[0] not in (1, magnitude.shape[0]):
            raise ValueError(
                f"this wrapper holds the phase of {self.phase.shape[0]} clip(s) but got a batch of "
                f"{magnitude.shape[0]}; use take(sample_index) or explain clip by clip"
            )
        spectrum = magnitude.transpose(-1, -2) * self.phase
        return self.istft(spectrum, self.length)

    def forward(self, magnitude: Tensor) -> Any:
        return self.model(self.waveform(magnitude))

    def take(self, sample_index: Tensor) -> "PhaseLockedWaveformModel":
        """The same wrapper for a batch whose rows are the clips ``sample_index`` (N,)."""
        if self.phase.shape[0] == 1:
            return self
        phase = self.phase[sample_index.to(self.phase.device)]
        return PhaseLockedWaveformModel(self.model, phase, self.n_fft, self.hop, self.length)
