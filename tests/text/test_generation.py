"""Language models through spmm.load(folder): next token, Contrast, Continuation matrices, SequenceLogProb.

Tiny random-init configs of every causal and sequence-to-sequence architecture, saved with
save_pretrained beside the MiniLM fast tokenizer, loaded back through ``spmm.load``.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import transformers as hf

import spmm
from spmm.adapters.text.models import minilm_path

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

VOCAB = 30522
CAUSAL = {
    "gpt2": lambda: hf.GPT2LMHeadModel(hf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64)),
    "gpt_neox": lambda: hf.GPTNeoXForCausalLM(hf.GPTNeoXConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64)),
    "llama": lambda: hf.LlamaForCausalLM(hf.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=64)),
    "mistral": lambda: hf.MistralForCausalLM(hf.MistralConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=64)),
    "qwen2": lambda: hf.Qwen2ForCausalLM(hf.Qwen2Config(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=64)),
    "gemma": lambda: hf.GemmaForCausalLM(hf.GemmaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, intermediate_size=64, max_position_embeddings=64)),
    "phi": lambda: hf.PhiForCausalLM(hf.PhiConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64)),
}
SEQ2SEQ = {
    "t5": lambda: hf.T5ForConditionalGeneration(hf.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=102)),
    "bart": lambda: hf.BartForConditionalGeneration(hf.BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        pad_token_id=0, bos_token_id=101, eos_token_id=102, decoder_start_token_id=102, forced_eos_token_id=None)),
    "marian": lambda: hf.MarianMTModel(hf.MarianConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        pad_token_id=0, eos_token_id=102, decoder_start_token_id=0, forced_eos_token_id=None)),
}
PROMPT = "the movie was"
SOURCE = "a gripping , funny film"


@pytest.fixture(scope="module")
def tokenizer():
    return hf.AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """name -> folder of a saved tiny model (built on first use)."""
    folders = {}

    def get(name: str):
        if name not in folders:
            torch.manual_seed(0)
            model = {**CAUSAL, **SEQ2SEQ}[name]().eval()
            folder = tmp_path_factory.mktemp(name)
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            folders[name] = folder
        return folders[name]

    return get


def token_matrix_reference(m, ids: list[int], rows: list[tuple[int, int]], method: str) -> torch.Tensor:
    """Independent reference of a causal Continuation matrix: for each (position, token), the next-token
    explanation of the prefix ids[:position + 1] alone, through the core (one prompt = one spmm.explain
    call on the prefix's embeddings), token scores ⟨attribution, embedding⟩, NaN on later columns."""
    lm = m.lm
    out = torch.full((len(rows), len(ids)), math.nan)
    for r, (position, token) in enumerate(rows):
        prefix = torch.tensor([ids[: position + 1]])
        embeddings = lm.get_input_embeddings()(prefix).detach()

        def next_logits(x, lm=lm):
            return lm(inputs_embeds=x).logits[:, -1]

        ex = spmm.explain(next_logits, embeddings, token, method, rules=m.rules.for_model(lm))
        out[r, : position + 1] = (ex.attributions * embeddings).sum(-1)[0]
    return out


@pytest.mark.parametrize("name", sorted(CAUSAL))
def test_causal_lm_forward_unchanged_audit_clean_and_sp_differs(name, saved):
    m = spmm.load(str(saved(name)))
    assert type(m).__name__ == "LanguageModel"
    ids = torch.tensor([[101, 2023, 3185, 2001, 2200]])
    with torch.no_grad():
        plain = m.lm(input_ids=ids).logits
        with m.rules.for_model(m.lm).mode():
            under = m.lm(input_ids=ids).logits
    assert torch.equal(plain, under)
    report = m.audit(PROMPT)
    assert report.unhandled == [], str(report)
    sp = m.explain(PROMPT, target=spmm.Continuation(max_new_tokens=3))
    grad = m.explain(PROMPT, target=spmm.Continuation(max_new_tokens=3), method="gradient")
    assert sp.row_tokens == grad.row_tokens
    defined = ~torch.isnan(sp.matrix)
    assert not torch.allclose(sp.matrix[defined], grad.matrix[defined], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize(("name", "strategy"), [("gpt2", "shared"), ("llama", "shared"), ("llama", "batched"),
                                              ("phi", "batched")])
def test_matrix_rows_equal_next_token_explanations_of_each_prefix(name, strategy, saved):
    m = spmm.load(str(saved(name)))
    ex = m.explain(PROMPT, target=spmm.Continuation(max_new_tokens=4), rows_per_pass=3, strategy=strategy)
    ids = m.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    generated = [m.tokenizer.convert_tokens_to_ids(t) for t in m.tokenizer.convert_ids_to_tokens(
        m.lm.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False, pad_token_id=0)[0, len(ids):].tolist())]
    full = ids + generated
    rows = [(len(ids) - 1 + t, tok) for t, tok in enumerate(generated)]
    reference = token_matrix_reference(m, full, rows, "soft_pullback")
    assert ex.matrix.shape == (4, len(full))
    torch.testing.assert_close(ex.matrix, reference, rtol=1e-4, atol=1e-6, equal_nan=True)
    # the rows explain the logits of the greedy tokens
    with torch.no_grad():
        logits = m.lm(input_ids=torch.tensor([full])).logits[0]
    expected = torch.stack([logits[p, tok] for p, tok in rows])
    torch.testing.assert_close(ex.row_scores, expected, rtol=1e-5, atol=1e-5)


def test_given_continuation_logprob_rows_and_sequence_logprob(saved):
    m = spmm.load(str(saved("llama")))
    text = "very good"
    rows = m.explain(PROMPT, target=spmm.Continuation(text, score="logprob"))
    whole = m.explain(PROMPT, target=spmm.SequenceLogProb(text))
    ids = m.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    new = m.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = m.lm(input_ids=torch.tensor([ids + new])).logits[0].log_softmax(-1)
    per_token = torch.stack([logp[len(ids) - 1 + t, tok] for t, tok in enumerate(new)])
    torch.testing.assert_close(rows.row_scores, per_token)
    torch.testing.assert_close(whole.scores, per_token.sum().view(1))
    # the gradient of a sum is the sum of the gradients: the log-prob row is the column sum of the rows
    torch.testing.assert_close(whole.matrix[0, :-1], rows.matrix.nansum(0)[:-1], rtol=1e-4, atol=1e-6)
    assert whole.matrix[0, -1] == 0  # the last token influences nothing


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_contrast_is_the_difference_of_two_logit_explanations(name, saved):
    m = spmm.load(str(saved(name)))
    contrast = m.explain(PROMPT, target=spmm.Contrast("good", "bad"))
    good, bad = m.explain(PROMPT, target="good"), m.explain(PROMPT, target="bad")
    torch.testing.assert_close(contrast.attributions, good.attributions - bad.attributions, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(contrast.scores, good.scores - bad.scores)
    assert contrast.target_label(0) == "good − bad"


def test_next_token_default_and_batch_of_prompts(saved):
    m = spmm.load(str(saved("llama")))
    ex = m.explain([PROMPT, "a dull , lifeless film"])
    with torch.no_grad():
        ids = m.tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt")["input_ids"]
        top = int(m.lm(input_ids=ids).logits[0, -1].argmax())
    assert ex.target_index(0) == top
    assert ex.predictions[0][0].index == top
    assert ex.to_dict()["items"][0]["extra"]["words"] == ["the", "movie", "was"]


def test_llama_sp_equals_module_swap_reference(saved, monkeypatch):
    """SP of a Llama = the plain gradient of a copy whose RMS multipliers and attention weights are
    detached, whose SiLU is x·σ(x) with σ(x/1) detached, and whose gated MLP keeps the product rule."""
    from transformers.models.llama import modeling_llama

    m = spmm.load(str(saved("llama")), attention="eager")
    ex = m.explain(PROMPT, target=spmm.Continuation(max_new_tokens=3))

    class DetachedRMS(torch.nn.Module):
        def __init__(self, norm):
            super().__init__()
            self.weight, self.eps = norm.weight, norm.variance_epsilon

        def forward(self, x):
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps).detach())

    class SiLUGate(torch.nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x / 1.0).detach()

    def detached_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        key = modeling_llama.repeat_kv(key, module.num_key_value_groups)
        value = modeling_llama.repeat_kv(value, module.num_key_value_groups)
        scores = query @ key.transpose(2, 3) * scaling
        if attention_mask is not None:
            scores = scores + attention_mask[:, :, :, : key.shape[-2]]
        weights = torch.softmax(scores.float(), dim=-1).to(query.dtype).detach()
        return (weights @ value).transpose(1, 2).contiguous(), weights

    reference = copy.deepcopy(m.lm)
    for parent in list(reference.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child).__name__ == "LlamaRMSNorm":
                setattr(parent, child_name, DetachedRMS(child))
            elif child_name == "act_fn":
                setattr(parent, child_name, SiLUGate())
    monkeypatch.setattr(modeling_llama, "eager_attention_forward", detached_attention)
    ids = m.tokenizer(PROMPT, add_special_tokens=False)["input_ids"] + [
        m.tokenizer.convert_tokens_to_ids(t) for t in ex.row_tokens]
    x = reference.get_input_embeddings()(torch.tensor([ids])).detach().requires_grad_(True)
    logits = reference(inputs_embeds=x).logits[0]
    p = len(ids) - 3
    for r, token in enumerate(ids[p:]):
        (grad,) = torch.autograd.grad(logits[p - 1 + r, token], x, retain_graph=True)
        expected = (grad * x.detach()).sum(-1)[0, : p + r]
        torch.testing.assert_close(ex.matrix[r, : p + r], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SEQ2SEQ))
