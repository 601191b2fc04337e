"""``TranscriptionExplanation``: a speech-to-text model's transcript explained token by token on the
time-frequency bins of the clip (and, for decoders, on the tokens before each token).

It is the text :class:`~spmm.modalities.text.generation.GenerationExplanation` (rows = transcript
tokens; columns = the decoder's tokens before them, none for CTC models, whose tokens do not see
each other) with one map per row over the explained spectrogram: ``spectrogram_maps[r]`` (T, F) is
row r's attribution on the (T, F) input the model sees (log-mel bins for Whisper, STFT magnitudes
for waveform models), in the (time, frequency) order of every audio explanation.
``save("x.html")`` shows the transcript as a strip of tokens, each with its heatmap over the
spectrogram (one signed colour scale for every token), above the token matrix when there is one;
``save("x.wav")`` / ``save("x.png")`` are the audio modality's own renderings of the rows
(:meth:`per_token`: one sonified excerpt / spectrogram panel per token).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor

from spmm.errors import SpmmInputError

from spmm.modalities.text.generation import GenerationExplanation
from spmm.modalities.text.render import html_page
from spmm.modalities.text.token_maps import TokenMapsExplanation

from .explanation import AudioExplanation

STRIP_SIZE = (240, 96)
"""(width, height) in CSS pixels of each token's spectrogram in the HTML strip."""


