"""Audio pipelines: a model and the front-end that makes its explained time-frequency input.

An :class:`AudioPipeline` owns the front-end (:mod:`.frontends`) and the explained model, so that
``spmm.explain(pipeline.explained_model(wave), pipeline.inputs(wave), target)`` gives attributions of
shape (B, T, F); a :class:`WaveformPipeline` explains a waveform model through STFT magnitudes with
the clip's phase held constant.  The audio modality explains any pipeline; the model families
(``spmm.adapters.audio``, ``spmm.adapters.hf``) build them for their models.
"""

from __future__ import annotations

import dataclasses

import torch

from torch import Tensor, nn

from spmm.errors import SpmmInputError

from .frontends import PhaseLockedWaveformModel, STFTMagnitude


@dataclasses.dataclass
class AudioPipeline:
    """A model and the front-end that makes its explained time-frequency input.

    Attributes
    ----------
    name: model name, e.g. ``"honk-res8"``.
    front_end: waveform (B, N) -> explained input (B, T, F).
    model: explained input (B, T, F) -> logits (B, C).
    labels: class names, C of them.
    sample_rate: Hz the model expects.
    clip_samples: samples per clip (pad/crop length), or None for any length.
    multi_label: sigmoid (True) or softmax (False) turns logits into probabilities.
    axis_name: name of the F axis ("mel band", "STFT bin", ...), for plots.
    max_seconds: most audio explained at once, all clips together (any-length models: the
        memory of an explanation grows with the audio), or None when ``clip_samples`` fixes it.
    """

    name: str
    front_end: nn.Module
    model: nn.Module
    labels: tuple[str, ...]
    sample_rate: int
    clip_samples: int | None
    multi_label: bool = False
    axis_name: str = "mel band"
    max_seconds: float | None = None

    @property
    def min_samples(self) -> int:
        """Fewest samples the front end frames: more than half an STFT window (its centred frames
        are reflect-padded by ``n_fft // 2``), 1 for front ends without a window."""
        n_fft = getattr(self.front_end, "n_fft", None)
        return n_fft // 2 + 1 if n_fft else 1

    def inputs(self, waveform: Tensor) -> Tensor:
        """Explained input (B, T, F) of waveforms (B, N); a clip too short for one frame is a
        one-line error."""
        if waveform.shape[-1] < self.min_samples:
            raise SpmmInputError(
                f"{self.name} needs clips of at least {self.min_samples} samples "
                f"({1000 * self.min_samples / self.sample_rate:.0f} ms at {self.sample_rate} Hz) for its STFT frames, "
                f"got {waveform.shape[-1]}; give a longer clip or a longer duration="
            )
        with torch.no_grad():
            return self.front_end(waveform).detach()

    def explained_model(self, waveform: Tensor) -> nn.Module:
        """The module to pass to :func:`spmm.explain` together with ``inputs(waveform)``."""
        return self.model

    def logits(self, waveform: Tensor) -> Tensor:
        """(B, C) logits of waveforms (B, N)."""
        with torch.no_grad():
            return self.explained_model(waveform)(self.inputs(waveform))

    def display(self, inputs: Tensor) -> Tensor:
        """What to draw under an attribution: the explained input itself (already logarithmic)."""
        return inputs

    def probabilities(self, logits: Tensor) -> Tensor:
        """(B, C) probabilities for reporting (never explained)."""
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    @property
    def frame_seconds(self) -> float:
        """Seconds between two frames of the explained input."""
        return self.front_end.hop / self.sample_rate

    def band_frequencies(self) -> Tensor | None:
        """(F,) centre frequency of each bin in Hz, when known."""
        fn = getattr(self.front_end, "band_frequencies", None)
        return fn() if fn is not None else None

    def band_to_linear(self) -> Tensor | None:
        """(n_fft // 2 + 1, F) map from per-bin masks to STFT bins (for sonification), when known."""
        fn = getattr(self.front_end, "band_to_linear", None)
        return fn() if fn is not None else None

    @property
    def stft_size(self) -> tuple[int, int] | None:
        """(n_fft, hop) of the front-end's frames, when it is STFT based."""
        n_fft, hop = getattr(self.front_end, "n_fft", None), getattr(self.front_end, "hop", None)
        return (n_fft, hop) if n_fft and hop else None

    def translate_target(self, target: int | str) -> int | str:
        """A target as :func:`spmm.targets.class_targets` takes it (here: unchanged)."""
        return target

    def to(self, device: torch.device | str) -> "AudioPipeline":
        self.front_end.to(device)
        self.model.to(device)
        return self


@dataclasses.dataclass
class WaveformPipeline(AudioPipeline):
    """A waveform model explained through STFT magnitudes with the clip's phase held
    constant (see :class:`~spmm.modalities.audio.frontends.PhaseLockedWaveformModel`).
    ``model`` maps waveforms (B, N) to logits; ``explained_model(waveform)`` maps
    magnitudes (B, T, F) to the same logits."""

    axis_name: str = "STFT bin"

    def display(self, inputs: Tensor) -> Tensor:
        """Log magnitude (dB) for drawing; the explained input stays the linear magnitude."""
        return 20 * torch.log10(inputs.clamp_min(1e-5))

    def explained_model(self, waveform: Tensor) -> PhaseLockedWaveformModel:
        front_end: STFTMagnitude = self.front_end
        with torch.no_grad():
            phase = front_end.phase(waveform)
        wrapper = PhaseLockedWaveformModel(self.model, phase, front_end.n_fft, front_end.hop, waveform.shape[-1])
        return wrapper.to(phase.device).eval()
