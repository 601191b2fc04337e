"""Words from character offsets for every tokenizer kind, offsets of sentencepiece tokenizers by
alignment, refusals of texts with nothing to explain, token limits that always resolve."""

from __future__ import annotations

import types

import pytest
import torch

import spmm
from spmm.modalities.text.batch import DEFAULT_TOKEN_LIMIT, token_limit
from spmm.modalities.text import encode_texts
from spmm.modalities.text.alignment import aligned_offsets, piece_surface
from spmm.modalities.text.spans import token_words, trimmed, word_pieces

from .text_models import TOKENIZERS, hf, marian, metaspace_bpe, sentencepiece_model

HARD = "the movie was  good, isn't it?\nok"
PIECES = ["the", "movie", "was", "good", ",", "isn't", "it", "?", "ok"]
KINDS = sorted(TOKENIZERS) + ["llama-metaspace-split", "marian"]


def visible(text, span):
    """A span trimmed of whitespace; None when it holds only whitespace (where it sits is immaterial)."""
    start, end = trimmed(text, span)
    return (start, end) if start < end else None


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    made = {name: build() for name, build in TOKENIZERS.items()}
    made["llama-metaspace-split"] = metaspace_bpe(True)
    made["marian"] = marian(tmp_path_factory.mktemp("marian"))
    return made


def test_pieces_by_hand():
    assert [HARD[s:e] for s, e in word_pieces(HARD)] == PIECES
    text = "l’homme... (ok)_x 'quoted' naïve\u200dx 東京に"
    assert [text[s:e] for s, e in word_pieces(text)] == ["l’homme", "...", "(", "ok", ")", "_x", "'", "quoted", "'",
                                                          "naïve\u200dx", "東", "京", "に"]


def test_a_token_joins_the_pieces_it_covers():
    text = "東京に it?"
    offsets = [(0, 2), (2, 3), (3, 6), (6, 7)]  # 東京 | に | " it" (leading space) | ?
    words, spans = token_words(text, offsets, [True] * 4)
    assert words == [0, 1, 2, 3] and spans == [(0, 2), (2, 3), (4, 6), (6, 7)]
    words, spans = token_words(text, [(0, 1), (1, 3), (3, 7)], [True] * 3)  # 東 | 京に | " it?"
    assert words == [0, 1, 2] and spans == [(0, 1), (1, 3), (4, 7)]  # "京に" and "it?" are one word each
    words, spans = token_words("a  b", [(0, 1), (1, 2), (2, 4)], [True, True, True])  # a | " " | " b"
    assert words == [0, 1, 1] and spans == [(0, 1), (3, 3), (3, 4)]  # a whitespace token joins the next word


@pytest.mark.parametrize("kind", KINDS)
def test_words_are_the_texts_pieces_for_every_tokenizer_kind(kind, tokenizers):
    tokenizer = tokenizers[kind]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = encode_texts(tokenizer, ["the movie was good", HARD])
    scores = torch.ones(batch.input_ids.shape[1])
    simple = spmm.modalities.text.word_scores(batch.texts[0], scores, batch.word_ids[0], batch.offsets[0])
    assert simple.units == ["the", "movie", "was", "good"]  # no leading space, no sentence-long word
    assert simple.scores == [float(sum(1 for w in batch.word_ids[0] if w == i)) for i in range(4)]
    hard = spmm.modalities.text.word_scores(HARD, scores, batch.word_ids[1], batch.offsets[1])
    assert hard.units == [HARD[s:e] for s, e in hard.spans]
    # a word is one or more whole pieces, in order; every piece is in a word
    joined = [unit[s:e] for unit in hard.units for s, e in word_pieces(unit)]
    assert joined == PIECES, hard.units
    assert batch.total_words == [4, len(hard.units)]


