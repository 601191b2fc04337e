"""Text task details: decoder-only classifiers without a pad token, dual encoders whose tokenizer
names no limit, ``max_length=`` on every text path."""

from __future__ import annotations

import pytest
import torch

import spmm

from .text_models import CELLS, TOKENIZERS, hf, sentencepiece_model

TEXTS = ["the movie was good", "bad"]


@pytest.mark.parametrize("name", ["llama-seqcls", "gpt2-seqcls"])
def test_decoder_classifier_pads_with_eos_and_reads_the_last_real_token(name):
    cell = next(c for c in CELLS if c.name == name)
    tokenizer = TOKENIZERS[cell.tokenizer]()
    assert tokenizer.pad_token is None
    torch.manual_seed(0)
    model = getattr(hf, cell.architecture)(cell.config(tokenizer)).eval()
    with pytest.warns(UserWarning, match="no pad token: texts are padded with its EOS token"):
        m = spmm.load(model, tokenizer=tokenizer)
    assert tokenizer.pad_token is None and model.config.pad_token_id is None  # the user's objects are left as they were
    prepared = m.prepare(TEXTS)
    with torch.no_grad():
        batched = prepared.model(prepared.inputs)
        alone = torch.cat([model(**tokenizer(text, return_tensors="pt")).logits for text in TEXTS])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)
    ex = m.explain(TEXTS, target=1, method="gradient")
    assert [len(ex.words(i).units) for i in range(2)] == [4, 1]


def test_dual_encoder_without_a_tokenizer_limit_loads_and_takes_max_length(tmp_path):
    tokenizer = TOKENIZERS["gpt2-bpe"]()
    tokenizer.pad_token = tokenizer.eos_token
    assert tokenizer.model_max_length > 10**20  # saved without a limit
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=16, eos_token_id=tokenizer.eos_token_id,
                bos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    torch.manual_seed(0)
    hf.CLIPModel(hf.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval().save_pretrained(tmp_path)
    hf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    long = " ".join(["the movie was good"] * 10)
    with pytest.warns(UserWarning, match="maximum of 16"):
        m = spmm.load(str(tmp_path), labels=["a cat", long])  # the position table's 16, not transformers' 1e30
    short = spmm.load(str(tmp_path), labels=["a cat", "a dog"], max_length=8)
    image = torch.zeros(1, 3, 32, 32)
    assert m.explain(image, target="a cat").attributions.shape == image.shape
    with pytest.warns(UserWarning, match="maximum of 8"):
        ex = short.explain_text(long, image=image, method="gradient")
    assert len(ex.words(0).units) < len(long.split())


def test_siglip_with_its_sentencepiece_tokenizer_loads_and_explains_words(tmp_path):
    """SigLIP's tokenizer exists only as a sentencepiece ("slow") one: its words come from aligned offsets."""
    (tmp_path / "spiece.model").write_bytes(sentencepiece_model())
    tokenizer = hf.SiglipTokenizer(str(tmp_path / "spiece.model"))
    assert not tokenizer.is_fast
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=16, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    torch.manual_seed(0)
    hf.SiglipModel(hf.SiglipConfig(text_config=text, vision_config=vision)).eval().save_pretrained(tmp_path)
    hf.SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    m = spmm.load(str(tmp_path), labels=["a cat", "a dog on the grass"])
    ex = m.explain_text("a dog on the  grass!", image=torch.zeros(1, 3, 32, 32), method="gradient")
    assert ex.words(0).units == ["a", "dog", "on", "the", "grass"]  # SigLIP's tokenizer drops punctuation
    assert ex.words(0).spans[-1] == (14, 19)
