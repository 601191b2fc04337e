"""``AudioExplanation``: attributions on time-frequency bins, spectrogram PNGs, sonified WAVs and
frame/band/patch aggregation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.explanation import Explanation, GroupedExplanation

AGGREGATIONS = ("frames", "bands", "patches")
PATCH_FRAMES, PATCH_BINS = 10, 8
WAV_GAP_SECONDS = 0.25


@dataclasses.dataclass(repr=False)
class AudioExplanation(Explanation):
    """Explanation of clips on the (B, T, F) time-frequency input their model sees (log-mel bins,
    fbank bins or STFT magnitudes); ``scores`` are the (T, F) attributions of each clip.

    Extra attributes
    ----------------
    waveform: (B, N) the explained excerpts at ``sample_rate`` Hz.
    offset: where the excerpts start in their sources, in seconds.
    frame_seconds: seconds between two frames.
    band_frequencies: (F,) centre frequency of each bin in Hz, when known.
    axis_name: what the F axis is ("mel band", "STFT bin"…).
    display: (B, T, F) what is drawn under the attribution (the input, in dB for magnitudes).
    stft_size: (n_fft, hop) of the front-end's frames, when STFT based (needed for WAVs).
    band_to_linear: (n_fft // 2 + 1, F) map from per-bin masks to STFT bins (needed for WAVs).
    """

    waveform: Tensor | None = None
    sample_rate: int = 16000
    offset: float = 0.0
    frame_seconds: float = 0.01
    band_frequencies: Tensor | None = None
    axis_name: str = "bin"
    display: Tensor | None = None
    stft_size: tuple[int, int] | None = None
    band_to_linear: Tensor | None = None

    modality: ClassVar[str] = "audio"
    units: ClassVar[str] = "time-frequency bins"

    @property
    def renderings(self) -> tuple[str, ...]:
        """PNG, and a WAV of what mattered when the front-end is STFT based (fbank front-ends: PNG only)."""
        sonifiable = self.waveform is not None and self.stft_size is not None and self.band_to_linear is not None
        return (".png", ".wav") if sonifiable else (".png",)

    def item_extra(self, index: int) -> dict[str, Any]:
        """Frame spacing, excerpt start, sample rate, the F axis and its frequencies (Hz)."""
        frequencies = self.band_frequencies
        return {
            "frame_seconds": self.frame_seconds,
            "offset_seconds": self.offset,
            "sample_rate": self.sample_rate,
            "axis": self.axis_name,
            "band_frequencies": [round(float(f), 3) for f in frequencies] if frequencies is not None else None,
        }

    def aggregate(self, by: str = "patches", frames: int | None = None, bins: int | None = None) -> GroupedExplanation:
        """Attributions summed over larger units (edge groups may be smaller), as the attributions of
        a :class:`~spmm.GroupedExplanation`:

        - ``"frames"``: runs of ``frames`` frames (default 1), all bins -> (B, ⌈T/frames⌉);
        - ``"bands"``: runs of ``bins`` bins (default 1), all frames -> (B, ⌈F/bins⌉);
        - ``"patches"``: ``frames`` × ``bins`` patches (default 10 × 8) -> (B, ⌈T/frames⌉, ⌈F/bins⌉).
        """
        from .groups import group_scores, tf_patches

        batch, length, width = self.attributions.shape
        if by == "frames":
            frames, bins = 1 if frames is None else frames, width
        elif by == "bands":
            frames, bins = length, 1 if bins is None else bins
        elif by == "patches":
            frames, bins = PATCH_FRAMES if frames is None else frames, PATCH_BINS if bins is None else bins
        else:
            raise SpmmInputError(f"audio explanations aggregate by {', '.join(map(repr, AGGREGATIONS))}, not {by!r}")
        scores = group_scores(self.attributions, tf_patches((length, width), frames, bins))
        rows, columns = -(-length // frames), -(-width // bins)
        return self.grouped(by, scores.reshape(batch, rows, columns) if by == "patches" else scores)

    def save_formats(self) -> dict[str, Any]:
        return {**super().save_formats(), ".png": self._save_png, ".wav": self._save_wav}

    def _save_png(self, path: Path) -> None:
        """The explained spectrogram with the signed attribution and its time profile, one clip under the other."""
        from .render import render_explanation

        shown = self.display if self.display is not None else self.inputs
        render_explanation(path, shown.cpu(), self.attributions.cpu(), frame_seconds=self.frame_seconds,
                           band_frequencies=self.band_frequencies, title=[self._title(i) for i in range(len(self))],
                           axis_name=self.axis_name)

    def _title(self, index: int) -> str:
        return f"{Path(self.source(index)).name}: {self.method} for '{self.target_label(index)}' ({self.model_name})"

    def sonified(self) -> Tensor:
        """(B, N): each clip filtered by its positive attribution mask (:func:`~.render.sonify`)."""
        from .render import sonify

        if self.waveform is None or self.stft_size is None or self.band_to_linear is None:
            raise SpmmInputError("this explanation cannot be sonified: its front-end is not STFT based")
        n_fft, hop = self.stft_size
        return torch.stack([
            sonify(clip, attribution, n_fft=n_fft, hop=hop, band_to_linear=self.band_to_linear)
            for clip, attribution in zip(self.waveform.cpu(), self.attributions.cpu())
        ])

    def _save_wav(self, path: Path) -> None:
        """The sonified clips, one after the other with 0.25 s of silence between them."""
        from .io import save_wav

        gap = torch.zeros(round(WAV_GAP_SECONDS * self.sample_rate))
        parts = [part for clip in self.sonified() for part in (clip, gap)][:-1]
        save_wav(path, torch.cat(parts), self.sample_rate)

    def _show_inline(self) -> None:
        import tempfile

        from IPython.display import Audio, Image, display

        with tempfile.TemporaryDirectory() as folder:
            path = self.save(Path(folder) / "explanation.png")
            display(Image(filename=str(path)))
        if self.stft_size is not None and self.band_to_linear is not None:
            for clip in self.sonified():
                display(Audio(clip.numpy(), rate=self.sample_rate))