def test_metaspace_without_split_is_one_word_to_transformers_but_not_to_spmm(tokenizers):
    tokenizer = tokenizers["llama-metaspace"]
    assert set(tokenizer("the movie was good").word_ids()) - {None} == {0}  # the bug this fixes
    batch = encode_texts(tokenizer, "the movie was good")
    assert len({w for w in batch.word_ids[0] if w is not None}) == 4


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_aligned_offsets_equal_the_fast_tokenizers_own(kind, tokenizers):
    """The alignment used for tokenizers without offsets, run on a fast tokenizer's pieces, gives its
    own offset_mapping (trimmed of whitespace) wherever a piece spells text."""
    tokenizer = tokenizers[kind]
    encoded = tokenizer(HARD, add_special_tokens=False, return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    scored = [True] * len(pieces)
    aligned = aligned_offsets(tokenizer, HARD, pieces, scored)
    own = [trimmed(HARD, span) for span in encoded["offset_mapping"]]
    assert token_words(HARD, aligned, scored)[0] == token_words(HARD, own, scored)[0]
    spelled = [p for p, piece in enumerate(pieces) if piece_surface(tokenizer, piece)]  # not a lone "▁"
    assert [visible(HARD, aligned[p]) for p in spelled] == [visible(HARD, own[p]) for p in spelled]


def test_sentencepiece_offsets_equal_the_fast_conversion_of_the_same_model(tmp_path):
    """Marian's sentencepiece tokenizer (no offsets) against the fast tokenizer converted from the
    same sentencepiece model by transformers: same pieces, same character spans."""
    from transformers.convert_slow_tokenizer import SpmConverter

    slow = marian(tmp_path)
    model_file = types.SimpleNamespace(vocab_file=str(tmp_path / "source.spm"), handle_byte_fallback=False)
    fast = hf.PreTrainedTokenizerFast(tokenizer_object=SpmConverter(model_file).converted())
    assert sentencepiece_model()  # trained offline
    for text in [HARD, "naïve café: 東京 — ok!", "unbelievably  good"]:
        pieces = slow.tokenize(text)
        assert fast.tokenize(text) == pieces
        encoded = fast(text, add_special_tokens=False, return_offsets_mapping=True)
        own = [trimmed(text, span) for span in encoded["offset_mapping"]]
        aligned = aligned_offsets(slow, text, pieces, [True] * len(pieces))
        spelled = [p for p, piece in enumerate(pieces) if piece_surface(slow, piece)]
        assert [visible(text, aligned[p]) for p in spelled] == [visible(text, own[p]) for p in spelled], pieces


@pytest.mark.parametrize("text", ["", "  \n", "\u200b\u200b", "\u200d", "\x00\x07", "\u200b \u2060"])
def test_texts_without_visible_characters_are_refused_in_one_line(text, tokenizers):
    tokenizers["gpt2-bpe"].pad_token = tokenizers["gpt2-bpe"].eos_token
    with pytest.raises(spmm.SpmmInputError, match="text 1 holds no visible character") as raised:
        encode_texts(tokenizers["gpt2-bpe"], ["fine", text])
    assert "\n" not in str(raised.value)


def test_token_limits_always_resolve(tokenizers):
    t5 = hf.T5Config(vocab_size=10, d_model=8, num_layers=1, num_heads=1)
    bloom = hf.BloomConfig(vocab_size=10, hidden_size=8, n_layer=1, n_head=1)
    unlimited = tokenizers["t5-unigram"]
    assert unlimited.model_max_length > 10**20  # saved without a limit: transformers' sentinel
    assert token_limit(unlimited, t5) == token_limit(unlimited, bloom) == DEFAULT_TOKEN_LIMIT
    assert token_limit(unlimited, hf.GPT2Config(n_positions=64)) == 64
    assert token_limit(unlimited, hf.RobertaConfig(max_position_embeddings=66, pad_token_id=1)) == 64
    assert token_limit(unlimited, t5, max_length=7) == 7
    with pytest.raises(spmm.SpmmInputError, match="max_length"):
        token_limit(unlimited, t5, max_length=0)
    long = " ".join(["good"] * 40)
    with pytest.warns(UserWarning, match="truncated"):
        batch = encode_texts(unlimited, long, max_length=8)
    assert batch.input_ids.shape[1] == 8 and batch.truncated == [True]
    assert encode_texts(unlimited, long).input_ids.shape[1] > 40  # no limit known: nothing is cut
