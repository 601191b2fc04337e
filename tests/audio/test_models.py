"""Every audio model: forward unchanged under SP, attributions on the TF shape, SP coverage, loading."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import spmm
from spmm.adapters.audio.pipelines import AUDIO_MODELS, ast_pipeline, build_pipeline
from spmm.adapters.audio.registry import AUDIO_MODEL_SUMMARIES, list_audio_models
from spmm.load import default_model
from spmm.modalities.audio.explanation import AudioExplanation
from spmm.modalities.audio.modality import AudioExplainable, audio_explainable

from tests.audio.audio_signals import speechlike, tone

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def random_ast() -> AudioExplainable:
    from transformers import ASTConfig, ASTForAudioClassification

    config = ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=16,
        frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=32, num_labels=5,
    )
    torch.manual_seed(0)
    return audio_explainable(ast_pipeline(ASTForAudioClassification(config).eval()))


def random_model(name: str) -> AudioExplainable:
    """``spmm.load(name, random_init=True)`` (CREPE: its packaged weights) with non-trivial batch-norm statistics."""
    if name == "ast":
        return random_ast()
    torch.manual_seed(0)
    model = spmm.load(name, random_init=not name.startswith("crepe"))
    for module in model.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d) and module.running_mean is not None and "crepe" not in name:
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return model


CASES = {  # name -> (clip seconds, expected TF shape per clip)
    "kws-res8": (1.0, (101, 40)),
    "honk-res8": (1.0, (101, 40)),
    "honk-cnn-trad-pool2": (1.0, (101, 40)),
    "musicnn-vgg": (186 * 256 / 16000, (187, 96)),
    "crepe-tiny": (0.2, (26, 257)),
    "ast": (1.0, (100, 32)),
}


def clips(seconds: float, batch: int = 2) -> torch.Tensor:
    return torch.stack([speechlike(seconds, seed=i) for i in range(batch)])


@pytest.mark.parametrize("name", list(CASES))
def test_forward_unchanged_under_pullback_mode(name):
    prepared = random_model(name).prepare(clips(CASES[name][0]))
    with torch.no_grad():
        plain = prepared.model(prepared.inputs)
    x = prepared.inputs.clone().requires_grad_(True)
    with spmm.pullback_mode():
        under_rules = prepared.model(x)
    torch.testing.assert_close(under_rules.detach(), plain, atol=0, rtol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_attributions_have_the_tf_shape_and_are_finite(name):
    seconds, shape = CASES[name]
    result = random_model(name).explain(clips(seconds), "top1", "soft_pullback")
    assert isinstance(result, AudioExplanation) and result.rules.name == "audio"
    assert result.attributions.shape == (2, *shape) == result.inputs.shape
    assert torch.isfinite(result.attributions).all()
    assert result.attributions.abs().sum() > 0
    assert result.target.indices.tolist() == result.output.argmax(dim=1).tolist()


@pytest.mark.parametrize("name", ["kws-res8", "honk-res8", "honk-cnn-trad-pool2", "musicnn-vgg", "crepe-tiny"])
def test_sp_rules_cover_every_nonlinearity(name):
    report = random_model(name).audit(clips(CASES[name][0], batch=1))
    assert report.unhandled == []
    assert "relu" in report.handled


def test_ast_audit_handles_gelu_norms_and_attention():
    report = random_ast().audit(clips(1.0, batch=1))
    rules = set(report.handled.values())
    assert "layer_norm" in rules and any(rule.startswith("gelu") for rule in rules)  # op or module GELU gate
    assert report.unhandled == []


def test_soft_pullback_with_cold_relu_is_the_gradient_on_honk():
    """res8 has only ReLU nonlinearities, so T -> 0 must give the plain gradient (independent: autograd)."""
    model = random_model("honk-res8")
    waveform = clips(1.0)
    inputs = model.prepare(waveform).inputs.requires_grad_(True)
    (reference,) = torch.autograd.grad(model.model(inputs)[:, 2].sum(), inputs)
    cold = model.explain(waveform, 2, temperatures={"relu": 0.0}).attributions
    torch.testing.assert_close(cold, reference, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["soft_pullback", pytest.param("integrated_gradients", marks=pytest.mark.slow)])
def test_waveform_models_explain_each_clip_with_its_own_phase(method):
    """A batch of clips gives each clip the attribution it gets alone (the wrapper's ``take`` serves
    methods that repeat samples)."""
    model = spmm.load("crepe-tiny")
    waveform = torch.stack([tone(220.0, 0.15), tone(440.0, 0.15)])
    params = {"steps": 8} if method == "integrated_gradients" else {}
    both = model.explain(waveform, "220Hz", method, **params)
    second = model.explain(waveform[1], "220Hz", method, **params)
    torch.testing.assert_close(both.attributions[1:], second.attributions, atol=1e-5, rtol=1e-4)
    assert both.target.indices.tolist() == [model.modality.pipeline.translate_target("220")] * 2


def test_multi_label_models_report_sigmoid_probabilities_of_logits():
    musicnn = random_model("musicnn-vgg")
    assert musicnn.multi_label
    logits = torch.tensor([[-2.0, 0.0, 3.0] + [0.0] * 47])
    torch.testing.assert_close(musicnn.probabilities(logits), 1 / (1 + torch.exp(-logits)))
    patch = clips(CASES["musicnn-vgg"][0], batch=1)
    prepared = musicnn.prepare(patch)
    with torch.no_grad():
        tags = torch.sigmoid(prepared.model(prepared.inputs))[0]
    top = musicnn.predict(patch, k=3)[0]
    assert [p.index for p in top] == tags.topk(3).indices.tolist()
    torch.testing.assert_close(torch.tensor([p.probability for p in top]), tags.topk(3).values)
    honk = random_model("honk-res8")
    assert not honk.multi_label
    assert torch.allclose(honk.probabilities(torch.zeros(1, 12)).sum(), torch.tensor(1.0))


def test_audio_models_are_registered_with_the_audio_rule_set():
    assert list_audio_models() == sorted(AUDIO_MODEL_SUMMARIES) == sorted(AUDIO_MODELS)
    assert default_model("audio") == "kws-res8"  # the keyword spotter whose weights ship
    listed = spmm.list_models()
    assert all(listed[name].startswith("[audio]") for name in AUDIO_MODELS)
    assert spmm.rulesets["audio"].name == "audio"
    model = spmm.load("honk-res8", random_init=True)
    assert model.rules is spmm.rulesets["audio"] and model.labels[2:4] == ["yes", "no"]


def test_weights_are_found_required_and_loaded_strictly(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SPMM_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(spmm.SpmmInputError, match=r"honk_res8\.pt: pass weights=PATH.*never downloads"):
        spmm.load("honk-res8")
    with pytest.raises(spmm.SpmmInputError, match="not found"):
        spmm.load("honk-res8", weights=tmp_path / "missing.pt")
    wrong = build_pipeline("honk-cnn-trad-pool2", random_init=True).model.model.state_dict()
    torch.save(wrong, tmp_path / "trad.pt")
    with pytest.raises(spmm.SpmmInputError, match="not a honk-res8 checkpoint"):
        spmm.load("honk-res8", weights=tmp_path / "trad.pt")
    with pytest.raises(spmm.SpmmInputError, match="not both"):
        spmm.load("honk-res8", weights=tmp_path / "trad.pt", random_init=True)
    with pytest.raises(spmm.SpmmInputError, match="unknown option"):
        spmm.load("honk-res8", pretrained=False)
    with pytest.raises(spmm.SpmmInputError, match="unknown audio model"):
        build_pipeline("wav2vec")
    saved = build_pipeline("honk-res8", random_init=True).model.model
    (tmp_path / "weights").mkdir()
    torch.save(saved.state_dict(), tmp_path / "weights" / "honk_res8.pt")
    found = spmm.load("honk-res8")  # from $SPMM_WEIGHTS
    mfcc = torch.randn(2, 101, 40)
    with torch.no_grad():
        torch.testing.assert_close(found.model.model(mfcc), saved(mfcc))


def test_unknown_targets_are_named():
    model = random_model("honk-res8")
    with pytest.raises(spmm.SpmmInputError, match="'maybe' is not one of the model's 12 labels"):
        model.explain(clips(1.0, 1), "maybe")
    crepe = spmm.load("crepe-tiny")
    with pytest.raises(spmm.SpmmInputError, match="frequencies in Hz"):
        crepe.explain(tone(440, 0.1), "A4")
    pipeline = crepe.modality.pipeline
    assert abs(float(pipeline.labels[pipeline.translate_target("440Hz")].removesuffix("Hz")) - 440) < 6


def test_ascent_stays_in_the_observed_range_and_raises_the_target():
    model = random_model("honk-res8")
    result = model.explain(clips(1.0), 3, "pullback_ascent", steps=3)
    end = result.inputs + result.attributions
    assert end.min() >= result.inputs.min() - 1e-5 and end.max() <= result.inputs.max() + 1e-5
    with torch.no_grad():
        before = model.model(result.inputs)[:, 3]
        after = model.model(end)[:, 3]
    assert (after > before).all()


def test_registration_imports_neither_torchaudio_nor_torchcrepe():
    """The plugins register the audio models without loading the audio libraries (loaders do)."""
    code = (
        "import sys; from spmm.load import load_plugins; load_plugins(); "
        "print(sorted({'torchaudio', 'torchcrepe', 'soundfile'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("method, params", [
    ("smooth_pullback", {"samples": 3}), ("fusion_pullback", {"model_samples": 2, "input_samples": 2}),
    ("pullback_ascent", {"steps": 2}), ("gradient_ascent", {"steps": 2}),
])
def test_scale_dependent_defaults_are_per_clip_so_a_clip_explains_the_same_in_any_batch(method, params):
    """Noise σ, ascent step and clipping bounds come from each clip's own range (not the batch's):
    a quiet clip beside a loud one gets what it gets alone, and the scale is that clip's own."""
    model = random_model("honk-res8")
    loud, quiet = speechlike(1.0, seed=1), 0.01 * speechlike(1.0, seed=2)
    both = model.explain(torch.stack([loud, quiet]), 3, method, seed=5, **params)
    for row, clip in enumerate((loud, quiet)):
        alone = model.explain(clip, 3, method, seed=5, **params)
        torch.testing.assert_close(both.attributions[row:row + 1], alone.attributions, atol=1e-5, rtol=1e-4)
    if method.startswith("pullback") or method.startswith("gradient"):
        quiet_input = both.inputs[1]
        moved = both.extras["trajectory"][:, 1]
        assert moved.amin() >= quiet_input.amin() - 1e-5 and moved.amax() <= quiet_input.amax() + 1e-5  # its own bounds
