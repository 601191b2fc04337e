"""Extractive question answering (BERT with token types, DistilBERT without) through ``spmm.load(folder)``:
spmm's pair encoding is the tokenizer's, the answer span is the best start + end pair the model
itself gives, and each explained output's gradient equals transformers' own autograd gradient."""

from __future__ import annotations

import pytest
import torch

import spmm

from .text_models import LAYER, hf, wordpiece

QUESTION = "where does alice live ?"
CONTEXT = "alice moved from berlin to paris last spring"
CONFIGS = {
    "BertForQuestionAnswering": lambda n: hf.BertConfig(vocab_size=n, **LAYER),
    "DistilBertForQuestionAnswering": lambda n: hf.DistilBertConfig(vocab_size=n, dim=32, n_layers=1, n_heads=2,
                                                                    hidden_dim=64),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def saved(request, tmp_path_factory):
    tokenizer = wordpiece()
    torch.manual_seed(0)
    model = getattr(hf, request.param)(CONFIGS[request.param](len(tokenizer))).eval()
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, request.param


def test_answer_span_words_and_gradients(saved):
    folder, architecture = saved
    m = spmm.load(str(folder))
    tokenizer = hf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = getattr(hf, architecture).from_pretrained(folder, local_files_only=True).eval().requires_grad_(False)
    encoded = tokenizer(QUESTION, CONTEXT, return_tensors="pt")
    prepared = m.prepare((QUESTION, CONTEXT))
    assert torch.equal(prepared.context["batch"].input_ids, encoded["input_ids"])

    # the answer: the best start + end over context tokens, start <= end (independent search)
    with torch.no_grad():
        out = model(**encoded)
    context = [i for i, s in enumerate(encoded.sequence_ids(0)) if s == 1]
    best = max(((s, e) for s in context for e in context if s <= e < s + 15),
               key=lambda p: float(out.start_logits[0, p[0]] + out.end_logits[0, p[1]]))
    assert prepared.context["spans"] == [best]
    with torch.no_grad():
        logits = prepared.model(prepared.inputs)[0]
    start, end = float(out.start_logits[0, best[0]]), float(out.end_logits[0, best[1]])
    torch.testing.assert_close(logits, torch.tensor([start + end, start, end]), rtol=1e-5, atol=1e-5)

    # gradients: transformers' autograd on inputs_embeds, special tokens held fixed
    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_(True)
    extra = {k: v for k, v in encoded.items() if k != "input_ids"}
    result = model(inputs_embeds=embeddings, **extra)
    free = ~torch.tensor(tokenizer(QUESTION, CONTEXT, return_special_tokens_mask=True)["special_tokens_mask"]).bool()
    for target, score in [("answer", result.start_logits[0, best[0]] + result.end_logits[0, best[1]]),
                          ("start", result.start_logits[0, best[0]]), ("end", result.end_logits[0, best[1]])]:
        gradient = torch.autograd.grad(score, embeddings, retain_graph=True)[0][0]
        ex = m.explain(question=QUESTION, context=CONTEXT, target=target, method="gradient")
        torch.testing.assert_close(ex.attributions[0][free], gradient[free], rtol=1e-4, atol=1e-6)
        assert ex.attributions[0][~free].abs().max() == 0

    # words over question then context, as substrings of the shown text; the answer is context text
    ex = m.explain([(QUESTION, CONTEXT)], method="gradient")
    text = QUESTION + "\n" + CONTEXT
    words = ex.words(0)
    assert ex.sources == [text] and words.units == (QUESTION + " " + CONTEXT).split()
    assert words.units == [text[s:e] for s, e in words.spans]
    answer = ex.predictions[0][0].label
    assert answer and answer in CONTEXT and ex.item_extra(0)["answer_tokens"] == list(best)


def test_bad_inputs_are_one_line_errors(saved):
    m = spmm.load(str(saved[0]))
    for bad in ["just a string", [("q",)], ("q", 3)]:
        with pytest.raises(spmm.SpmmInputError, match="question, context"):
            m.explain(bad)
    with pytest.raises(spmm.SpmmInputError, match="visible"):
        m.explain(question="\u200b", context=CONTEXT)
    with pytest.raises(spmm.SpmmInputError, match="'answer', 'start' or 'end'"):
        m.explain(question=QUESTION, context=CONTEXT, target="middle")
