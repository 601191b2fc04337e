"""The keyword spotter of ``examples/train_keyword_spotter.py``: its architecture in closed form, and
the trainer's data split (official lists) and seeded augmentation."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from spmm.adapters.audio.pipelines import HONK_LABELS, honk_pipeline, kws_architecture



def _trainer():
    return importlib.import_module("examples.train_keyword_spotter")


def test_eval_mode_is_standardised_mfcc_into_res8() -> None:
    torch.manual_seed(0)
    network = kws_architecture()
    norm = network.input_norm
    norm.running_mean.copy_(torch.randn(40) * 10)
    norm.running_var.copy_(torch.rand(40) * 5 + 0.5)
    network.eval()
    mfcc = torch.randn(3, 101, 40) * 20
    standardised = (mfcc - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    torch.testing.assert_close(network(mfcc), network.res8(standardised), rtol=1e-5, atol=1e-5)
    assert network(mfcc).shape == (3, 12)


def test_honk_pipeline_gives_log_mel_inputs_and_12_logits() -> None:
    pipeline = honk_pipeline(kws_architecture().eval(), "kws")
    waves = torch.randn(2, 16000) * 0.1
    assert pipeline.inputs(waves).shape == (2, 101, 40)
    assert pipeline.logits(waves).shape == (2, len(HONK_LABELS))


def test_augmentation_is_seeded_and_keeps_the_clip_length() -> None:
    trainer = _trainer()
    waves = torch.randn(4, 16000) * 0.1
    first = trainer.augment(waves, torch.Generator().manual_seed(3))
    again = trainer.augment(waves, torch.Generator().manual_seed(3))
    other = trainer.augment(waves, torch.Generator().manual_seed(4))
    assert first.shape == waves.shape
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)
    silence = trainer.silence(5, torch.Generator().manual_seed(0))
    rms = silence.pow(2).mean(-1).sqrt()
    assert ((rms > 0.9e-4) & (rms < 1.1 * 10 ** -1.5)).all()
    assert trainer.silence(0, torch.Generator()).shape == (0, 16000)


@pytest.mark.real_data
def test_split_follows_the_official_lists(shared_data: Path) -> None:
    folder = shared_data / "audio" / "speech_commands"
    splits = _trainer().load_split(folder)
    for split, listed in (("test", "testing_list.txt"), ("validation", "validation_list.txt")):
        names = [n for n in (folder / listed).read_text().split() if (folder / n).is_file()]
        labels = [HONK_LABELS.index(n.split("/")[0]) if n.split("/")[0] in HONK_LABELS else 1 for n in names]
        assert sorted(splits[split][1].tolist()) == sorted(labels)
    every = sum(1 for _ in folder.glob("*/*.wav"))
    assert sum(len(labels) for _, labels in splits.values()) == every
    waves = splits["test"][0]
    assert waves.shape[1] == 16000 and waves.abs().max() <= 1.0