def test_seq2seq_first_token_and_continuation(name, saved):
    m = spmm.load(str(saved(name)))
    assert m.encoder_decoder
    source = {k: v for k, v in m.tokenizer(SOURCE, return_tensors="pt").items() if k != "token_type_ids"}
    with torch.no_grad():
        plain = m.lm(**source, decoder_input_ids=torch.tensor([[m.lm.config.decoder_start_token_id]])).logits
        with m.rules.for_model(m.lm).mode():
            under = m.lm(**source, decoder_input_ids=torch.tensor([[m.lm.config.decoder_start_token_id]])).logits
    assert torch.equal(plain, under)
    first = m.explain(SOURCE)
    assert first.target_index(0) == int(plain[0, 0].argmax())
    ex = m.explain(SOURCE, target=spmm.Continuation(max_new_tokens=3))
    generated = m.lm.generate(**source, max_new_tokens=3, do_sample=False)[0, 1:].tolist()
    s = source["input_ids"].shape[1]
    assert ex.matrix.shape == (len(generated), s + 1 + len(generated))
    assert ex.prompt_columns == s
    # row 0 explains the first target token: its source columns equal the first-token explanation
    first_token = m.explain(SOURCE, target=generated[0])
    reference = (first_token.attributions * first_token.inputs).sum(-1)[0]
    torch.testing.assert_close(ex.matrix[0, :s], reference, rtol=1e-4, atol=1e-6)
    # later rows see the target prefix; nothing is defined from a row's own token on
    assert torch.isnan(ex.matrix[0, s + 1:]).all() and not torch.isnan(ex.matrix[-1, : s + len(generated)]).any()
    report = m.audit(SOURCE)
    assert report.unhandled == [], str(report)


