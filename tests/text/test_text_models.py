"""User text models through spmm.load(module, modality="text") on the real MiniLM encoder: audit,
special tokens, padding, targets, Hugging Face classifiers and decoders, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spmm
from spmm import SpmmInputError
from spmm.adapters.text import CosineSimilarity, NextTokenLogit, last_positions, next_token_id
from spmm.adapters.text.models import SentenceClassifier, SentenceEncoder
from spmm.modalities.text import encode_texts, use_attention

TEXTS = ["a gripping, beautifully acted film.", "dull", "the plot never comes together , sadly ."]


@pytest.fixture(scope="module")
def classifier(minilm):
    torch.manual_seed(0)
    head = nn.Linear(384, 2)
    head.requires_grad_(False)
    body = SentenceClassifier(SentenceEncoder(minilm[1]), head, ["negative", "positive"]).eval()
    return spmm.load(body, modality="text", tokenizer=minilm[0], labels=body.labels)


def test_real_minilm_audit_is_clean(classifier):
    report = classifier.audit(TEXTS)
    assert report.unhandled == [], str(report)
    assert {"layer_norm", "softmax (attention weights)"} <= set(report.handled.values())


def test_special_tokens_get_nothing_unless_asked(classifier):
    ex = classifier.explain(TEXTS[:1], target=1)
    special = ex.batch.special_mask[0]
    assert ex.attributions[0, special].abs().max() == 0
    assert ex.attributions[0, ~special].norm(dim=-1).min() > 0
    asked = classifier.explain(TEXTS[:1], target=1, prepare_options={"include_special": True}).attributions
    assert asked[0, special].norm(dim=-1).min() > 0


@pytest.mark.parametrize("method", ["soft_pullback", "integrated_pullbacks"])
def test_padded_batch_equals_one_by_one(classifier, method):
    params = {"steps": 8} if method == "integrated_pullbacks" else {}
    together = classifier.explain(TEXTS, [1, 0, 1], method, **params).attributions
    for i, text in enumerate(TEXTS):
        alone = classifier.explain([text], [1, 0, 1][i], method, **params).attributions
        length = alone.shape[1]
        torch.testing.assert_close(together[i, :length], alone[0], rtol=1e-4, atol=1e-6)
        assert together[i, length:].abs().sum() == 0


def test_cosine_similarity_target_matches_the_pooled_embedding(minilm):
    encoder = SentenceEncoder(minilm[1]).eval()
    model = spmm.load(encoder, modality="text", tokenizer=minilm[0])
    reference = torch.nn.functional.normalize(torch.randn(384), dim=0)
    ex = model.explain(TEXTS[:2], target=CosineSimilarity(reference), method="gradient")
    with torch.no_grad():
        pooled = encoder(ex.inputs, ex.batch.attention_mask)
    torch.testing.assert_close(ex.scores, pooled @ reference, rtol=1e-5, atol=1e-6)
    assert ex.attributions[ex.batch.attributable].norm(dim=-1).min() > 0


def test_bad_input_messages(classifier, minilm_tokenizer):
    with pytest.raises(SpmmInputError, match="empty"):
        classifier.explain(["fine", "   "])
    with pytest.raises(SpmmInputError, match="no text"):
        classifier.explain([])
    long_text = "word " * 600
    with pytest.raises(SpmmInputError, match="more than the model's maximum of 512"):
        classifier.explain(long_text, prepare_options={"on_overflow": "error"})
    with pytest.warns(UserWarning, match="truncated"):
        batch = encode_texts(minilm_tokenizer, [long_text])
    assert batch.input_ids.shape == (1, 512) and batch.special_mask[0, -1] and batch.truncated == [True]
    with pytest.raises(SpmmInputError, match=r"'neutral' is not one of the model's 2 labels"):
        classifier.explain("fine text", target="neutral")
    assert classifier.explain("fine text", target="Positive").target_index(0) == 1
    with pytest.raises(SpmmInputError, match="not one"):
        next_token_id(minilm_tokenizer, "unbelievably")
    assert next_token_id(minilm_tokenizer, "good") == minilm_tokenizer.convert_tokens_to_ids("good")
    with pytest.raises(SpmmInputError, match="tokenizer="):
        spmm.load(classifier.model, modality="text")
    with pytest.raises(SpmmInputError, match="get_input_embeddings"):
        spmm.load(nn.Linear(2, 2), modality="text", tokenizer=minilm_tokenizer)


def test_hugging_face_classifier_labels_from_config(minilm_tokenizer):
    import transformers as hf

    config = hf.BertConfig(vocab_size=len(minilm_tokenizer), hidden_size=8, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=8, id2label={0: "sad", 1: "happy"},
                           label2id={"sad": 0, "happy": 1})
    model = spmm.load(hf.BertForSequenceClassification(config).eval(), modality="text", tokenizer=minilm_tokenizer)
    assert model.labels == ["sad", "happy"] and model.rules.name == "text"
    ex = model.explain(["a fine film", "bad"], target="happy")
    assert [ex.target_label(i) for i in range(2)] == ["happy", "happy"]
    with torch.no_grad():
        logits = model.model.model(input_ids=ex.batch.input_ids, attention_mask=ex.batch.attention_mask).logits
    torch.testing.assert_close(ex.scores, logits[:, 1], rtol=1e-5, atol=1e-6)
    assert ex.attributions[~ex.batch.attributable].abs().max() == 0
    right_padded = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left_padded = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert last_positions(right_padded).tolist() == [2, 3]
    assert last_positions(left_padded).tolist() == [3, 3]


def test_decoder_next_token_padded_batch_equals_one_by_one(minilm_tokenizer):
    import transformers as hf

    torch.manual_seed(0)
    gpt2 = use_attention(hf.GPT2LMHeadModel(hf.GPT2Config(
        vocab_size=len(minilm_tokenizer), n_embd=16, n_layer=2, n_head=2, bos_token_id=1, eos_token_id=2)).eval(),
        "sdpa")
    model = spmm.load(gpt2, modality="text", tokenizer=minilm_tokenizer, add_special_tokens=False)
    assert model.labels is None
    token = next_token_id(minilm_tokenizer, "good")
    texts = ["the film was", "honestly , the long and winding story was"]
    batch = encode_texts(minilm_tokenizer, texts, add_special_tokens=False)
    together = model.explain(texts, NextTokenLogit(torch.full((2,), token), last_positions(batch.attention_mask)))
    assert not together.batch.special_mask.any()
    logits = gpt2(input_ids=batch.input_ids[:1, :3]).logits  # "the film was": three tokens
    torch.testing.assert_close(together.scores[0], logits[0, 2, token], rtol=1e-5, atol=1e-5)
    for i, text in enumerate(texts):
        alone_batch = encode_texts(minilm_tokenizer, [text], add_special_tokens=False)
        alone = model.explain([text], NextTokenLogit(torch.tensor([token]), last_positions(alone_batch.attention_mask)))
        length = alone.attributions.shape[1]
        torch.testing.assert_close(together.attributions[i, :length], alone.attributions[0], rtol=1e-4, atol=1e-6)


def test_flash_attention_is_refused(minilm_tokenizer):
    import transformers as hf

    model = hf.BertForSequenceClassification(hf.BertConfig(
        vocab_size=len(minilm_tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=8))
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(SpmmInputError, match="use_attention"):
        spmm.load(model, modality="text", tokenizer=minilm_tokenizer)
