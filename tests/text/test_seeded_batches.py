"""Seeded sampling methods on texts: a text gets the same attributions alone and padded in a batch
of texts of other lengths, in any order (issue: draws keyed by the batch's padded content and noise
scaled by the batch's range made them differ)."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as hf

import spmm
from tests.reliability.test_seeds import STOCHASTIC

TEXTS = ["a fine film", "the plot is thin , but the actors carry it with ease and wit", "dull"]
FAST = {
    "smoothgrad": {"samples": 3}, "smooth_pullback": {"samples": 3},
    "fusiongrad": {"model_samples": 2, "input_samples": 2}, "fusion_pullback": {"model_samples": 2, "input_samples": 2},
    "gradient_shap": {"samples": 4, "baseline_draws": 3}, "pullback_shap": {"samples": 4, "baseline_draws": 3},
}


@pytest.fixture(scope="module")
def tiny_bert(minilm_tokenizer):
    torch.manual_seed(0)
    return hf.BertForSequenceClassification(hf.BertConfig(
        vocab_size=minilm_tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=2)).eval()


@pytest.fixture(scope="module")
def tiny_text(tiny_bert, minilm_tokenizer):
    return spmm.load(tiny_bert, tokenizer=minilm_tokenizer)


def test_the_fast_settings_cover_every_stochastic_method():
    assert sorted(FAST) == sorted(STOCHASTIC)


@pytest.mark.parametrize("method", STOCHASTIC)
def test_a_text_gets_the_same_attributions_alone_and_padded_in_any_batch(tiny_text, method):
    def explain(texts):
        ex = tiny_text.explain(texts, target=1, method=method, seed=7, **FAST[method])
        lengths = ex.batch.attention_mask.sum(1).tolist()
        return [ex.attributions[i, :n] for i, n in enumerate(lengths)], ex.params

    batch, params = explain(TEXTS)
    for i, text in enumerate(TEXTS):
        alone, alone_params = explain([text])
        assert alone_params == params  # the noise scale is the model's, not the batch's
        torch.testing.assert_close(alone[0], batch[i], rtol=1e-4, atol=1e-6)
    reordered, _ = explain(TEXTS[::-1])
    for i, row in enumerate(reordered[::-1]):
        torch.testing.assert_close(row, batch[i], rtol=1e-4, atol=1e-6)
    assert batch[1].abs().amax() > 0


def test_left_padding_is_warned_for_sampling_methods(minilm_tokenizer, tiny_bert):
    left = copy.deepcopy(minilm_tokenizer)
    left.padding_side = "left"
    m = spmm.load(tiny_bert, tokenizer=left)
    with pytest.warns(UserWarning, match="padded on the left"):
        m.explain(TEXTS[:2], target=1, method="smoothgrad", seed=1, samples=2)
