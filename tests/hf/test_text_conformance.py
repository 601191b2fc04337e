"""Hugging Face text conformance: for each architecture × task (tests/hf/text_models.py), a tiny
model saved with a tokenizer of its real kind loads with ``spmm.load(folder)`` alone, and

- spmm tokenises as the model's own tokenizer does (same ids), and the model on spmm's prepared
  embeddings gives the output of the model run by transformers on the tokenizer's output (≤ 1e-5);
- the forward is bit-identical under the rule set (rules change the backward only);
- the words are the input's own substrings, in order, covering every visible character, and the
  word-split text ``"the movie was good"`` gives its four words whatever the tokenizer kind;
- units and shapes are right; for language models, row 0 of a continuation matrix equals the
  single-step explanation of the prompt, with the same words after ``aggregate("words")``.
"""

from __future__ import annotations

import math

import pytest
import torch

import spmm

from .text_models import CELLS, hf, text_folder  # noqa: F401  (text_folder: fixture)

TEXTS = ["the movie was  good, isn't it?", "the cat sat"]
SIMPLE = "the movie was good"
PROMPT = "the movie was"
RTOL = 1e-5


def reference(folder, cell, tokenizer):
    """The checkpoint loaded by transformers itself, with a pad token as a transformers user sets it."""
    model = getattr(hf, cell.architecture).from_pretrained(folder, local_files_only=True).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.requires_grad_(False)


def texts_for(cell, tokenizer):
    if cell.task == "fill-mask":
        return [f"the capital of france is {tokenizer.mask_token} .", f"the {tokenizer.mask_token} sat"]
    return TEXTS


def expected_output(cell, model, encoded, mask_id):
    """The transformers model's output on the tokenizer's encoding, read as spmm's task reads it."""
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    rows = torch.arange(ids.shape[0])
    last = mask.sum(1) - 1
    with torch.no_grad():
        if cell.task == "seq2seq":
            start = torch.full((ids.shape[0], 1), model.generation_config.decoder_start_token_id
                               if model.generation_config.decoder_start_token_id is not None
                               else model.config.decoder_start_token_id)
            return model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).logits[:, 0]
        logits = model(input_ids=ids, attention_mask=mask).logits
    if cell.task == "causal-lm":
        return logits[rows, last]
    if cell.task == "fill-mask":
        return logits[rows, (ids == mask_id).long().argmax(1)]
    return logits


def relative_error(got, want, mask=None):
    if mask is not None:
        got, want = got[mask], want[mask]
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_text_cell(cell, text_folder):  # noqa: F811
    folder = text_folder(cell)
    m = spmm.load(str(folder))
    tokenizer = hf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = reference(folder, cell, tokenizer)
    texts = texts_for(cell, tokenizer)

    # same tokens as the tokenizer, same output as transformers on them
    prepared = m.modality.prepare(m.model, texts)
    batch = prepared.context["batch"]
    encoded = tokenizer(texts, padding=True, return_tensors="pt",
                        add_special_tokens=getattr(m.modality, "add_special_tokens", True))
    assert torch.equal(batch.input_ids, encoded["input_ids"]), (batch.tokens, encoded["input_ids"])
    with torch.no_grad():
        plain = prepared.model(prepared.inputs)
    want = expected_output(cell, model, encoded, tokenizer.mask_token_id)
    mask = encoded["attention_mask"].bool() if cell.task == "token-classification" else None
    assert plain.shape == want.shape
    assert relative_error(plain, want, mask) <= RTOL

    # the rules leave the forward bit for bit
    rules = m.rules.for_model(prepared.model)
    with torch.no_grad(), rules.mode():
        under_rules = prepared.model(prepared.inputs)
    assert torch.equal(under_rules, plain)

    # words: input substrings, in order, covering every visible character
    for i, text in enumerate(texts):
        words = [w for w in set(batch.word_ids[i]) if w is not None]
        assert words == list(range(len(words)))
    if cell.task == "token-classification":
        target = spmm.TokenLabel("the", "top1")
    elif cell.task == "fill-mask":
        target = "top1"
    else:
        target = 0 if cell.task == "sequence-classification" else "top1"
    ex = m.explain(texts, target=target, method="gradient")
    assert ex.units == "words" and ex.attributions.shape == ex.inputs.shape == prepared.inputs.shape
    for i, text in enumerate(texts):
        scored = ex.words(i)
        assert scored.units == [text[s:e] for s, e in scored.spans]
        assert all(a[1] <= b[0] for a, b in zip(scored.spans, scored.spans[1:]))
        covered = {c for s, e in scored.spans for c in range(s, e)}
        assert covered >= {c for c, ch in enumerate(text) if not ch.isspace()}, (text, scored.units)
        assert ex.item_scores(i).shape == (len(scored.units),)
        assert math.isclose(sum(scored.scores), float(ex.token_scores()[i].sum()), rel_tol=1e-4, abs_tol=1e-6)
    if cell.task != "fill-mask":
        simple = m.explain(SIMPLE, target=spmm.TokenLabel("movie", "top1") if cell.task == "token-classification"
                           else target, method="gradient")
        assert simple.words(0).units == SIMPLE.split()

    if cell.task in ("causal-lm", "seq2seq"):
        check_generation_row(m)


def check_generation_row(m):
    """Row 0 of a continuation = the single-step explanation of the prompt's next token, on the same
    words; aggregate("words") keeps the prompt's words."""
    continuation = "sat on" if m.encoder_decoder else " sat on"
    matrix = m.explain(PROMPT, target=spmm.Continuation(continuation), method="gradient")
    first = m.tokenizer(continuation, add_special_tokens=False)["input_ids"][0]
    single = m.explain(PROMPT, target=first, method="gradient")
    prompt_columns = matrix.prompt_columns
    expected = single.token_scores()[0, :prompt_columns].double()
    scale = float(expected.abs().max())
    torch.testing.assert_close(matrix.matrix[0, :prompt_columns].double(), expected, rtol=1e-4, atol=1e-5 * scale)
    # the same words: the prompt's columns carry the single-step explanation's word of each token
    assert matrix.context_words[:prompt_columns] == single.batch.word_ids[0][:prompt_columns]
    assert single.words(0).units == PROMPT.split()
    words = matrix.aggregate("words")
    assert words.context_tokens[: words.prompt_columns] == PROMPT.split()
    assert [t.strip() for t in words.row_tokens] == ["sat", "on"]


@pytest.mark.parametrize("strategy", ["shared", "batched"])
def test_generation_rows_carry_the_ops_the_rules_left_exact(text_folder, strategy):  # noqa: F811
    """Mamba's selective scan has no SP rule: a continuation explained with SoftPullback lists the
    ops that kept their exact gradient, as spmm.audit of the same forward does (and says so in the JSON)."""
    cell = next(c for c in CELLS if c.name == "mamba-causal")
    m = spmm.load(str(text_folder(cell)))
    ex = m.explain(PROMPT, target=spmm.Continuation(" sat on"), method="soft_pullback", strategy=strategy)
    exact = ex.to_dict()["exact_gradient_ops"]
    audited = m.audit(PROMPT).unhandled
    assert exact and set(exact) == set(audited)
