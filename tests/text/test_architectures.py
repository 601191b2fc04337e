"""Every supported architecture: forward unchanged under SP, nothing unhandled in the audit."""

from __future__ import annotations

import pytest
import torch
import transformers as hf

import spmm
from spmm.adapters.text import NextTokenLogit
from spmm.modalities.text import EmbeddingModel, HFOutput, embed, use_attention

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

SMALL = dict(vocab_size=120)
ARCHITECTURES = {
    "bert": lambda: hf.BertForSequenceClassification(hf.BertConfig(
        **SMALL, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3)),
    "bert-quick-gelu": lambda: hf.BertForSequenceClassification(hf.BertConfig(
        **SMALL, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=2,
        hidden_act="quick_gelu")),
    "distilbert": lambda: hf.DistilBertForSequenceClassification(hf.DistilBertConfig(
        **SMALL, dim=32, n_layers=2, n_heads=2, hidden_dim=64, num_labels=3)),
    "roberta": lambda: hf.RobertaForSequenceClassification(hf.RobertaConfig(
        **SMALL, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3)),
    "gpt2": lambda: hf.GPT2LMHeadModel(hf.GPT2Config(**SMALL, n_embd=32, n_layer=2, n_head=2, bos_token_id=1,
                                                     eos_token_id=2)),
    "llama": lambda: hf.LlamaForCausalLM(hf.LlamaConfig(
        **SMALL, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, bos_token_id=1, eos_token_id=2)),
}
DECODERS = {"gpt2", "llama"}


def build(name: str, attention: str):
    torch.manual_seed(0)
    model = use_attention(ARCHITECTURES[name]().eval(), attention)
    ids = torch.randint(5, 120, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    embeddings = embed(model, ids)
    wrapped = EmbeddingModel(HFOutput(model), mask, embeddings, mask.bool())
    return model, wrapped, embeddings, mask


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_forward_unchanged_and_nothing_unhandled(name, attention):
    model, wrapped, embeddings, _ = build(name, attention)
    rules = spmm.get_ruleset("text").for_model(wrapped)
    with torch.no_grad():
        plain = wrapped(embeddings)
    x = embeddings.clone().requires_grad_(True)
    with rules.mode():
        under_rules = wrapped(x)
    torch.testing.assert_close(under_rules.detach(), plain, rtol=1e-5, atol=1e-5)
    report = spmm.audit(wrapped, embeddings, temperatures=rules.temperatures, module_rules=rules.module_rules)
    assert report.unhandled == [], str(report)
    assert report.handled, "the audit saw no rule at all"


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_soft_pullback_runs_and_differs_from_gradient(name):
    model, wrapped, embeddings, mask = build(name, "eager")
    if name in DECODERS:
        target = NextTokenLogit(torch.tensor([7, 9]), mask.sum(1) - 1)
    else:
        target = 1
    sp = spmm.explain(wrapped, embeddings, target, "soft_pullback", rules="text").attributions
    grad = spmm.explain(wrapped, embeddings, target, "gradient").attributions
    assert torch.isfinite(sp).all()
    assert sp[0].abs().sum() > 0
    assert not torch.allclose(sp, grad, rtol=1e-3, atol=1e-6)
    # padding rows are fixed: no attribution there
    assert sp[1, 5:].abs().max() == 0
