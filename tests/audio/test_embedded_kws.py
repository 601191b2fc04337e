"""The embedded keyword spotter ``speech-commands-kws``: loads with no file, is the audio default,
has the honk input pipeline, and its shipped card's test accuracy is what the real test list gives."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import soundfile
import torch

import spmm
from spmm.adapters.audio.pipelines import HONK_LABELS, build_pipeline
from spmm.cli import main
from spmm.load import default_model
from spmm.modalities.audio.io import batch_clips, load_audio

from tests.audio.audio_signals import tone

DATA = Path(str(resources.files("spmm.adapters") / "data"))


def _card() -> dict:
    return json.loads((DATA / "speech_commands_kws.json").read_text())


def test_weights_ship_in_the_package_and_are_small() -> None:
    weights = DATA / "speech_commands_kws.safetensors"
    assert weights.is_file()
    assert weights.stat().st_size < 2 * 1024 * 1024


def test_loads_with_no_file_and_gives_12_honk_logits() -> None:
    pipeline = build_pipeline("speech-commands-kws")
    clip = tone(440, 1.0).unsqueeze(0)
    assert pipeline.inputs(clip).shape == (1, 101, 40)
    logits = pipeline.logits(torch.cat([clip, 0.1 * clip]))
    assert logits.shape == (2, 12) and torch.isfinite(logits).all()
    assert pipeline.labels == HONK_LABELS
    assert not pipeline.model.training, "the shipped model is in eval mode"


def test_is_the_default_audio_model_and_explains_on_log_mel_bins() -> None:
    assert default_model("audio") == "speech-commands-kws"
    model = spmm.load("speech-commands-kws")
    explanation = model.explain([tone(300, 1.0)], "yes", "soft_pullback")
    assert explanation.attributions.shape == (1, 101, 40)
    assert explanation.target_label(0) == "yes"


def test_explain_a_wav_with_no_model_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    soundfile.write(tmp_path / "yes.wav", tone(300, 1.0).numpy(), 16000)
    assert main(["explain", str(tmp_path / "yes.wav"), "--out", str(tmp_path / "out")]) == 0
    assert "speech-commands-kws" in capsys.readouterr().out
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


def test_card_records_command_data_seed_and_test_accuracy() -> None:
    card = _card()
    assert card["labels"] == list(HONK_LABELS)
    assert "train_keyword_spotter.py" in card["command"] and isinstance(card["seed"], int)
    assert card["fit_on"] in ("train", "train+validation")
    assert sum(map(sum, card["test"]["confusion"])) == card["test"]["clips"]
    assert card["parameters"] == sum(p.numel() for p in build_pipeline("speech-commands-kws").model.parameters())


@pytest.mark.real_data
def test_accuracy_on_the_official_test_list_is_the_cards(shared_data: Path) -> None:
    """Recomputed on the real test clips: the card's numbers, and keyword clips above chance (1/12)."""
    folder = shared_data / "audio" / "speech_commands"
    names = (folder / "testing_list.txt").read_text().split()
    files = [folder / name for name in names if (folder / name).is_file()]
    labels = torch.tensor([HONK_LABELS.index(f.parent.name) if f.parent.name in HONK_LABELS else 1 for f in files])
    waves = batch_clips([load_audio(f, 16000) for f in files], 16000)
    predicted = build_pipeline("speech-commands-kws").logits(waves).argmax(1)
    card = _card()["test"]
    assert len(files) == card["clips"]
    assert abs(int((predicted == labels).sum()) - round(card["accuracy"] * card["clips"])) <= 1
    keywords = labels >= 2
    assert float((predicted[keywords] == labels[keywords]).float().mean()) > 2 / 12
