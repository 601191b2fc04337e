"""explain_text on the real MiniLM encoder: audit, special tokens, padding, targets, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spmm import SpmmInputError
from spmm.adapters.text import (
    CosineSimilarity, audit_text, class_index, encode_texts, explain_text, next_token_id,
)
from spmm.adapters.text_models import SentenceClassifier, SentenceEncoder

TEXTS = ["a gripping, beautifully acted film.", "dull", "the plot never comes together , sadly ."]


@pytest.fixture(scope="module")
def classifier(minilm):
    torch.manual_seed(0)
    head = nn.Linear(384, 2)
    head.requires_grad_(False)
    return SentenceClassifier(SentenceEncoder(minilm[1]), head, ["negative", "positive"]).eval()


def test_real_minilm_audit_is_clean(minilm, classifier):
    report = audit_text(classifier, classifier, encode_texts(minilm[0], TEXTS))
    assert report.unhandled == [], str(report)
    assert {"layer_norm", "softmax (attention weights)"} <= set(report.handled.values())


def test_special_tokens_get_nothing_unless_asked(minilm, classifier):
    batch = encode_texts(minilm[0], TEXTS[:1])
    plain = explain_text(classifier, classifier, batch, 1).attributions
    special = batch.special_mask[0]
    assert plain[0, special].abs().max() == 0
    assert plain[0, ~special].norm(dim=-1).min() > 0
    asked = explain_text(classifier, classifier, batch, 1, include_special=True).attributions
    assert asked[0, special].norm(dim=-1).min() > 0


@pytest.mark.parametrize("method", ["soft_pullback", "integrated_pullbacks"])
def test_padded_batch_equals_one_by_one(minilm, classifier, method):
    params = {"steps": 8} if method == "integrated_pullbacks" else {}
    batch = encode_texts(minilm[0], TEXTS)
    together = explain_text(classifier, classifier, batch, [1, 0, 1], method, **params).attributions
    for i, text in enumerate(TEXTS):
        alone = explain_text(classifier, classifier, encode_texts(minilm[0], [text]), [1, 0, 1][i], method, **params)
        length = alone.attributions.shape[1]
        torch.testing.assert_close(together[i, :length], alone.attributions[0], rtol=1e-4, atol=1e-6)
        assert together[i, length:].abs().sum() == 0


def test_cosine_similarity_target_matches_finite_difference_free_gradient(minilm):
    encoder = SentenceEncoder(minilm[1]).eval()
    batch = encode_texts(minilm[0], TEXTS[:2])
    reference = torch.nn.functional.normalize(torch.randn(384), dim=0)
    result = explain_text(encoder, encoder, batch, CosineSimilarity(reference), "gradient")
    with torch.no_grad():
        pooled = encoder(result.embeddings, batch.attention_mask)
    torch.testing.assert_close(result.explanation.scores, pooled @ reference, rtol=1e-5, atol=1e-6)
    assert result.attributions[batch.attributable].norm(dim=-1).min() > 0


def test_bad_input_messages(minilm_tokenizer):
    with pytest.raises(SpmmInputError, match="empty"):
        encode_texts(minilm_tokenizer, ["fine", "   "])
    with pytest.raises(SpmmInputError, match="no text"):
        encode_texts(minilm_tokenizer, [])
    long_text = "word " * 600
    with pytest.raises(SpmmInputError, match="more than the model's maximum of 512"):
        encode_texts(minilm_tokenizer, [long_text], on_overflow="error")
    with pytest.warns(UserWarning, match="truncated"):
        batch = encode_texts(minilm_tokenizer, [long_text])
    assert batch.input_ids.shape == (1, 512) and batch.special_mask[0, -1]
    with pytest.raises(SpmmInputError, match=r"unknown label 'neutral'.*negative"):
        class_index("neutral", ["negative", "positive"])
    assert class_index("Positive", ["negative", "positive"]) == 1
    with pytest.raises(SpmmInputError, match="not one"):
        next_token_id(minilm_tokenizer, "unbelievably")
    assert next_token_id(minilm_tokenizer, "good") == minilm_tokenizer.convert_tokens_to_ids("good")


def test_labels_from_config_and_last_positions():
    import transformers as hf

    from spmm.adapters.text import last_positions, model_labels

    config = hf.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=8, id2label={0: "sad", 1: "happy"}, label2id={"sad": 0, "happy": 1})
    model = hf.BertForSequenceClassification(config)
    assert class_index("happy", model_labels(model)) == 1
    right_padded = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left_padded = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert last_positions(right_padded).tolist() == [2, 3]
    assert last_positions(left_padded).tolist() == [3, 3]


def test_decoder_next_token_padded_batch_equals_one_by_one(minilm_tokenizer):
    import transformers as hf

    from spmm.adapters.text import HFOutput, NextTokenLogit, last_positions, use_attention

    torch.manual_seed(0)
    gpt2 = use_attention(hf.GPT2LMHeadModel(hf.GPT2Config(
        vocab_size=len(minilm_tokenizer), n_embd=16, n_layer=2, n_head=2, bos_token_id=1, eos_token_id=2)).eval(),
        "sdpa")
    body = HFOutput(gpt2)
    token = next_token_id(minilm_tokenizer, "good")
    texts = ["the film was", "honestly , the long and winding story was"]
    batch = encode_texts(minilm_tokenizer, texts, add_special_tokens=False)
    assert not batch.special_mask.any()
    target = NextTokenLogit(torch.full((2,), token), last_positions(batch.attention_mask))
    together = explain_text(body, gpt2, batch, target)
    logits = gpt2(input_ids=batch.input_ids[:1, :3]).logits  # "the film was": three tokens
    torch.testing.assert_close(together.explanation.scores[0], logits[0, 2, token], rtol=1e-5, atol=1e-5)
    for i, text in enumerate(texts):
        alone_batch = encode_texts(minilm_tokenizer, [text], add_special_tokens=False)
        alone = explain_text(body, gpt2, alone_batch,
                             NextTokenLogit(torch.tensor([token]), last_positions(alone_batch.attention_mask)))
        length = alone.attributions.shape[1]
        torch.testing.assert_close(together.attributions[i, :length], alone.attributions[0], rtol=1e-4, atol=1e-6)
