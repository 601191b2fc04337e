"""The audio modality: audio files or waveforms -> the time-frequency tensor a model is explained on.

A modality instance holds the model's pipeline (front-end, explained model, labels, sample
rate: :class:`spmm.modalities.audio.pipeline.AudioPipeline`); ``spmm.load("honk-res8", ...)``
builds both.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation
from spmm.load import register_modality
from spmm.ruleset import RuleSet, get_ruleset

from .explanation import AudioExplanation

ASCENT_METHODS = ("pullback_ascent", "gradient_ascent")
NOISE_METHODS = ("smoothgrad", "smooth_pullback", "fusiongrad", "fusion_pullback")


def audio_method_params(method: str) -> dict[str, Any]:
    """Scale-dependent defaults of the image protocol (SPEC §3, inputs in [−1, 1]) translated to a
    time-frequency input (B, T, F) with another range, per sample (so a clip gets the same result
    alone or in any batch):

    - ascent: clip each clip to its own range [min, max] instead of [−1, 1], and step
      α = 0.1·‖x − mean(x)‖₂ of that clip, about what α = 20 is for a 224² image;
    - SmoothGrad/FusionGrad: noise σ = 0.075·(max − min) of that clip, as σ = 0.15 is for a range of 2.
    Other methods get no override (their zero baseline is silence for honk, musicnn and
    STFT magnitudes).
    """
    if method in ASCENT_METHODS:
        return {"step_size": 0.1, "step_relative": True, "bounds": "sample"}
    if method in NOISE_METHODS:
        return {"noise": 0.075, "noise_relative": True}
    return {}


class AudioModality:
    """Clips as the (B, T, F) time-frequency input of ``pipeline``'s explained model.

    pipeline: an :class:`~spmm.modalities.audio.pipeline.AudioPipeline` (front-end, model, labels,
    sample rate, clip length).
    """

    name = "audio"

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def prepare(
        self,
        model: Any,
        inputs: Any,
        sample_rate: int | None = None,
        offset: float = 0.0,
        duration: float | None = None,
        max_seconds: float | None = None,
    ) -> Prepared:
        """Cut, check and transform clips for the pipeline's model (``model`` is that model, as
        :class:`spmm.Explainable` passes it; its device is where the inputs go).

        inputs: an audio file path, a waveform (N,) or (B, N) in [−1, 1] (tensor or NumPy array), or
            a list of paths / (N,) waveforms.  Files are read at their own rate, stereo is averaged to mono.
        sample_rate: Hz of waveform tensors (default: the model's rate); another rate is resampled.
        offset: start of the explained excerpt in seconds; must lie inside every clip.
        duration: excerpt length in seconds (default: the model's clip length, or the rest of the
            clip for any-length models); a clip ending earlier is zero-padded, as are clips
            shorter than a fixed-length model's input (Speech Commands convention).
        max_seconds: most audio explained at once, all clips together (default: the pipeline's
            limit, e.g. 10 s for CREPE); more is refused with a message.
        Returns :class:`spmm.Prepared` with inputs (B, T, F) and context ``waveform`` (B, N)
        (the excerpts), ``pipeline`` and ``offset`` (seconds).
        """
        from .io import pad_or_crop

        pipeline = self.pipeline
        rate = pipeline.sample_rate
        clips, sources = self._clips(inputs, sample_rate)
        start = _seconds(offset, "offset", allow_zero=True)
        start_sample = round(start * rate)
        for clip, source in zip(clips, sources):
            if start_sample >= clip.shape[-1]:
                raise SpmmInputError(
                    f"offset {start:g} s is outside {source}, which is {clip.shape[-1] / rate:.3f} s long"
                )
        length = self._length(clips, sources, start_sample, duration, max_seconds)
        excerpts = [pad_or_crop(clip, length, offset=start_sample) for clip in clips]
        if pipeline.clip_samples is not None:
            excerpts = [pad_or_crop(excerpt, pipeline.clip_samples) for excerpt in excerpts]
        waveform = torch.stack(excerpts)
        device = _device(model)
        pipeline.front_end.to(device)
        on_device = waveform.to(device)
        return Prepared(
            pipeline.inputs(on_device), pipeline.explained_model(on_device), sources,
            {"waveform": waveform, "pipeline": pipeline, "offset": start},
        )

    def _clips(self, inputs: Any, sample_rate: int | None) -> tuple[list[Tensor], list[str]]:
        """Mono clips (N_i,) at the pipeline's rate, and a name for each."""
        from .io import check_waveform, load_audio, resample

        rate = self.pipeline.sample_rate
        if isinstance(inputs, np.ndarray):
            inputs = torch.from_numpy(np.ascontiguousarray(inputs))
        if isinstance(inputs, Tensor):
            waveform = check_waveform(inputs)
            items: list[Any] = list(waveform[None] if waveform.dim() == 1 else waveform)
        else:
            items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise SpmmInputError("no audio given")
        clips, sources = [], []
        for i, item in enumerate(items):
            if isinstance(item, (str, Path)):
                clips.append(load_audio(item, rate))
                sources.append(str(item))
            elif isinstance(item, np.ndarray) and item.ndim == 1:
                clips.append(resample(check_waveform(torch.from_numpy(item), f"clip {i}"), sample_rate or rate, rate))
                sources.append(f"clip {i}")
            elif isinstance(item, Tensor) and item.dim() == 1:
                clips.append(resample(check_waveform(item, f"clip {i}"), sample_rate or rate, rate))
                sources.append(f"clip {i}")
            else:
                raise SpmmInputError(
                    f"cannot explain a {type(item).__name__} as audio; give file paths or waveforms (N,) / (B, N)"
                )
        return clips, sources

    def _length(self, clips: Sequence[Tensor], sources: Sequence[str], start_sample: int, duration: float | None,
                max_seconds: float | None) -> int:
        """Samples per explained excerpt, checked against the model's clip length and limit."""
        pipeline = self.pipeline
        rate = pipeline.sample_rate
        fixed = pipeline.clip_samples
        if duration is not None:
            length = round(_seconds(duration, "duration") * rate)
            if length < 1:
                raise SpmmInputError(f"duration {duration:g} s is shorter than one sample at {rate} Hz")
            if fixed is not None and length > fixed:
                raise SpmmInputError(
                    f"{pipeline.name} explains clips of {fixed / rate:g} s; give duration <= {fixed / rate:g} "
                    "and pick the excerpt with offset"
                )
        elif fixed is not None:
            length = fixed
        else:
            remaining = {clip.shape[-1] - start_sample for clip in clips}
            if len(remaining) > 1:
                raise SpmmInputError(
                    f"the clips ({', '.join(sources)}) have different lengths; give duration= to explain "
                    "equal excerpts"
                )
            length = remaining.pop()
        limit = max_seconds if max_seconds is not None else pipeline.max_seconds
        if limit is not None and len(clips) * length > limit * rate:
            raise SpmmInputError(
                f"{pipeline.name} explains at most {limit:g} s of audio at a time ({len(clips)} × "
                f"{length / rate:.1f} s asked): pick excerpts with offset= and duration=, explain fewer clips at "
                "once, or raise max_seconds= if the memory is there"
            )
        return length

    def bind_target(self, target: Any, prepared: Prepared) -> Any:
        """The hook of :meth:`spmm.Explainable.explain`: targets in the pipeline's own terms (CREPE:
        ``"440Hz"``) as class targets (see :meth:`translate_targets`)."""
        return self.translate_targets(target)

    def translate_targets(self, target: Any) -> Any:
        """Targets in the pipeline's own terms (CREPE: "440Hz") -> what ``class_targets`` takes."""
        if isinstance(target, (str, int)):
            return self.pipeline.translate_target(target)
        if isinstance(target, (list, tuple)):
            return [self.pipeline.translate_target(t) if isinstance(t, (str, int)) else t for t in target]
        return target

    def method_params(self, method: str, inputs: Tensor, model: Any) -> dict[str, Any]:
        return audio_method_params(method)

    # -- benchmark protocol (SPEC §5) -------------------------------------------
    bench_kinds = {
        "faithfulness": ["infidelity", "faithfulness_correlation", "deletion_auc", "max_sensitivity", "random_logit"],
        "focus": ["focus"],
    }
    """``spmm bench KIND`` -> its default metrics (TF-patch faithfulness; Focus on audio mosaics)."""

    def bench_batches(self, model: Any, data: str | Path, kind: str, n: int, batch_size: int, seed: int,
                      labels: Sequence[str] | None = None) -> list:
        """Batches of a labelled clip folder (``kind`` faithfulness) or of audio mosaics built from it
        (focus), for this modality's pipeline (``model`` is its model); see :func:`.bench.bench_batches`."""
        from .bench import bench_batches

        return bench_batches(self.pipeline, data, kind, n, batch_size, seed)

    def bench_metrics(self, names: Sequence[str], batches: Sequence, seed: int,
                      overrides: dict[str, dict[str, Any]] | None = None) -> dict:
        """The audio metric settings on these batches (see :func:`.bench.audio_metric_specs`)."""
        from .bench import audio_metric_specs

        return audio_metric_specs(names, batches, seed, overrides)

    def explanation(self, base: Explanation, prepared: Prepared) -> AudioExplanation:
        pipeline = prepared.context["pipeline"]
        frequencies, band_to_linear = pipeline.band_frequencies(), pipeline.band_to_linear()
        return base.recast(
            AudioExplanation,
            waveform=prepared.context["waveform"],
            sample_rate=pipeline.sample_rate,
            offset=prepared.context["offset"],
            frame_seconds=pipeline.frame_seconds,
            band_frequencies=frequencies.cpu() if frequencies is not None else None,
            axis_name=pipeline.axis_name,
            display=pipeline.display(base.inputs).cpu(),
            stft_size=pipeline.stft_size,
            band_to_linear=band_to_linear.cpu() if band_to_linear is not None else None,
        )


def _seconds(value: Any, what: str, allow_zero: bool = False) -> float:
    """A finite time in seconds, positive (or >= 0 with ``allow_zero``)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SpmmInputError(f"{what} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise SpmmInputError(f"{what} must be a finite number of seconds {bound}, got {value!r}")
    return seconds


def _device(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        for parameter in model.parameters():
            return parameter.device
    return torch.device("cpu")


class AudioExplainable(Explainable):
    """An audio model ready to be explained; targets may also be given in the pipeline's terms
    (CREPE: a frequency such as ``"440Hz"``; :meth:`AudioModality.bind_target` translates them).
    Excerpts are chosen with ``prepare_options={"offset": s, "duration": s, "sample_rate": hz}``."""


def audio_explainable(pipeline: Any, rules: RuleSet | str = "audio") -> AudioExplainable:
    """The :class:`AudioExplainable` of a pipeline (its model, labels and multi-label flag)."""
    ruleset = get_ruleset(rules) if isinstance(rules, str) else rules
    labels = list(pipeline.labels) or None
    return AudioExplainable(pipeline.model, AudioModality(pipeline), ruleset, labels, pipeline.name,
                            multi_label=pipeline.multi_label)


def wrap_audio_model(
    module: nn.Module,
    front_end: nn.Module,
    labels: Sequence[str] | None = None,
    sample_rate: int = 16000,
    clip_seconds: float | None = None,
    multi_label: bool = False,
    waveform: bool = False,
    rules: RuleSet | str = "audio",
    name: str = "",
) -> AudioExplainable:
    """``spmm.load(module, modality="audio", front_end=...)``: a user's audio classifier.

    front_end: waveform (B, N) -> the explained input (B, T, F) with a ``hop`` attribute (e.g.
        :class:`~spmm.modalities.audio.frontends.LogMel`); ``module`` maps that input to logits —
        or, with ``waveform=True``, maps waveforms to logits and ``front_end`` is an
        :class:`~spmm.modalities.audio.frontends.STFTMagnitude` (explained through the phase-locked
        inverse STFT).
    clip_seconds: the fixed clip length the model takes (None: any length).
    """
    from .pipeline import AudioPipeline, WaveformPipeline

    if waveform and not hasattr(front_end, "phase"):
        raise SpmmInputError("waveform=True needs front_end=STFTMagnitude(...) (it gives the clip's phase)")
    clip_samples = round(clip_seconds * sample_rate) if clip_seconds is not None else None
    pipeline = (WaveformPipeline if waveform else AudioPipeline)(
        name or type(module).__name__, front_end, module, tuple(labels or ()), sample_rate, clip_samples,
        multi_label=multi_label,
    )
    return audio_explainable(pipeline, rules)


register_modality("audio", wrap_audio_model)