def test_matrix_json_html_and_words(saved, tmp_path):
    m = spmm.load(str(saved("gpt2")))
    ex = m.explain("the unbelievably long movie was", target=spmm.Continuation("a masterpiece indeed"))
    record = json.loads(ex.save(tmp_path / "m.json").read_text())
    assert record["schema"] == "spmm.explanation/1" and record["units"] == "tokens x tokens"
    item = record["items"][0]
    rows, columns = len(item["extra"]["row_tokens"]), len(item["extra"]["column_tokens"])
    assert item["shape"] == [rows, columns] and len(item["scores"]) == rows
    assert item["scores"][0][-1] is None and item["scores"][-1][0] is not None
    page = ex.save(tmp_path / "m.html").read_text()
    assert page.count("<tr>") == rows + 1 and "masterpiece" in page.replace("##", "")
    words = ex.aggregate("words")
    tokens = ex.context_tokens
    assert len(tokens) > len(words.context_tokens)  # 'unbelievably' / 'masterpiece' are several word pieces
    assert words.context_tokens[:5] == ["the", "unbelievably", "long", "movie", "was"]
    assert words.row_tokens == ["a", "masterpiece", "indeed"]
    # a word cell sums its token cells (rows and columns), over the defined ones
    for i, row_word in enumerate(words.row_tokens):
        token_rows = [r for r, c in enumerate(ex.row_columns) if ex.context_words[c] == words.row_columns[i]]
        for j in range(len(words.context_tokens)):
            columns = [c for c, w in enumerate(ex.context_words) if w == j]
            block = ex.matrix[token_rows][:, columns].double()
            expected = math.nan if torch.isnan(block).all() else float(block.nansum())
            got = float(words.matrix[i, j])
            assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_bad_generation_inputs_are_one_line_errors(saved):
    m = spmm.load(str(saved("gpt2")))
    with pytest.raises(spmm.SpmmInputError, match="one prompt"):
        m.explain(["a", "b"], target=spmm.Continuation(max_new_tokens=2))
    with pytest.raises(spmm.SpmmInputError, match="not both"):
        spmm.Continuation("x", max_new_tokens=2)
    with pytest.raises(spmm.SpmmInputError, match="score"):
        spmm.Continuation(score="prob")
    with pytest.raises(spmm.SpmmInputError, match="generative model"):
        spmm.explain(lambda x: x, torch.ones(1, 3), spmm.Continuation())
    with pytest.raises(spmm.SpmmInputError, match="not one"):
        m.explain(PROMPT, target=spmm.Contrast("unbelievably", "bad"))


