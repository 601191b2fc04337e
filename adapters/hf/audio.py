"""Hugging Face audio classifiers (AST, Whisper encoder, Wav2Vec2, HuBERT, WavLM…) on time-frequency bins.

>>> m = spmm.load("./ast_dir")                 # a save_pretrained folder with its feature extractor
>>> ex = m.explain("clip.wav")                 # attributions (B, T, F), labels from config.id2label

The saved feature extractor picks the front-end (:data:`FRONT_ENDS`), each equal to the
extractor's own computation, so the explained input is what the model sees:

- ``ASTFeatureExtractor``: Kaldi fbank cut / zero-padded to ``max_length`` frames, (x − mean)/(2·std)
  (:class:`~spmm.modalities.audio.frontends.KaldiFbank`); attributions on fbank bins;
- ``WhisperFeatureExtractor``: the clip padded to ``n_samples``, log-mel (n_fft 400, hop 160, Slaney
  mel), log10, floor at the clip's maximum − 8, (x + 4)/4
  (:class:`~spmm.modalities.audio.frontends.LogMel` with ``log="whisper"``); explained as (B, T, F),
  handed to the encoder as the (B, F, T) ``input_features`` it takes;
- ``Wav2Vec2FeatureExtractor`` (Wav2Vec2, HuBERT, WavLM, …: waveform models): explained on STFT
  magnitudes through the phase-locked inverse STFT
  (:class:`~spmm.modalities.audio.pipeline.WaveformPipeline`); the extractor's zero-mean unit-variance
  normalisation (``do_normalize``) runs inside the explained model as a ``layer_norm`` over time,
  so its statistics are held constant like every normalisation's (SPEC §2).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable

from .preprocessors import saved_preprocessor
from .tasks import register_hf_task, source_name
from .vision import config_labels

WAV2VEC2_NORM_EPS = 1e-7
"""Added to the variance by ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``."""
WAVEFORM_STFT = (512, 128)
"""(n_fft, hop) of the STFT waveform models are explained through (as for CREPE)."""
WAVEFORM_MAX_SECONDS = 30.0
"""Most audio a waveform model explains at once by default (``max_seconds=`` raises it)."""
WAVEFORM_CLASSIFIERS = tuple(
    f"{family}ForSequenceClassification"
    for family in ("Wav2Vec2", "Wav2Vec2Conformer", "Hubert", "WavLM", "Data2VecAudio", "UniSpeech", "UniSpeechSat",
                   "SEW", "SEWD")
)
"""Exact names: the text task serves the suffix ``ForSequenceClassification``."""


class WhisperFeaturesLogits(nn.Module):
    """``WhisperForAudioClassification`` on log-mel features (B, T, F) -> logits (B, C); the
    encoder takes ``input_features`` as (B, F, T)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.whisper = model
        self.training = model.training

    def forward(self, features: Tensor) -> Tensor:
        return self.whisper(input_features=features.transpose(1, 2)).logits


class WaveformLogits(nn.Module):
    """A waveform classifier (Wav2Vec2, HuBERT…) on waveforms (B, N) -> logits (B, C), after the
    feature extractor's per-clip zero-mean unit-variance normalisation when ``normalize``."""

    def __init__(self, model: nn.Module, normalize: bool) -> None:
        super().__init__()
        self.classifier = model
        self.normalize = normalize
        self.training = model.training

    def forward(self, waveform: Tensor) -> Tensor:
        if self.normalize:
            waveform = nn.functional.layer_norm(waveform, waveform.shape[-1:], eps=WAV2VEC2_NORM_EPS)
        return self.classifier(input_values=waveform).logits


def _ast(model: nn.Module, extractor: Any, name: str) -> Any:
    from spmm.adapters.audio.pipelines import ast_pipeline

    config = model.config
    if (extractor.num_mel_bins, extractor.max_length) != (config.num_mel_bins, config.max_length):
        raise SpmmInputError(
            f"{name}: the feature extractor makes {extractor.max_length}×{extractor.num_mel_bins} fbanks, the model "
            f"takes {config.max_length}×{config.num_mel_bins}"
        )
    mean, std = (extractor.mean, extractor.std) if extractor.do_normalize else (0.0, 0.5)
    return ast_pipeline(model, extractor.sampling_rate, mean, std, name=name)


def _whisper(model: nn.Module, extractor: Any, name: str) -> Any:
    from spmm.modalities.audio.frontends import LogMel
    from spmm.modalities.audio.pipeline import AudioPipeline

    frames = 2 * model.config.max_source_positions
    if extractor.nb_max_frames != frames or extractor.feature_size != model.config.num_mel_bins:
        raise SpmmInputError(
            f"{name}: the feature extractor makes {extractor.feature_size} mel bands × {extractor.nb_max_frames} "
            f"frames, the encoder takes {model.config.num_mel_bins} × {frames}"
        )
    front_end = LogMel(extractor.sampling_rate, extractor.n_fft, extractor.hop_length, extractor.feature_size,
                       0.0, 8000.0, log="whisper")
    return AudioPipeline(name, front_end, WhisperFeaturesLogits(model), tuple(config_labels(model.config)),
                         extractor.sampling_rate, extractor.n_samples, multi_label=_multi_label(model))


def _waveform(model: nn.Module, extractor: Any, name: str) -> Any:
    from spmm.modalities.audio.frontends import STFTMagnitude
    from spmm.modalities.audio.pipeline import WaveformPipeline

    rate = extractor.sampling_rate
    return WaveformPipeline(name, STFTMagnitude(rate, *WAVEFORM_STFT),
                            WaveformLogits(model, bool(getattr(extractor, "do_normalize", False))),
                            tuple(config_labels(model.config)), rate, None, multi_label=_multi_label(model),
                            max_seconds=WAVEFORM_MAX_SECONDS)


def _multi_label(model: nn.Module) -> bool:
    return getattr(model.config, "problem_type", None) == "multi_label_classification"


FRONT_ENDS: dict[str, Callable[[nn.Module, Any, str], Any]] = {
    "ASTFeatureExtractor": _ast,
    "WhisperFeatureExtractor": _whisper,
    "Wav2Vec2FeatureExtractor": _waveform,
}
"""Feature-extractor class -> the pipeline (front-end + explained model) reproducing it."""


def load_feature_extractor(source: str | None, feature_extractor: Any, model: nn.Module) -> Any:
    """The feature extractor given (``feature_extractor=``) or saved next to the model in ``source``."""
    return saved_preprocessor(source, feature_extractor, model, "feature_extractor", "feature extractor",
                              "AutoFeatureExtractor")

@register_hf_task("audio-classification", ("ForAudioClassification", *WAVEFORM_CLASSIFIERS))
def load_audio_classifier(model: nn.Module, source: str | None, feature_extractor: Any = None,
                          labels: Sequence[str] | None = None) -> Explainable:
    """An audio classifier explained on time-frequency bins with the audio rule set.

    feature_extractor: the model's feature extractor (default: the one saved in its folder); its
        class picks the front-end (:data:`FRONT_ENDS`).
    labels: class names (default: ``config.id2label``).
    """
    from spmm.modalities.audio.modality import audio_explainable

    extractor = load_feature_extractor(source, feature_extractor, model)
    kind = type(extractor).__name__
    if kind not in FRONT_ENDS:
        raise SpmmInputError(
            f"no spmm front-end reproduces {kind}; supported feature extractors: {', '.join(FRONT_ENDS)}"
        )
    pipeline = FRONT_ENDS[kind](model, extractor, source_name(source, model))
    if labels is not None:
        pipeline.labels = tuple(labels)
    return audio_explainable(pipeline)
