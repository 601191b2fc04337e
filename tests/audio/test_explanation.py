"""``spmm.load(audio model).explain(...)``: excerpts and their errors, the JSON schema, PNG/WAV
output and aggregation, checked against direct computations."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import soundfile
import torch

import spmm
from spmm.explanation import SCHEMA
from spmm.modalities.audio.explanation import WAV_GAP_SECONDS

from tests.audio.audio_signals import speechlike, tone


@pytest.fixture(scope="module")
def honk():
    torch.manual_seed(0)
    return spmm.load("honk-res8", random_init=True)


@pytest.fixture(scope="module")
def crepe():
    return spmm.load("crepe-tiny")


def test_to_dict_follows_the_schema(honk):
    waveform = torch.stack([speechlike(1.0, seed=0), speechlike(1.0, seed=1)])
    explanation = honk.explain(waveform, ["yes", 3])
    record = json.loads(json.dumps(explanation.to_dict()))
    assert (record["schema"], record["modality"], record["units"]) == (SCHEMA, "audio", "time-frequency bins")
    assert record["model"] == "honk-res8" and record["method"] == "soft_pullback"
    assert record["rules"]["name"] == "audio"
    probabilities = explanation.output.softmax(-1)
    frequencies = honk.modality.pipeline.band_frequencies()
    for i, item in enumerate(record["items"]):
        assert item["input"] == f"clip {i}" and item["shape"] == [101, 40]
        np.testing.assert_allclose(item["scores"], explanation.attributions[i].numpy(), rtol=1e-5, atol=1e-12)
        assert item["target"]["index"] == [2, 3][i] and item["target"]["label"] == ["yes", "no"][i]
        assert item["target"]["score"] == pytest.approx(float(explanation.output[i, [2, 3][i]]), rel=1e-5)
        top = probabilities[i].topk(5)
        assert [p["index"] for p in item["predictions"]] == top.indices.tolist()
        assert [p["probability"] for p in item["predictions"]] == pytest.approx(top.values.tolist(), abs=1e-6)
        extra = item["extra"]
        assert extra["frame_seconds"] == 160 / 16000 and extra["sample_rate"] == 16000
        assert extra["axis"] == "mel band" and extra["offset_seconds"] == 0.0
        np.testing.assert_allclose(extra["band_frequencies"], frequencies.numpy(), atol=1e-3)


def test_png_and_wav_are_written(honk, tmp_path):
    waveform = torch.stack([speechlike(1.0, seed=0), speechlike(0.5, seed=1).repeat(2)])
    explanation = honk.explain(waveform)
    png = explanation.save(tmp_path / "honk.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wav = explanation.save(tmp_path / "honk.wav")
    data, rate = soundfile.read(wav)
    assert rate == 16000 and len(data) == 2 * 16000 + round(WAV_GAP_SECONDS * 16000)
    assert explanation.save(tmp_path / "honk.json").is_file()
    with pytest.raises(spmm.SpmmInputError, match=r"\.png, \.pt, \.wav"):
        explanation.save(tmp_path / "honk.mp3")


def test_wav_of_an_all_positive_map_on_stft_bins_is_the_clip(crepe, tmp_path):
    """On STFT magnitudes the sonification mask of a constant positive map is 1 everywhere."""
    clip = tone(300, 0.2) + tone(1700, 0.2, amplitude=0.2)
    explanation = crepe.explain(clip)
    flat = dataclasses.replace(explanation, attributions=torch.ones_like(explanation.attributions))
    data, rate = soundfile.read(flat.save(tmp_path / "flat.wav"), dtype="float32")
    assert rate == 16000
    np.testing.assert_allclose(data, clip.numpy(), atol=1e-4)


def test_aggregate_sums_frames_bands_and_patches(honk):
    explanation = honk.explain(speechlike(1.0))
    a = explanation.attributions
    frames = explanation.aggregate("frames")
    assert isinstance(frames, spmm.Explanation) and frames.units == "frames" and frames.modality == "audio"
    torch.testing.assert_close(frames.attributions, a.sum(2))
    torch.testing.assert_close(explanation.aggregate("bands").attributions, a.sum(1))
    torch.testing.assert_close(explanation.aggregate("frames", frames=50).attributions[:, 2], a[:, 100:].sum((1, 2)))
    patches = explanation.aggregate("patches").attributions
    assert patches.shape == (1, 11, 5)
    torch.testing.assert_close(patches[:, 0, 0], a[:, :10, :8].sum((1, 2)))
    torch.testing.assert_close(patches[:, 10, 4], a[:, 100:, 32:].sum((1, 2)))
    with pytest.raises(spmm.SpmmInputError, match="'frames', 'bands', 'patches'"):
        explanation.aggregate("words")


def test_offset_and_duration_cut_the_excerpt(honk, crepe):
    clip = speechlike(2.0)
    prepared = honk.prepare(clip, offset=0.25, duration=0.5)
    expected = torch.cat([clip[4000:12000], torch.zeros(8000)])  # zero-padded to the model's 1 s
    torch.testing.assert_close(prepared.context["waveform"][0], expected)
    assert prepared.context["offset"] == 0.25
    tail = crepe.prepare(clip, offset=1.5)
    torch.testing.assert_close(tail.context["waveform"][0], clip[24000:])
    explanation = crepe.explain(clip, prepare_options={"offset": 1.9, "duration": 0.05})
    assert explanation.waveform.shape == (1, 800)
    assert explanation.to_dict()["items"][0]["extra"]["offset_seconds"] == 1.9


@pytest.mark.parametrize("options, message", [
    ({"offset": -0.1}, "offset must be a finite number of seconds >= 0"),
    ({"offset": math.nan}, "offset must be a finite"),
    ({"offset": 2.0}, r"offset 2 s is outside clip 0, which is 1\.000 s long"),
    ({"offset": 5.0}, "outside"),
    ({"duration": -1.0}, "duration must be a finite number of seconds > 0"),
    ({"duration": math.nan}, "duration must be a finite"),
    ({"duration": 0.0}, "duration must be"),
    ({"duration": 1e-6}, "shorter than one sample"),
    ({"duration": 1.5}, r"honk-res8 explains clips of 1 s; give duration <= 1"),
])
def test_bad_offsets_and_durations_are_refused(honk, options, message):
    with pytest.raises(spmm.SpmmInputError, match=message):
        honk.explain(speechlike(1.0), prepare_options=options)


def test_long_clips_are_refused_above_the_limit(crepe):
    long_clip = torch.zeros(61 * 16000)
    with pytest.raises(spmm.SpmmInputError, match=r"crepe-tiny explains at most 60 s of audio at a time \(1 × 61\.0 s"):
        crepe.prepare(long_clip)
    with pytest.raises(spmm.SpmmInputError, match=r"\(2 × 40\.0 s asked\)"):
        crepe.prepare(torch.zeros(2, 40 * 16000))
    with pytest.raises(spmm.SpmmInputError, match="at most 0.5 s"):
        crepe.prepare(tone(440, 1.0), max_seconds=0.5)
    assert crepe.prepare(long_clip, duration=1.0).inputs.shape[1] == 126
    with pytest.raises(spmm.SpmmInputError, match="different lengths; give duration="):
        crepe.prepare([tone(440, 0.2), tone(440, 0.3)])


def test_waveforms_at_another_rate_are_resampled(honk):
    prepared = honk.prepare(tone(1000, 1.0, sample_rate=8000), sample_rate=8000)
    waveform = prepared.context["waveform"][0]
    assert waveform.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(waveform.numpy()))
    assert abs(np.fft.rfftfreq(16000, 1 / 16000)[spectrum.argmax()] - 1000) <= 1


def test_files_are_read_at_their_rate_and_named(honk, tmp_path):
    soundfile.write(tmp_path / "a.wav", tone(440, 0.5, 22050).numpy(), 22050)
    explanation = honk.explain([tmp_path / "a.wav", speechlike(1.0)])
    assert explanation.sources == [str(tmp_path / "a.wav"), "clip 1"]
    assert explanation.waveform.shape == (2, 16000)
    assert explanation.waveform[0, 8000:].abs().max() == 0  # 0.5 s file, zero-padded to 1 s
    with pytest.raises(spmm.SpmmInputError, match="not found"):
        honk.explain(tmp_path / "missing.wav")
    with pytest.raises(spmm.SpmmInputError, match="cannot explain a dict"):
        honk.explain([{"audio": 1}])


def test_user_modules_load_with_the_audio_modality():
    from spmm.modalities.audio.frontends import LogMel

    front_end = LogMel(16000, n_fft=400, hop=160, n_mels=16)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(51 * 16, 3)).eval()
    model = spmm.load(net, modality="audio", front_end=front_end, labels=["a", "b", "c"], clip_seconds=0.5)
    explanation = model.explain(speechlike(0.5), "b", "gradient")
    inputs = front_end(speechlike(0.5)[None]).requires_grad_(True)
    (reference,) = torch.autograd.grad(net(inputs)[0, 1], inputs)
    torch.testing.assert_close(explanation.attributions, reference)
    assert explanation.target_label(0) == "b"
