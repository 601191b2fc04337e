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


ASCENT_METHODS = ("pullback_ascent", "gradient_ascent")
NOISE_METHODS = ("smoothgrad", "smooth_pullback", "fusiongrad", "fusion_pullback")


def audio_method_params(method: str, inputs: Tensor) -> dict[str, Any]:
    """Scale-dependent defaults of the image protocol (SPEC §3, inputs in [−1, 1]) translated to a
    time-frequency input (B, T, F) with another range:

    - ascent: clip to the batch's observed range [min, max] instead of [−1, 1], and step
      α = 0.1·‖x − mean(x)‖₂ (mean over the batch), about what α = 20 is for a 224² image;
    - SmoothGrad/FusionGrad: noise σ = 0.075·(max − min), as σ = 0.15 is for a range of 2.
    Other methods get no override (their zero baseline is silence for honk, musicnn and
    STFT magnitudes).
    """
    low, high = float(inputs.min()), float(inputs.max())
    if method in ASCENT_METHODS:
        centred = (inputs - inputs.mean(dim=(1, 2), keepdim=True)).flatten(1).norm(dim=1).mean()
        return {"step_size": 0.1 * float(centred), "bounds": (low, high)}
    if method in NOISE_METHODS:
        return {"noise": 0.075 * (high - low)}
    return {}


def explain_audio(
    pipeline: AudioPipeline,
    waveform: Tensor,
    target: int | str | Sequence[int | str] = "top1",
    method: str = "soft_pullback",
    **params: Any,
) -> AudioExplanation:
    """Explain clips (B, N) (or one clip (N,)) at the pipeline's sample rate.

    Waveform models are explained clip by clip, each with its own phase held constant.
    ``params`` go to :func:`spmm.explain` (e.g. ``steps=5``, ``seed=0``) and take precedence
    over :func:`audio_method_params`.
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
    explanation = spmm.explain(model, inputs, targets, method, **{**audio_method_params(method, inputs), **params})
    return AudioExplanation(explanation.attributions, inputs, waveform, logits, targets, method)
