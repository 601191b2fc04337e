"""The pretrained models on real recordings from ../shared/data (skipped when absent)."""

from __future__ import annotations

import pytest
import torch

from spmm.adapters.audio import HONK_LABELS, load_audio_model
from spmm.adapters.audio_explain import explain_audio
from spmm.modalities.audio import batch_clips, load_audio, pad_or_crop

pytestmark = pytest.mark.real_data


def speech_commands_test_clips(root):
    folder = root / "audio" / "speech_commands"
    names = (folder / "testing_list.txt").read_text().split()
    files = [folder / n for n in names if (folder / n).is_file()]
    labels = [HONK_LABELS.index(f.parent.name) if f.parent.name in HONK_LABELS else 1 for f in files]
    return files, torch.tensor(labels)


def test_honk_res8_accuracy_on_real_test_clips(shared_data):
    pipeline = load_audio_model("honk-res8", shared_data / "audio" / "models" / "honk_res8.pt")
    files, labels = speech_commands_test_clips(shared_data)
    assert len(files) >= 40
    waveform = batch_clips([load_audio(f, 16000) for f in files], 16000)
    accuracy = (pipeline.logits(waveform).argmax(1) == labels).float().mean()
    assert accuracy >= 0.88  # README: about 92%


def test_honk_explanations_on_real_clips_are_finite(shared_data):
    pipeline = load_audio_model("honk-cnn-trad-pool2", shared_data / "audio" / "models" / "honk_cnn_trad_pool2.pt")
    files, _ = speech_commands_test_clips(shared_data)
    waveform = batch_clips([load_audio(f, 16000) for f in files[:3]], 16000)
    result = explain_audio(pipeline, waveform, "top1", "pullback_ascent", steps=2)
    assert result.attributions.shape == (3, 101, 40) and torch.isfinite(result.attributions).all()


def test_musicnn_tags_the_electronic_clip(shared_data):
    pipeline = load_audio_model("musicnn-vgg", shared_data / "audio" / "models" / "musicnn_mtt_vgg.pt")
    clip = load_audio(shared_data / "audio" / "music" / "joram-moments_of_clarity-08-solipsism-59-88.mp3", 16000)
    patches = torch.stack([pad_or_crop(clip, pipeline.clip_samples, offset=i * pipeline.clip_samples) for i in range(4)])
    mean = pipeline.probabilities(pipeline.logits(patches)).mean(0)
    top = {pipeline.labels[i] for i in mean.topk(4).indices}
    assert {"techno", "electronic"} <= top