def test_seed_reproduces_and_model_is_unchanged(saved):
    m = spmm.load(str(saved("llama")))
    state = {k: v.clone() for k, v in m.lm.state_dict().items()}
    a = m.explain(PROMPT, target=spmm.Continuation(max_new_tokens=3), method="smooth_pullback", seed=3)
    b = m.explain(PROMPT, target=spmm.Continuation(max_new_tokens=3), method="smooth_pullback", seed=3)
    torch.testing.assert_close(a.matrix, b.matrix, equal_nan=True)
    assert all(torch.equal(v, m.lm.state_dict()[k]) for k, v in state.items())
    assert not m.lm.training and all(not p.requires_grad for p in m.lm.parameters())


def test_contrast_on_a_classifier_uses_label_names():
    model = torch.nn.Linear(3, 2).eval()
    x = torch.randn(4, 3)
    ex = spmm.explain(model, x, spmm.Contrast(1, 0), "gradient")
    torch.testing.assert_close(ex.attributions, (model.weight[1] - model.weight[0]).detach().expand(4, 3))
    named = spmm.explain(model, x, spmm.Contrast("pos", "neg"), "gradient", labels=["neg", "pos"])
    torch.testing.assert_close(named.attributions, ex.attributions)


def test_cli_generate_writes_matrix_html_and_json(saved, tmp_path, capsys):
    from spmm.cli import main

    folder = str(saved("llama"))
    assert main(["explain", folder, PROMPT, "--generate", "3", "--out", str(tmp_path / "out"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    html_file, json_file = record["files"]
    assert html_file.endswith(".html") and json_file.endswith(".json")
    saved_record = json.loads(open(json_file).read())
    (item,) = saved_record["items"]
    assert item["shape"] == [3, len(item["extra"]["column_tokens"])] and item["extra"]["prompt"] == PROMPT
    m = spmm.load(folder)
    direct = m.explain(PROMPT, target=spmm.Continuation(max_new_tokens=3), seed=0)
    assert item["extra"]["row_tokens"] == direct.row_tokens
    assert "<table" in open(html_file).read()
    assert main(["explain", "a fine film", "--generate", "3", "--out", str(tmp_path / "x")]) != 0
    assert "--generate needs a language model" in capsys.readouterr().err


def test_loaded_model_with_tokenizer_is_left_as_it_was(tokenizer):
    torch.manual_seed(0)
    model = CAUSAL["llama"]().eval()
    m = spmm.load(model, tokenizer=tokenizer)
    ex = m.explain(PROMPT, target=spmm.Continuation(max_new_tokens=2))
    assert ex.matrix.shape[0] == 2
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())
    assert tokenizer.padding_side == "right" and m.tokenizer is not tokenizer
    with pytest.raises(spmm.SpmmInputError, match="tokenizer"):
        spmm.load(model)
