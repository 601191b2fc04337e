"""Audio modality: loading and its conversions/errors, TF groups and baselines, rendering,
sonification, mosaics and Focus (closed-form expectations)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from spmm import SpmmInputError
from spmm.adapters.audio.pipelines import build_pipeline
from spmm.modalities.audio.groups import (
    as_feature_groups,
    group_scores,
    mean_spectrum_baseline,
    noise_floor_baseline,
    silence_baseline,
    tf_bands,
    tf_frames,
    tf_patches,
)
from spmm.modalities.audio.io import batch_clips, check_waveform, load_audio, pad_or_crop, save_wav
from spmm.metrics import FeatureGroups, Focus
from spmm.modalities.audio.mosaic import audio_mosaic, frame_slots
from spmm.modalities.audio.render import render_explanation, sonify

from tests.audio.audio_signals import tone


def peak_frequency(clip: torch.Tensor, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(clip.numpy()))
    return float(np.fft.rfftfreq(len(clip), 1 / sample_rate)[spectrum.argmax()])


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(440, 0.5).numpy(), 0.25 * np.ones(8000, dtype=np.float32)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    clip = load_audio(tmp_path / "stereo.wav", 16000)
    torch.testing.assert_close(clip, torch.tensor((left + right) / 2))


def test_other_sample_rates_are_resampled(tmp_path):
    soundfile.write(tmp_path / "44k.wav", tone(1000, 0.5, 44100).numpy(), 44100, subtype="FLOAT")
    clip = load_audio(tmp_path / "44k.wav", 16000)
    assert clip.shape == (8000,)
    assert abs(peak_frequency(clip, 16000) - 1000) <= 2


def test_bad_audio_gives_clear_errors(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros((0,), dtype=np.float32), 16000)
    with pytest.raises(SpmmInputError, match="no samples"):
        load_audio(tmp_path / "empty.wav", 16000)
    nan = tone(440, 0.1).numpy()
    nan[10] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(SpmmInputError, match="NaN"):
        load_audio(tmp_path / "nan.wav", 16000)
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(SpmmInputError, match="cannot read"):
        load_audio(tmp_path / "text.wav", 16000)
    with pytest.raises(SpmmInputError, match="not found"):
        load_audio(tmp_path / "missing.wav", 16000)
    with pytest.raises(SpmmInputError, match="mono"):
        check_waveform(torch.zeros(1, 2, 100))
    with pytest.raises(SpmmInputError, match="empty"):
        check_waveform(torch.zeros(2, 0))
    with pytest.raises(SpmmInputError, match="Inf"):
        check_waveform(torch.tensor([0.0, float("inf")]))


def test_pad_crop_and_batch():
    clip = torch.arange(1.0, 6.0)
    torch.testing.assert_close(pad_or_crop(clip, 3, offset=1), torch.tensor([2.0, 3.0, 4.0]))
    torch.testing.assert_close(pad_or_crop(clip, 7), torch.tensor([1.0, 2, 3, 4, 5, 0, 0]))
    batch = batch_clips([clip, torch.ones(2)])
    torch.testing.assert_close(batch, torch.tensor([[1.0, 2, 3, 4, 5], [1, 1, 0, 0, 0]]))


def test_tf_groups_partition_the_grid():
    patches = tf_patches((10, 6), 4, 4)
    assert patches.shape == (10, 6) and patches.unique().tolist() == list(range(6))
    assert patches[0, 0] == patches[3, 3] != patches[4, 0]
    assert tf_frames((10, 6), 5).unique().numel() == 2 and (tf_frames((10, 6), 5)[:5] == 0).all()
    assert (tf_bands((10, 6), 3)[:, :3] == 0).all() and (tf_bands((10, 6), 3)[:, 3:] == 1).all()
    attributions = torch.randn(2, 10, 6)
    scores = group_scores(attributions, patches)
    torch.testing.assert_close(scores[1, 1], attributions[1, 0:4, 4:6].sum())
    torch.testing.assert_close(scores.sum(1), attributions.sum((1, 2)))
    torch.testing.assert_close(as_feature_groups(patches).sum(attributions), scores)


def test_baselines():
    x = torch.randn(2, 50, 4)
    torch.testing.assert_close(mean_spectrum_baseline(x)[:, 7], x.mean(1))
    floor = noise_floor_baseline(x, 0.1)
    torch.testing.assert_close(floor[0, 3], torch.tensor(np.quantile(x[0].numpy(), 0.1, axis=0)))
    honk = build_pipeline("honk-res8", random_init=True)
    silence = silence_baseline(torch.ones(2, 101, 40), honk.front_end, 16000)
    assert silence.shape == (2, 101, 40) and (silence == 0).all()  # ln of positive entries only: 0 stays 0
    musicnn = build_pipeline("musicnn-vgg", random_init=True)
    assert (silence_baseline(torch.ones(1, 187, 96), musicnn.front_end, musicnn.clip_samples) == 0).all()


def test_sonify_with_a_full_stft_mask_gives_back_the_clip():
    clip = tone(500, 0.3) + tone(3000, 0.3)
    crepe = build_pipeline("crepe-tiny")
    attribution = torch.ones_like(crepe.inputs(clip[None])[0])
    n_fft, hop = crepe.stft_size
    out = sonify(clip, attribution, n_fft=n_fft, hop=hop, band_to_linear=crepe.band_to_linear())
    assert (out - clip).abs().max() < 1e-5


def test_sonify_keeps_only_the_band_with_positive_attribution():
    honk = build_pipeline("honk-res8", random_init=True)
    clip = tone(300, 1.0, amplitude=0.3) + tone(2500, 1.0, amplitude=0.3)
    attribution = -torch.ones(101, 40)
    freqs = honk.band_frequencies()
    attribution[:, freqs < 800] = 1.0
    n_fft, hop = honk.stft_size
    out = sonify(clip, attribution, n_fft=n_fft, hop=hop, band_to_linear=honk.band_to_linear())
    spectrum = np.abs(np.fft.rfft(out.numpy()))
    freq = np.fft.rfftfreq(len(out), 1 / 16000)
    low = spectrum[np.abs(freq - 300) < 5].max()
    high = spectrum[np.abs(freq - 2500) < 5].max()
    assert low > 0.9 * np.abs(np.fft.rfft(clip.numpy()))[np.abs(freq - 300) < 5].max()
    assert high < 1e-3 * low


def test_render_and_save(tmp_path):
    png = render_explanation(tmp_path / "a.png", torch.randn(101, 40), torch.randn(101, 40), frame_seconds=0.01,
                               band_frequencies=torch.linspace(20, 4000, 40), title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wav = save_wav(tmp_path / "a.wav", tone(440, 0.1), 16000)
    data, rate = soundfile.read(wav)
    assert rate == 16000 and len(data) == 1600


def test_audio_mosaic_and_focus():
    target, d1, d2 = torch.full((4,), 1.0), torch.full((4,), 2.0), torch.full((4,), 3.0)
    mosaic = audio_mosaic(target, [d1, d2], [0, 2])
    torch.testing.assert_close(mosaic, torch.tensor([1.0] * 4 + [2.0] * 4 + [1.0] * 4 + [3.0] * 4))
    with pytest.raises(SpmmInputError):
        audio_mosaic(target, [d1], [0, 5])
    slots = frame_slots(frames=9, hop=2, slot_samples=4, slots=4)  # centres 0,2,..,16
    assert slots.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    attribution = torch.zeros(9, 2)
    attribution[0, 0], attribution[4, 1], attribution[2, 0], attribution[6, 0] = 3.0, 1.0, 4.0, -5.0
    groups = FeatureGroups(slots.view(9, 1), 4)  # each frame's time slot, for every band
    focus = Focus(times_input=False)
    maps = torch.stack([attribution, -torch.ones(9, 2)])
    targets = torch.tensor([[True, False, True, False], [True, False, False, False]])
    scores = focus(None, torch.ones(2, 9, 2), torch.zeros(2, dtype=torch.long), maps, groups=groups,
                   target_groups=targets).scores
    assert scores[0].item() == pytest.approx(4.0 / 8.0)  # positive 3 + 1 in slots 0, 2 of 3 + 1 + 4
    assert scores[1].item() == 0  # no positive relevance at all
