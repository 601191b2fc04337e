"""Word aggregation, feature groups and rendering on hand-written examples (real MiniLM tokenizer)."""

from __future__ import annotations

import pytest
import torch

from spmm import SpmmInputError
from spmm.modalities import text as text_modality
from spmm.modalities.text import encode_texts, render
from spmm.modalities.text.words import pattern_regions, piece_scores, region_scores, sentence_regions


def test_word_scores_sum_the_right_pieces(minilm_tokenizer):
    # [CLS] token ##ization rocks ! [SEP]
    batch = encode_texts(minilm_tokenizer, ["Tokenization rocks!"])
    assert batch.tokens[0] == ["[CLS]", "token", "##ization", "rocks", "!", "[SEP]"]
    scores = torch.tensor([100.0, 1.0, 2.0, 4.0, 8.0, 16.0])
    words = text_modality.word_scores(batch.texts[0], scores, batch.word_ids[0], batch.offsets[0])
    assert words.units == ["Tokenization", "rocks", "!"]
    assert words.scores == [3.0, 4.0, 8.0]
    assert words.spans == [(0, 12), (13, 18), (18, 19)]


def test_multi_piece_words_and_punctuation(minilm_tokenizer):
    text = "it's unbelievably good, isn't it?"
    batch = encode_texts(minilm_tokenizer, [text, "ok"])  # padded to the longer text
    # [CLS] it ' s un ##bel ##ie ##va ##bly good , isn ' t it ? [SEP]
    scores = torch.zeros(batch.input_ids.shape[1])
    scores[:17] = torch.arange(17, dtype=torch.float)
    words = text_modality.word_scores(text, scores, batch.word_ids[0], batch.offsets[0])
    # words are the text's pieces (inner apostrophes kept), whatever the pre-tokenizer split off
    assert words.units == ["it's", "unbelievably", "good", ",", "isn't", "it", "?"]
    assert words.scores == [1.0 + 2 + 3, 4.0 + 5 + 6 + 7 + 8, 9.0, 10.0, 11.0 + 12 + 13, 14.0, 15.0]
    short = text_modality.word_scores("ok", torch.ones(scores.shape[0]), batch.word_ids[1], batch.offsets[1])
    assert short.units == ["ok"] and short.scores == [1.0]  # special tokens and padding left out


def test_token_scores_closed_forms():
    attributions = torch.tensor([[[1.0, 2.0], [3.0, -4.0]]])
    embeddings = torch.tensor([[[0.5, 0.5], [1.0, 1.0]]])
    baseline = torch.tensor([0.5, 0.0])
    torch.testing.assert_close(text_modality.token_scores(attributions, embeddings), torch.tensor([[1.5, -1.0]]))
    torch.testing.assert_close(
        text_modality.token_scores(attributions, embeddings, baseline=baseline), torch.tensor([[1.0, -2.5]])
    )
    torch.testing.assert_close(text_modality.token_scores(attributions, embeddings, "norm"),
                               torch.tensor([[5**0.5, 5.0]]))
    torch.testing.assert_close(text_modality.token_scores(attributions, embeddings, "sum"), torch.tensor([[3.0, -1.0]]))
    with pytest.raises(SpmmInputError, match="kind"):
        text_modality.token_scores(attributions, embeddings, "absolute")


def test_groups_replace_and_delete(minilm_tokenizer):
    batch = encode_texts(minilm_tokenizer, ["Tokenization rocks!", "ok"])
    groups = text_modality.word_groups(batch)
    assert groups.tolist() == [[-1, 0, 0, 1, 2, -1], [-1, 0, -1, -1, -1, -1]]
    assert text_modality.token_groups(batch).tolist() == [[-1, 0, 1, 2, 3, -1], [-1, 0, -1, -1, -1, -1]]
    removed = torch.tensor([[True, False, True], [False, False, False]])
    mask_id = minilm_tokenizer.mask_token_id
    replaced = text_modality.replace_groups(batch.input_ids, groups, removed, mask_id)
    expected = batch.input_ids.clone()
    expected[0, [1, 2, 4]] = mask_id
    assert torch.equal(replaced, expected)
    ids, mask = text_modality.delete_groups(batch.input_ids, batch.attention_mask, groups, removed, 0)
    assert ids[0].tolist() == [batch.input_ids[0, 0].item(), batch.input_ids[0, 3].item(),
                               batch.input_ids[0, 5].item(), 0, 0, 0]
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0]
    assert torch.equal(ids[1], batch.input_ids[1]) and torch.equal(mask[1], batch.attention_mask[1])


def test_segments():
    text, spans = text_modality.concatenate_segments(["good film", "bad plot"])
    assert text == "good film bad plot" and spans == [(0, 9), (10, 18)]


def test_rendering():
    scored = text_modality.SpanScores("a <b> c", ["a", "<b>", "c"], [1.0, -0.5, 0.0], [(0, 1), (2, 5), (6, 7)])
    page = render.render_html(scored, note="truncated")
    assert 'title="+1"' in page and "&lt;b&gt;" in page and 'title="-0.5"' in page
    assert "rgb(255,0,0)" in page  # the strongest positive word is full red
    assert "rgb(128,128,255)" in page  # half-strength negative is light blue
    assert 'class="spmm-legend"' in page and "+1" in page and "-1" in page  # legend spans −max..+max
    assert "<em>truncated</em>" in page
    terminal = render.render_terminal(scored)
    assert "\x1b[48;2;255;0;0m" in terminal and terminal.count("\x1b[0m") == 3
    plain = render.render_terminal(scored, colour=False)
    assert plain == "a[+1] <b>[-0.5] c[+0]"


def test_sentence_and_pattern_regions_sum_their_tokens(minilm_tokenizer):
    text = "Great acting. Terrible, dull plot! ok"
    batch = encode_texts(minilm_tokenizer, [text])
    assert sentence_regions(text) == [(0, 13), (14, 34), (35, 37)]
    scores = torch.arange(batch.input_ids.shape[1], dtype=torch.float)  # [CLS] great acting . terrible , dull plot ! ok [SEP]
    sentences = region_scores(text, scores, batch.word_ids[0], batch.offsets[0], sentence_regions(text))
    assert sentences.units == ["Great acting.", "Terrible, dull plot!", "ok"]
    assert sentences.scores == [1.0 + 2 + 3, 4.0 + 5 + 6 + 7 + 8, 9.0]
    matches = region_scores(text, scores, batch.word_ids[0], batch.offsets[0],
                                  pattern_regions(text, r"[A-Z]\w+"))
    assert matches.units == ["Great", "Terrible"] and matches.scores == [1.0, 4.0]
    pieces = piece_scores(text, scores, batch.word_ids[0], batch.offsets[0], batch.tokens[0])
    assert pieces.units[:3] == ["great", "acting", "."] and pieces.scores == [float(i) for i in range(1, 10)]
    with pytest.raises(SpmmInputError, match="regular expression"):
        pattern_regions(text, "(")
