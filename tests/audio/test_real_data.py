"""The pretrained models on real recordings from ../shared/data (skipped when absent)."""

from __future__ import annotations

import pytest
import torch

import spmm
from spmm.adapters.audio.pipelines import HONK_LABELS, build_pipeline
from spmm.modalities.audio.io import batch_clips, load_audio, pad_or_crop

pytestmark = [pytest.mark.slow, pytest.mark.real_data]  # slow: left out of the quick run (pytest -m 'not slow')

WORDS = ("yes", "no", "up", "off", "stop")  # first test-list clip of each word; honk-res8 gets all five


def speech_commands_test_clips(root):
    folder = root / "audio" / "speech_commands"
    names = (folder / "testing_list.txt").read_text().split()
    files = [folder / n for n in names if (folder / n).is_file()]
    labels = [HONK_LABELS.index(f.parent.name) if f.parent.name in HONK_LABELS else 1 for f in files]
    return files, torch.tensor(labels)


def test_honk_res8_accuracy_on_real_test_clips(shared_data):
    pipeline = build_pipeline("honk-res8", shared_data / "audio" / "models" / "honk_res8.pt")
    files, labels = speech_commands_test_clips(shared_data)
    assert len(files) >= 40
    waveform = batch_clips([load_audio(f, 16000) for f in files], 16000)
    accuracy = (pipeline.logits(waveform).argmax(1) == labels).float().mean()
    assert accuracy >= 0.88  # README: about 92%


def test_load_honk_res8_explains_the_spoken_word(shared_data, tmp_path):
    """spmm.load(...).explain(files) predicts and explains the labelled word of real test clips."""
    model = spmm.load("honk-res8", weights=shared_data / "audio" / "models" / "honk_res8.pt")
    files, _ = speech_commands_test_clips(shared_data)
    chosen = [next(f for f in files if f.parent.name == word) for word in WORDS]
    explanation = model.explain(chosen)
    assert [explanation.target_label(i) for i in range(len(chosen))] == list(WORDS)
    assert [p[0].label for p in explanation.predictions] == list(WORDS)
    assert explanation.attributions.shape == (5, 101, 40) and torch.isfinite(explanation.attributions).all()
    record = explanation.to_dict(include_scores=False)
    assert [item["input"] for item in record["items"]] == [str(f) for f in chosen]
    assert explanation.save(tmp_path / "words.png").stat().st_size > 0
    assert explanation.save(tmp_path / "words.wav").stat().st_size > 0


def test_honk_explanations_on_real_clips_are_finite(shared_data):
    model = spmm.load("honk-cnn-trad-pool2", weights=shared_data / "audio" / "models" / "honk_cnn_trad_pool2.pt")
    files, _ = speech_commands_test_clips(shared_data)
    result = model.explain(files[:3], "top1", "pullback_ascent", steps=2)
    assert result.attributions.shape == (3, 101, 40) and torch.isfinite(result.attributions).all()


def test_musicnn_tags_the_electronic_clip(shared_data):
    model = spmm.load("musicnn-vgg", weights=shared_data / "audio" / "models" / "musicnn_mtt_vgg.pt")
    file = shared_data / "audio" / "music" / "joram-moments_of_clarity-08-solipsism-59-88.mp3"
    patch = 186 * 256 / 16000
    probabilities = torch.stack([
        torch.tensor([p.probability for p in sorted(top, key=lambda p: p.index)])
        for i in range(4)
        for top in model.predict(file, k=50, offset=i * patch)
    ]).mean(0)
    top = {model.labels[i] for i in probabilities.topk(4).indices}
    assert {"techno", "electronic"} <= top
    clip = load_audio(file, 16000)
    prepared = model.prepare(file, offset=2 * patch)
    torch.testing.assert_close(prepared.context["waveform"][0], pad_or_crop(clip, 186 * 256, offset=2 * 186 * 256))
