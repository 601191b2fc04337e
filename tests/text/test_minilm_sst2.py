"""``spmm.load("minilm-sst2").explain(...)``: labels, word scores against an independent computation,
the JSON schema, truncation, HTML, terminal output and the ``text`` rule set."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch

import spmm
from spmm.explanation import SCHEMA
from spmm.load import default_model
from spmm.modalities.text.datasets import read_sst2

SENTENCE = "a gripping , funny film"
ITEM_KEYS = {"input", "target", "predictions", "shape", "scores", "extra"}


@pytest.fixture(scope="module")
def explained(sst2):
    return sst2.explain([SENTENCE, "Dull and lifeless. The plot never comes together!"])


def _independent_words(model: spmm.Explainable, text: str, attributions: torch.Tensor, kind: str = "signed"):
    """(words, word scores): the tokenizer's own encoding, embeddings from the embedding layer, token
    score ⟨attr, embedding⟩ (or ‖attr‖) summed per word; special tokens left out."""
    encoding = model.modality.tokenizer(text, return_offsets_mapping=True)
    ids = torch.tensor(encoding["input_ids"])
    with torch.no_grad():
        embeddings = model.model.get_input_embeddings()(ids)
    rows = attributions[: ids.numel()]
    tokens = (rows * embeddings).sum(-1) if kind == "signed" else rows.norm(dim=-1)
    totals: dict[int, float] = {}
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for position, word in enumerate(encoding.word_ids()):
        if word is not None:
            totals[word] = totals.get(word, 0.0) + float(tokens[position])
            start, end = encoding["offset_mapping"][position]
            starts.setdefault(word, start)
            ends[word] = end
    return [text[starts[w]:ends[w]] for w in sorted(totals)], [totals[w] for w in sorted(totals)]


def test_default_text_model_and_its_rule_set(sst2, explained):
    assert default_model("text") == "minilm-sst2"
    assert sst2.rules.name == "text" and sst2.labels == ["negative", "positive"]
    described = explained.rules.describe()
    assert described["name"] == "text" and described["temperatures"]["silu"] == 1.0
    assert "L2Normalize" in " ".join(described["module_rules"])  # resolved for this model by model_rules
    assert explained.modality == "text" and explained.units == "words"
    assert explained.target_label(0) == "positive" and explained.target_label(1) == "negative"


def test_attributions_are_the_text_rule_set_pullback(sst2, explained):
    """soft_pullback = d logit / d embeddings under the text rules (special tokens held fixed)."""
    ids = sst2.modality.tokenizer(SENTENCE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        embeddings = sst2.model.get_input_embeddings()(ids)
    x = embeddings.clone().requires_grad_(True)
    rules = spmm.get_ruleset("text").for_model(sst2.model)
    with rules.mode():
        logit = sst2.model(x, torch.ones_like(ids))[0, 1]
    (grad,) = torch.autograd.grad(logit, x)
    (plain,) = torch.autograd.grad(sst2.model(x, torch.ones_like(ids))[0, 1], x)
    inner = slice(1, ids.shape[1] - 1)  # [CLS] and [SEP] are held fixed
    torch.testing.assert_close(explained.attributions[0, inner], grad[0, inner], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(grad[0, inner], plain[0, inner], rtol=1e-2, atol=1e-5)  # the rules matter here
    assert explained.attributions[0, 0].abs().max() == 0


@pytest.mark.parametrize("kind", ["signed", "norm"])
def test_word_scores_equal_the_independent_computation(sst2, explained, kind):
    scored = explained.scored(kind)
    for i, text in enumerate(scored.sources):
        words, scores = _independent_words(sst2, text, scored.attributions[i], kind)
        assert scored.item_extra(i)["words"] == words
        torch.testing.assert_close(scored.item_scores(i), torch.tensor(scores, dtype=torch.float64),
                                   rtol=1e-5, atol=1e-7)
    assert scored.item_extra(0)["words"] == SENTENCE.split()


def test_to_dict_follows_the_schema(explained):
    record = json.loads(explained.to_json())
    assert record["schema"] == SCHEMA and record["modality"] == "text" and record["units"] == "words"
    assert record["model"] == "minilm-sst2" and record["method"] == "soft_pullback"
    assert record["rules"]["name"] == "text"
    for i, item in enumerate(record["items"]):
        assert set(item) == ITEM_KEYS
        assert item["input"] == explained.sources[i]
        assert item["target"]["label"] == explained.target_label(i)
        assert item["target"]["score"] == pytest.approx(float(explained.scores[i]), abs=1e-5)
        assert {p["label"] for p in item["predictions"]} == {"negative", "positive"}
        assert sum(p["probability"] for p in item["predictions"]) == pytest.approx(1.0, abs=1e-5)
        assert item["predictions"][0]["label"] == item["target"]["label"]  # target="top1"
        extra = item["extra"]
        assert item["shape"] == [len(extra["words"])] == [len(item["scores"])] == [len(extra["spans"])]
        assert [item["input"][s:e] for s, e in extra["spans"]] == extra["words"]
        assert extra["tokens"][0] == "[CLS]" and extra["tokens"][-1] == "[SEP]"
        assert extra["truncated"] is False and extra["words_scored"] == extra["words_total"] == len(extra["words"])
        assert extra["token_score"] == "signed"


def test_long_text_truncation_is_flagged(sst2, tmp_path):
    long_text = "good " * 5000
    with pytest.warns(UserWarning, match="truncated"):
        ex = sst2.explain([long_text, SENTENCE])
    extra = ex.to_dict()["items"][0]["extra"]
    assert extra["truncated"] is True
    assert extra["words_total"] == 5000 and extra["words_scored"] == 510  # 512 tokens − [CLS] − [SEP]
    assert len(extra["words"]) == 510
    assert ex.to_dict()["items"][1]["extra"]["truncated"] is False
    assert "510 of 5000 words scored" in ex.save(tmp_path / "long.html").read_text()
    with pytest.raises(spmm.SpmmInputError, match="maximum of 512"):
        sst2.explain(long_text, prepare_options={"on_overflow": "error"})


def test_html_has_coloured_words_and_a_legend(explained, tmp_path):
    page = explained.save(tmp_path / "out" / "words.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('<div class="spmm-text">') == 2
    assert page.count('class="spmm-legend"') == 2
    words = explained.words(0)
    strongest = max(range(len(words.units)), key=lambda w: abs(words.scores[w]))
    # full red takes black text (WCAG contrast 5.3 vs 4.0 for white), full blue white text (8.6 vs 2.4)
    full = "rgb(255,0,0);color:rgb(0,0,0)" if words.scores[strongest] > 0 else "rgb(0,0,255);color:rgb(255,255,255)"
    assert f'<span style="background:{full}" title="{words.scores[strongest]:+.4g}">{words.units[strongest]}</span>' in page
    assert "explained &#x27;positive&#x27;" in page


def test_show_writes_no_ansi_under_no_color(explained, capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # as if printing to a terminal
    explained.show()
    assert "\x1b[48;2;" in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    explained.show()
    out = capsys.readouterr().out
    assert "\x1b" not in out and "gripping[" in out and "explained 'positive'" in out
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)  # piped
    explained.show()
    assert "\x1b" not in capsys.readouterr().out


def test_aggregations_sum_the_token_scores(explained):
    tokens = explained.token_scores()
    for by in ("tokens", "words", "sentences"):
        aggregated = explained.aggregate(by)
        assert isinstance(aggregated, spmm.Explanation) and aggregated.units == by
        for i in range(len(aggregated)):
            assert float(aggregated.item_scores(i).sum()) == pytest.approx(float(tokens[i].sum()), rel=1e-5, abs=1e-7)
    sentences = explained.aggregate("sentences")
    words = explained.words(1)
    assert sentences.group_names[1] == ["Dull and lifeless.", "The plot never comes together!"]
    assert float(sentences.item_scores(1)[0]) == pytest.approx(sum(words.scores[:4]), rel=1e-5)
    matches = explained.aggregate(regex=r"funny|plot")
    assert matches.group_names == [["funny"], ["plot"]]
    assert matches.item_scores(0).tolist() == pytest.approx([explained.words(0).scores[3]])
    with pytest.raises(spmm.SpmmInputError, match="sentences"):
        explained.aggregate("paragraphs")


def test_integrated_methods_score_by_sum_and_noise_follows_the_embedding_table(sst2):
    ex = sst2.explain(SENTENCE, method="integrated_pullbacks", steps=4)
    assert ex.score == "sum"
    torch.testing.assert_close(ex.token_scores(), ex.attributions.sum(-1))
    table = sst2.model.get_input_embeddings().weight  # MiniLM's embedding layer is a plain lookup
    spread = float(table.amax() - table.amin())
    for texts in ([SENTENCE], ["ok", SENTENCE + " and more words here"]):  # not the batch's range
        prepared = sst2.prepare(texts)
        assert sst2.modality.method_params("smooth_pullback", prepared.inputs, prepared.model) == {
            "noise": pytest.approx(0.075 * spread)}
    assert sst2.modality.method_params("soft_pullback", prepared.inputs, prepared.model) == {}


def test_zero_shot_needs_labels_and_explains_any_of_them():
    with pytest.raises(spmm.SpmmInputError, match="labels"):
        spmm.load("minilm-zero-shot")
    model = spmm.load("minilm-zero-shot", labels=["sports", "finance"])
    ex = model.explain("the striker scored twice in the final", target="finance")
    assert ex.predictions[0][0].label == "sports" and ex.target_label(0) == "finance"


@pytest.mark.real_data
def test_top_labels_on_real_sst2_sentences(sst2, shared_data):
    texts, labels = read_sst2(shared_data / "text" / "sst2" / "stsa.binary.test")
    picks = [i for i in range(len(texts)) if len(texts[i].split()) <= 12][:8]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # short sentences: nothing truncated
        ex = sst2.explain([texts[i] for i in picks])
    predicted = [ex.predictions[i][0].label for i in range(len(picks))]
    with torch.no_grad():
        for i, text in enumerate(ex.sources):  # one by one, no padding: the same top label
            ids = sst2.modality.tokenizer(text, return_tensors="pt")["input_ids"]
            logits = sst2.model(sst2.model.get_input_embeddings()(ids), torch.ones_like(ids))
            assert sst2.labels[int(logits.argmax())] == predicted[i]
    gold = [sst2.labels[labels[i]] for i in picks]
    assert sum(p == g for p, g in zip(predicted, gold)) >= 7, list(zip(predicted, gold, ex.sources))


def test_registration_does_not_import_transformers():
    code = ("import sys, spmm, spmm.adapters.text, spmm.modalities.text.modality; spmm.list_models(); "
            "spmm.get_ruleset('text'); assert 'transformers' not in sys.modules, 'transformers imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
