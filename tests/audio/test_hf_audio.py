"""Hugging Face audio classifiers through ``spmm.load(save_pretrained folder)``: random-init tiny
AST, Whisper encoder, Wav2Vec2, HuBERT and WavLM saved with their feature extractors; the
front-ends are checked against the feature extractors themselves."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile
import torch

import spmm
from spmm.modalities.audio.frontends import LogMel
from spmm.cli import main
from spmm.errors import SpmmInputError

from tests.audio.audio_signals import speechlike
from tests.forward_checks import forward_with_and_without_rules

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LABELS = {0: "yes", 1: "no", 2: "up"}
RATE = 16000
WAVEFORM_LIKE = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                     conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                     num_conv_pos_embedding_groups=2, classifier_proj_size=8)


def _cases():
    """name -> (model class, config, feature extractor, attribution shape per 1 s clip)."""
    return {
        "ast": (transformers.ASTForAudioClassification, transformers.ASTConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, patch_size=16,
            frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=32),
            transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=100), (100, 32)),
        "whisper": (transformers.WhisperForAudioClassification, transformers.WhisperConfig(
            d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=37, decoder_ffn_dim=37, num_mel_bins=16, max_source_positions=50, classifier_proj_size=8,
            vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1),
            transformers.WhisperFeatureExtractor(feature_size=16, chunk_length=1), (100, 16)),
        "wav2vec2": (transformers.Wav2Vec2ForSequenceClassification, transformers.Wav2Vec2Config(**WAVEFORM_LIKE),
                     transformers.Wav2Vec2FeatureExtractor(do_normalize=True), (126, 257)),
        "hubert": (transformers.HubertForSequenceClassification, transformers.HubertConfig(**WAVEFORM_LIKE),
                   transformers.Wav2Vec2FeatureExtractor(do_normalize=True), (126, 257)),
        "wavlm": (transformers.WavLMForSequenceClassification, transformers.WavLMConfig(**WAVEFORM_LIKE),
                  transformers.Wav2Vec2FeatureExtractor(do_normalize=False), (126, 257)),
    }


CASES = list(_cases())
INPUT_NAMES = {"ast": "input_values", "whisper": "input_features"}
"""Keyword under which each model receives its features (waveform models: input_values)."""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.manual_seed(0)
    out = {}
    for name, (model_class, config, extractor, _) in _cases().items():
        config.id2label, config.label2id = LABELS, {v: k for k, v in LABELS.items()}
        folder = tmp_path_factory.mktemp(name)
        model_class(config).eval().save_pretrained(folder)
        extractor.save_pretrained(folder)
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def clip():
    """A real spoken 'yes' (Speech Commands) when the shared data is there, else a speech-like signal."""
    from tests.conftest import shared_data_dir

    folder = shared_data_dir() / "audio" / "speech_commands" / "yes"
    if folder.is_dir():
        wave, rate = soundfile.read(sorted(folder.glob("*.wav"))[0], dtype="float32")
        assert rate == RATE
        return torch.from_numpy(np.pad(wave, (0, RATE - len(wave))))
    return speechlike(1.0, RATE, seed=3)


def _features_seen(m, waveform):
    """The keywords reaching the Hugging Face model when ``m`` explains ``waveform``, the explanation, the model."""
    hf_model = next(module for module in m.model.modules() if type(module).__module__.startswith("transformers."))
    seen = []
    handle = hf_model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw), with_kwargs=True)
    try:
        explanation = m.explain(waveform, method="soft_pullback")
    finally:
        handle.remove()
    return seen[0], explanation, hf_model


@pytest.mark.parametrize("name", CASES)
def test_the_model_receives_what_its_feature_extractor_makes(folders, clip, name):
    m = spmm.load(str(folders[name]))
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folders[name], local_files_only=True)
    expected = extractor(clip.numpy(), sampling_rate=RATE, return_tensors="pt")
    key = INPUT_NAMES.get(name, "input_values")
    kwargs, explanation, hf_model = _features_seen(m, clip.numpy())  # a NumPy waveform is taken as is
    torch.testing.assert_close(kwargs[key].detach(), expected[key].float(), atol=1e-4, rtol=0)
    with torch.no_grad():
        logits = hf_model(**{key: expected[key].float()}).logits
    torch.testing.assert_close(explanation.output.detach(), logits, atol=1e-4, rtol=1e-4)
    top = int(logits.argmax())
    assert explanation.predictions[0][0].label == LABELS[top] and m.labels == [LABELS[i] for i in range(3)]
    assert explanation.attributions.shape == (1, *_cases()[name][3])


def test_whisper_log_mel_equals_the_feature_extractor_and_the_encoder_gets_mel_bands_first(clip):
    extractor = transformers.WhisperFeatureExtractor(feature_size=16, chunk_length=1)
    front_end = LogMel(RATE, extractor.n_fft, extractor.hop_length, 16, 0.0, 8000.0, log="whisper")
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(RATE) / RATE) * 0.3
    for wave in (clip, tone):
        expected = extractor(wave.numpy(), sampling_rate=RATE, return_tensors="pt")["input_features"]
        assert expected.shape == (1, 16, 100)
        torch.testing.assert_close(front_end(wave[None]).transpose(1, 2), expected, atol=1e-4, rtol=0)


def test_ast_fbank_equals_the_feature_extractor_on_a_short_clip_padded_to_max_length():
    from spmm.modalities.audio.frontends import KaldiFbank

    extractor = transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=100)
    wave = speechlike(0.6, RATE, seed=1)
    expected = extractor(wave.numpy(), sampling_rate=RATE, return_tensors="pt")["input_values"]
    front_end = KaldiFbank(RATE, 32, 100, extractor.mean, extractor.std)
    torch.testing.assert_close(front_end(wave[None]), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_forward_identical_under_the_rules_audit_clean_and_sp_differs_from_gradient(folders, clip, name):
    m = spmm.load(str(folders[name]))
    prepared = m.prepare(clip)
    plain, under_rules = forward_with_and_without_rules(prepared.model, prepared.inputs, m.rules.for_model(prepared.model))
    assert torch.equal(plain, under_rules)
    assert m.audit(clip).unhandled == []
    sp = m.explain(clip, target="no", method="soft_pullback").attributions
    grad = m.explain(clip, target="no", method="gradient").attributions
    assert sp.abs().sum() > 0 and not torch.allclose(sp, grad, rtol=1e-3, atol=1e-7)


def test_a_loaded_model_with_its_feature_extractor_is_not_changed(folders, clip):
    model = transformers.Wav2Vec2ForSequenceClassification.from_pretrained(folders["wav2vec2"], local_files_only=True)
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folders["wav2vec2"], local_files_only=True)
    model.train()
    m = spmm.load(model, feature_extractor=extractor)
    assert model.training and all(p.requires_grad for p in model.parameters())
    model.eval()
    m.explain(clip)
    assert not model.training and all(p.requires_grad for p in model.parameters())
    with pytest.raises(SpmmInputError, match="feature_extractor="):
        spmm.load(model)


def test_an_unsupported_feature_extractor_is_named(folders):
    model = transformers.ASTForAudioClassification.from_pretrained(folders["ast"], local_files_only=True)
    with pytest.raises(SpmmInputError, match="supported feature extractors: ASTFeatureExtractor"):
        spmm.load(model, feature_extractor=transformers.SpeechT5FeatureExtractor())


def test_audio_sequence_classifiers_win_over_the_text_suffix():
    from spmm.adapters.hf.tasks import task_for

    for name in ("Wav2Vec2ForSequenceClassification", "HubertForSequenceClassification",
                 "WhisperForAudioClassification", "ASTForAudioClassification"):
        assert task_for(name).name == "audio-classification"


@pytest.mark.parametrize("name, shape, renderings", [("ast", [100, 32], ["json", "png"]),
                                                     ("whisper", [100, 16], ["json", "png", "wav"])])
def test_cli_explains_a_wav_file_with_a_saved_model(folders, clip, tmp_path, capsys, name, shape, renderings):
    soundfile.write(tmp_path / "clip.wav", clip.numpy(), RATE)
    code = main(["explain", str(folders[name]), str(tmp_path / "clip.wav"), "--out", str(tmp_path / "out"), "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["schema"] == "spmm.explanation/1" and record["modality"] == "audio"
    assert record["rules"]["name"] == "audio" and record["units"] == "time-frequency bins"
    (item,) = record["items"]
    assert item["shape"] == shape and item["target"]["label"] in LABELS.values()
    assert sorted(f.rsplit(".", 1)[-1] for f in record["files"]) == renderings
