"""Every audio model: forward unchanged under SP, attributions on the TF shape, SP coverage, loading."""

from __future__ import annotations

import os

import pytest
import torch

import spmm
from spmm.adapters.audio import AudioPipeline, ast_pipeline, load_audio_model
from spmm.adapters.audio_explain import explain_audio

from tests.audio.audio_signals import speechlike, tone

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def random_ast() -> AudioPipeline:
    from transformers import ASTConfig, ASTForAudioClassification

    config = ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=16,
        frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=32, num_labels=5,
    )
    torch.manual_seed(0)
    return ast_pipeline(ASTForAudioClassification(config).eval())


def random_pipeline(name: str) -> AudioPipeline:
    if name == "ast":
        return random_ast()
    torch.manual_seed(0)
    pipeline = load_audio_model(name, pretrained=name.startswith("crepe"))
    for module in pipeline.model.modules():  # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d) and module.running_mean is not None and "crepe" not in name:
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return pipeline


CASES = {  # name -> (clip seconds, expected TF shape per clip)
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
    pipeline = random_pipeline(name)
    waveform = clips(CASES[name][0])
    inputs = pipeline.inputs(waveform)
    model = pipeline.explained_model(waveform)
    with torch.no_grad():
        plain = model(inputs)
    x = inputs.clone().requires_grad_(True)
    with spmm.pullback_mode():
        under_rules = model(x)
    torch.testing.assert_close(under_rules.detach(), plain, atol=0, rtol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_attributions_have_the_tf_shape_and_are_finite(name):
    pipeline = random_pipeline(name)
    seconds, shape = CASES[name]
    result = explain_audio(pipeline, clips(seconds), "top1", "soft_pullback")
    assert result.attributions.shape == (2, *shape) == result.inputs.shape
    assert torch.isfinite(result.attributions).all()
    assert result.attributions.abs().sum() > 0
    assert result.targets.tolist() == result.logits.argmax(dim=1).tolist()


@pytest.mark.parametrize("name", ["honk-res8", "honk-cnn-trad-pool2", "musicnn-vgg", "crepe-tiny"])
def test_sp_rules_cover_every_nonlinearity(name):
    pipeline = random_pipeline(name)
    waveform = clips(CASES[name][0], batch=1)
    report = spmm.audit(pipeline.explained_model(waveform), pipeline.inputs(waveform))
    assert report.unhandled == []
    assert "relu" in report.handled


def test_ast_audit_handles_gelu_norms_and_attention():
    pipeline = random_ast()
    waveform = clips(1.0, batch=1)
    report = spmm.audit(pipeline.model, pipeline.inputs(waveform))
    assert {"gelu", "layer_norm"} <= set(report.handled.values())
    assert report.unhandled == []


def test_soft_pullback_with_cold_relu_is_the_gradient_on_honk():
    """res8 has only ReLU nonlinearities, so T -> 0 must give the plain gradient (independent: autograd)."""
    pipeline = random_pipeline("honk-res8")
    waveform = clips(1.0)
    inputs = pipeline.inputs(waveform).requires_grad_(True)
    (reference,) = torch.autograd.grad(pipeline.model(inputs)[:, 2].sum(), inputs)
    cold = spmm.explain(pipeline.model, inputs.detach(), 2, temperatures={"relu": 0.0}).attributions
    torch.testing.assert_close(cold, reference, atol=1e-6, rtol=1e-5)


def test_waveform_pipeline_explains_clip_by_clip_with_its_own_phase():
    pipeline = load_audio_model("crepe-tiny")
    waveform = torch.stack([tone(220.0, 0.15), tone(440.0, 0.15)])
    both = explain_audio(pipeline, waveform, "220Hz")
    second = explain_audio(pipeline, waveform[1], "220Hz")
    torch.testing.assert_close(both.attributions[1:], second.attributions)
    assert both.targets.tolist() == [pipeline.label_index("220")] * 2


def test_multi_label_models_report_sigmoid_probabilities_of_logits():
    pipeline = random_pipeline("musicnn-vgg")
    logits = torch.tensor([[-2.0, 0.0, 3.0] + [0.0] * 47])
    torch.testing.assert_close(pipeline.probabilities(logits), 1 / (1 + torch.exp(-logits)))
    honk = random_pipeline("honk-res8")
    assert torch.allclose(honk.probabilities(torch.zeros(1, 12)).sum(), torch.tensor(1.0))


def test_weights_are_required_and_loaded_strictly(tmp_path):
    with pytest.raises(spmm.SpmmInputError, match="never downloads"):
        load_audio_model("honk-res8")
    with pytest.raises(spmm.SpmmInputError, match="not found"):
        load_audio_model("honk-res8", tmp_path / "missing.pt")
    wrong = load_audio_model("honk-cnn-trad-pool2", pretrained=False).model.model.state_dict()
    torch.save(wrong, tmp_path / "trad.pt")
    with pytest.raises(spmm.SpmmInputError, match="not a honk-res8 checkpoint"):
        load_audio_model("honk-res8", tmp_path / "trad.pt")
    with pytest.raises(spmm.SpmmInputError, match="unknown audio model"):
        load_audio_model("wav2vec")


def test_unknown_targets_are_named():
    pipeline = random_pipeline("honk-res8")
    with pytest.raises(spmm.SpmmInputError, match="unknown target 'maybe'"):
        explain_audio(pipeline, clips(1.0, 1), "maybe")
    crepe = load_audio_model("crepe-tiny")
    with pytest.raises(spmm.SpmmInputError, match="frequencies in Hz"):
        crepe.label_index("A4")
    assert abs(float(crepe.labels[crepe.label_index("440Hz")].removesuffix("Hz")) - 440) < 6


def test_ascent_stays_in_the_observed_range_and_raises_the_target():
    pipeline = random_pipeline("honk-res8")
    waveform = clips(1.0)
    result = explain_audio(pipeline, waveform, 3, "pullback_ascent", steps=3)
    end = result.inputs + result.attributions
    assert end.min() >= result.inputs.min() - 1e-5 and end.max() <= result.inputs.max() + 1e-5
    with torch.no_grad():
        before = pipeline.model(result.inputs)[:, 3]
        after = pipeline.model(end)[:, 3]
    assert (after > before).all()