@dataclasses.dataclass(repr=False)
class TranscriptionExplanation(TokenMapsExplanation):
    """A transcript explained on a clip's time-frequency bins (and on the tokens before each token).

    bin_maps: (R, T, F) each row's attribution on the explained time-frequency input.
    spectrogram: (T, F) what is drawn under the maps (the input; in dB for STFT magnitudes).
    bins: (T, F) the explained input itself.
    waveform: (N,) the explained excerpt at ``sample_rate`` Hz; offset: its start in seconds.
    frame_seconds, band_frequencies, axis_name, stft_size, band_to_linear: as in
        :class:`~spmm.modalities.audio.explanation.AudioExplanation`.
    The other fields are those of :class:`GenerationExplanation`; ``continuation`` is the transcript.
    """

    bin_maps: Tensor | None = None
    spectrogram: Tensor | None = None
    bins: Tensor | None = None
    waveform: Tensor | None = None
    sample_rate: int = 16000
    offset: float = 0.0
    frame_seconds: float = 0.01
    band_frequencies: Tensor | None = None
    axis_name: str = "bin"
    stft_size: tuple[int, int] | None = None
    band_to_linear: Tensor | None = None

    modality: ClassVar[str] = "speech-to-text"
    strip_width: ClassVar[int] = STRIP_SIZE[0]
    units: ClassVar[str] = "tokens x time-frequency bins, tokens x tokens"

    @classmethod
    def of(cls, text: GenerationExplanation, bin_maps: Tensor, bins: Tensor,
           audio: dict[str, Any]) -> "TranscriptionExplanation":
        """``text`` (the token rows and their matrix) with the maps ``bin_maps`` (R, T, F) on the
        explained input ``bins`` (T, F) of the audio modality's context ``audio`` (its ``pipeline``,
        ``waveform`` (1, N) and ``offset``)."""
        pipeline = audio["pipeline"]
        frequencies, band_to_linear = pipeline.band_frequencies(), pipeline.band_to_linear()
        return cls(**{f.name: getattr(text, f.name) for f in dataclasses.fields(text)}, bin_maps=bin_maps, bins=bins,
                   spectrogram=pipeline.display(bins.unsqueeze(0))[0].cpu(), waveform=audio["waveform"][0].cpu(),
                   sample_rate=pipeline.sample_rate, offset=audio["offset"], frame_seconds=pipeline.frame_seconds,
                   band_frequencies=frequencies.cpu() if frequencies is not None else None,
                   axis_name=pipeline.axis_name, stft_size=pipeline.stft_size,
                   band_to_linear=band_to_linear.cpu() if band_to_linear is not None else None)

    @property
    def spectrogram_maps(self) -> Tensor:
        """(R, T, F) each transcript token's map on the time-frequency bins."""
        return self.bin_maps

    @property
    def transcript(self) -> str:
        return self.continuation

    @property
    def renderings(self) -> tuple[str, ...]:
        """HTML (the token strip), PNG and, for STFT-based front-ends, WAV (:meth:`per_token`)."""
        return (".html", *self.per_token().renderings)

    def per_token(self, rows: Sequence[int] | None = None) -> AudioExplanation:
        """The rows (all, or those listed in ``rows``) as an :class:`AudioExplanation` of one copy of
        the clip per row, the row's attribution on its copy: its PNG (one spectrogram panel per token)
        and WAV (each token's sonified clip, one after the other)."""
        chosen = list(range(self.bin_maps.shape[0])) if rows is None else list(rows)
        count = len(chosen)
        copies = self.bins.unsqueeze(0).expand(count, -1, -1)
        tokens = [self.row_tokens[r] for r in chosen]
        return AudioExplanation(
            self.bin_maps[chosen], copies, self.target, self.method, self.params, None,
            self.row_scores[chosen] if self.row_scores is not None else None, rules=self.rules,
            sources=[f"{self.source(0)} · {token}" for token in tokens], model_name=self.model_name,
            labels=tokens, waveform=self.waveform.unsqueeze(0).expand(count, -1),
            sample_rate=self.sample_rate, offset=self.offset, frame_seconds=self.frame_seconds,
            band_frequencies=self.band_frequencies, axis_name=self.axis_name,
            display=self.spectrogram.unsqueeze(0).expand(count, -1, -1), stft_size=self.stft_size,
            band_to_linear=self.band_to_linear,
        )

    def aggregate(self, by: str = "words") -> "TranscriptionExplanation":
        """Tokens merged into words (``"words"``, decoders): the matrix as
        :meth:`GenerationExplanation.aggregate` merges it and each word's map the sum of its tokens'
        maps; ``"tokens"``: this explanation.  CTC transcripts have no token columns: their rows stay."""
        if by != "tokens" and not self.context_tokens:
            raise SpmmInputError("a CTC transcript's rows are its output tokens (no token matrix to merge into words); "
                                 "aggregate(by='tokens') keeps them")
        merged = super().aggregate(by)
        if merged is self:
            return self
        row_word = [self.context_words[c] if c < len(self.context_words) else None for c in self.row_columns]
        groups = [[r for r, w in enumerate(row_word) if w == word] for word in dict.fromkeys(row_word) if word is not None]
        maps = torch.stack([self.bin_maps[rows].sum(0) for rows in groups]) if groups else self.bin_maps[:0]
        return dataclasses.replace(merged, bin_maps=maps)

    def item_extra(self, index: int) -> dict[str, Any]:
        """The generation fields plus the maps (R × T × F, rounded), the transcript and the audio axes."""
        maps = self.bin_maps.detach().cpu().double()
        frequencies = self.band_frequencies
        return {**super().item_extra(index), "transcript": self.transcript, "spectrogram_shape": list(maps.shape[1:]),
                "spectrogram_maps": np.round(maps.numpy(), 8).tolist(), "frame_seconds": self.frame_seconds,
                "offset_seconds": self.offset, "sample_rate": self.sample_rate, "axis": self.axis_name,
                "band_frequencies": [round(float(f), 3) for f in frequencies] if frequencies is not None else None}

    def _heading(self) -> str:
        before = " and on the tokens before it" if self.context_tokens else ""
        return (f"{self.method} on {self.model_name or 'speech-to-text model'}: each transcript token explained "
                f"on the time-frequency bins{before}")

    def shown_maps(self) -> Tensor:
        """Frequency up, time to the right: (R, F, T)."""
        return self.bin_maps.transpose(1, 2).flip(1)

    def background(self) -> np.ndarray:
        shown = self.spectrogram.detach().cpu().double()
        return ((shown - shown.min()) / float(shown.max() - shown.min() or 1.0)).T.flip(0).numpy()

    def figure_height(self, width: int) -> int:
        """The strip's aspect ratio (:data:`STRIP_SIZE`)."""
        return round(width * STRIP_SIZE[1] / STRIP_SIZE[0])

    def html(self) -> str:
        """The token strip over the spectrogram, then the tokens × tokens matrix (decoders)."""
        return self.strip_html() + (super().html() if self.context_tokens else "")

    def save_formats(self) -> dict[str, Any]:
        return {**super().save_formats(), ".png": self._save_audio, ".wav": self._save_audio}

    def _save_audio(self, path: Path) -> None:
        self.per_token().save(path)

    def _save_html(self, path: Path) -> None:
        path.write_text(html_page([self.html()], f"{self.method} — {self.model_name or 'speech-to-text model'}"),
                        encoding="utf-8")

    def summary(self) -> str:
        """The transcript and, per token, the time and bin where its map is largest."""
        lines = [f"{self.method} on {self.model_name or 'speech-to-text model'}: transcript {self.transcript!r}"]
        for r, token in enumerate(self.row_tokens):
            flat = int(self.bin_maps[r].abs().argmax())
            frame, band = divmod(flat, self.bin_maps.shape[-1])
            seconds = self.offset + frame * self.frame_seconds
            lines.append(f"  {token!r}: strongest bin at {seconds:.2f} s, {self.axis_name} {band} "
                         f"({float(self.bin_maps[r, frame, band]):+.3g})")
        return "\n".join(lines)

    def _show_inline(self) -> None:
        from IPython.display import HTML, display

        display(HTML(self.html()))
        self.per_token()._show_inline()


def no_token_matrix(rows: int) -> Tensor:
    """(1, rows, 0): the token matrix of a model whose transcript tokens see no earlier tokens (CTC)."""
    return torch.zeros(1, rows, 0)
