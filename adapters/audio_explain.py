"""Explaining clips with an :class:`~spmm.adapters.audio.AudioPipeline` in one call."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from torch import Tensor

import spmm
from spmm.adapters.audio import AudioPipeline, WaveformPipeline
from spmm.errors import SpmmInputError
from spmm.modalities.audio import check_waveform


@dataclasses.dataclass
class AudioExplanation:
    """Attributions on the explained time-frequency input of a batch of clips.

    Attributes
    ----------
    attributions: (B, T, F) — one value per frame and bin of ``inputs``.
    inputs: (B, T, F) — the explained input (log-mel, fbank or STFT magnitude).
    waveform: (B, N) — the clips.
    logits: (B, C) — the model's logits on the clips.
    targets: (B,) — the explained class per clip.
    method: the attribution method.
    """

    attributions: Tensor
    inputs: Tensor
    waveform: Tensor
    logits: Tensor
    targets: Tensor
    method: str

    def top_predictions(self, pipeline: AudioPipeline, k: int = 3) -> list[list[tuple[str, float]]]:
        """Per clip, the ``k`` most probable labels with their probabilities (softmax or sigmoid)."""
        probabilities = pipeline.probabilities(self.logits)
        values, indices = probabilities.topk(min(k, probabilities.shape[-1]), dim=-1)
        return [
            [(pipeline.labels[i], float(v)) for v, i in zip(row_v.tolist(), row_i.tolist())]
            for row_v, row_i in zip(values, indices)
        ]


def resolve_audio_targets(pipeline: AudioPipeline, target: int | str | Sequence[int | str], logits: Tensor) -> Tensor:
    """(B,) class indices from ``"top1"`` (each clip's most likely class), a label name, an index,
    or one of those per clip."""
    batch = logits.shape[0]
    items = list(target) if isinstance(target, (list, tuple)) else [target] * batch
    if len(items) != batch:
        raise SpmmInputError(f"got {len(items)} targets for {batch} clips")
    indices = []
    for row, item in enumerate(items):
        if isinstance(item, str) and item == "top1":
            indices.append(int(logits[row].argmax()))
        elif isinstance(item, str):
            indices.append(pipeline.label_index(item))
        elif isinstance(item, int) and 0 <= item < len(pipeline.labels):
            indices.append(item)
        else:
            raise SpmmInputError(f"target {item!r} is not 'top1', a label of {pipeline.name} or an index "
                                 f"in 0..{len(pipeline.labels) - 1}")
    return torch.tensor(indices, dtype=torch.long)


def explain_audio(
    pipeline: AudioPipeline,
    waveform: Tensor,
    target: int | str | Sequence[int | str] = "top1",
    method: str = "soft_pullback",
    **params: Any,
) -> AudioExplanation:
    """Explain clips (B, N) (or one clip (N,)) at the pipeline's sample rate.

    Waveform models are explained clip by clip, each with its own phase held constant.
    ``params`` go to :func:`spmm.explain` (e.g. ``steps=5``, ``seed=0``).
    """
    waveform = check_waveform(waveform)
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if isinstance(pipeline, WaveformPipeline):
        parts = [_explain_batch(pipeline, clip[None], target if isinstance(target, (str, int)) else [target[i]],
                                method, params) for i, clip in enumerate(waveform)]
        return AudioExplanation(
            *(torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(AudioExplanation)[:5]),
            method,
        )
    return _explain_batch(pipeline, waveform, target, method, params)


def _explain_batch(pipeline: AudioPipeline, waveform: Tensor, target, method: str, params: dict) -> AudioExplanation:
    inputs = pipeline.inputs(waveform)
    model = pipeline.explained_model(waveform)
    with torch.no_grad():
        logits = model(inputs)
    targets = resolve_audio_targets(pipeline, target, logits)
    explanation = spmm.explain(model, inputs, targets, method, **params)
    return AudioExplanation(explanation.attributions, inputs, waveform, logits, targets, method)
