"""Conformance of Hugging Face audio classifiers (Wav2Vec2, HuBERT, WavLM, Data2VecAudio, AST, Whisper
encoder): each tiny architecture, saved with its feature extractor, loads with ``spmm.load(folder)``;
the model's output on spmm's prepared input equals the model on the feature extractor's output;
the forward is bit-identical under the rules; the audit is clean; units and shapes are right."""

from __future__ import annotations

import os

import pytest
import torch

import spmm

from tests.audio.audio_signals import speechlike
from tests.forward_checks import forward_with_and_without_rules
from tests.hf.vision_models import AUDIO_CELLS, AUDIO_LABELS, RATE, save_audio_cell

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RELATIVE = 1e-5
"""‖spmm's logits − the extractor pipeline's logits‖ / ‖the pipeline's‖ (waveform models pass an
inverse STFT of the STFT: ~1e-7)."""


@pytest.fixture(scope="session")
def audio_models(tmp_path_factory):
    """name -> (spmm model, the feature extractor loaded as a user would), built on first use."""
    cache: dict[str, tuple] = {}

    def load(name: str):
        if name not in cache:
            folder = tmp_path_factory.mktemp(f"hf-{name}")
            save_audio_cell(transformers, name, folder)
            extractor = transformers.AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
            cache[name] = (spmm.load(str(folder)), extractor)
        return cache[name]

    return load


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    """One second of a speech-like signal (16 kHz)."""
    return speechlike(1.0, RATE, seed=3)


def _hf_model(m):
    return next(module for module in m.model.modules() if type(module).__module__.startswith("transformers."))


@pytest.mark.parametrize("name", AUDIO_CELLS)
def test_logits_on_spmm_input_equal_the_feature_extractor_pipeline(audio_models, clip, name):
    m, extractor = audio_models(name)
    assert m.labels == [AUDIO_LABELS[i] for i in range(len(AUDIO_LABELS))]
    key = AUDIO_CELLS[name].input_name
    features = extractor(clip.numpy(), sampling_rate=RATE, return_tensors="pt")[key].float()
    prepared = m.prepare(clip)
    with torch.no_grad():
        reference = _hf_model(m)(**{key: features}).logits
        ours = prepared.model(prepared.inputs)
    assert float((ours - reference).norm() / reference.norm()) <= RELATIVE


@pytest.mark.parametrize("name", AUDIO_CELLS)
def test_forward_bit_identical_under_the_rules_audit_clean_units_and_shape(audio_models, clip, name):
    m, _ = audio_models(name)
    prepared = m.prepare(clip)
    plain, under_rules = forward_with_and_without_rules(prepared.model, prepared.inputs, m.rules.for_model(prepared.model))
    assert torch.equal(plain, under_rules)
    assert m.audit(clip).unhandled == []
    explanation = m.explain(clip, target=AUDIO_LABELS[1])
    record = explanation.to_dict()
    assert explanation.attributions.shape == (1, *AUDIO_CELLS[name].shape)
    assert record["units"] == "time-frequency bins" and record["items"][0]["shape"] == list(AUDIO_CELLS[name].shape)
    assert record["items"][0]["target"]["label"] == AUDIO_LABELS[1] and record["rules"]["name"] == "audio"
