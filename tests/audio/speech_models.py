"""Tiny speech-to-text models for the speech tests, random weights saved with ``save_pretrained``
next to processors built offline: CTC heads (Wav2Vec2, HuBERT, WavLM) with a
``Wav2Vec2CTCTokenizer`` from a small character vocabulary and a ``Wav2Vec2FeatureExtractor``;
Whisper with a ``WhisperFeatureExtractor`` (16 mel bands, 1 s windows) and a byte-level
``WhisperTokenizer`` from a tiny vocabulary and merges."""

from __future__ import annotations

import json
from pathlib import Path

import torch

RATE = 16000
CTC_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]
WAVEFORM_LIKE = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                     conv_dim=(16, 16), conv_stride=(10, 8), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                     num_conv_pos_embedding_groups=2)
WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
WHISPER_MERGES = ["Ġ t", "t h", "Ġt h", "h e", "Ġth e", "Ġ a", "i n", "Ġ s"]


def save_tiny_ctc(folder: Path, family: str = "wav2vec2", seed: int = 0, do_normalize: bool = True) -> Path:
    """A random tiny ``<Family>ForCTC`` with its ``Wav2Vec2Processor``, saved in ``folder``."""
    import transformers as t

    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(CTC_VOCAB)}))
    tokenizer = t.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"))
    extractor = t.Wav2Vec2FeatureExtractor(do_normalize=do_normalize)
    config_class, model_class = {
        "wav2vec2": (t.Wav2Vec2Config, t.Wav2Vec2ForCTC), "hubert": (t.HubertConfig, t.HubertForCTC),
        "wavlm": (t.WavLMConfig, t.WavLMForCTC),
    }[family]
    config = config_class(**WAVEFORM_LIKE, vocab_size=len(CTC_VOCAB), pad_token_id=tokenizer.pad_token_id,
                          ctc_loss_reduction="sum")
    torch.manual_seed(seed)
    model_class(config).eval().save_pretrained(folder)
    t.Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def whisper_tokenizer(folder: Path):
    """A byte-level ``WhisperTokenizer`` over the letters, a space and a few merges, with Whisper's
    special tokens (end of text, start of transcript, language, task, no timestamps)."""
    import transformers as t

    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    for piece in ["Ġ", *(a + b for a, b in (merge.split() for merge in WHISPER_MERGES))]:
        vocab.setdefault(piece, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(WHISPER_MERGES) + "\n")
    end = WHISPER_SPECIALS[0]
    tokenizer = t.WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=end,
                                   bos_token=end, eos_token=end, pad_token=end)
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIALS[1:]})
    return tokenizer


def save_tiny_whisper(folder: Path, seed: int = 0) -> Path:
    """A random tiny ``WhisperForConditionalGeneration`` (16 mel bands, 1 s windows: 100 frames)
    with its ``WhisperProcessor``, saved in ``folder``."""
    import transformers as t

    tokenizer = whisper_tokenizer(folder)
    end, *others = tokenizer.convert_tokens_to_ids(WHISPER_SPECIALS)
    config = t.WhisperConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                             decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, num_mel_bins=16,
                             max_source_positions=50, max_target_positions=32, vocab_size=len(tokenizer),
                             pad_token_id=end, bos_token_id=end, eos_token_id=end, decoder_start_token_id=others[0],
                             suppress_tokens=others, begin_suppress_tokens=[end])  # transcripts of letters
    torch.manual_seed(seed)
    model = t.WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    extractor = t.WhisperFeatureExtractor(feature_size=16, chunk_length=1)
    t.WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


FEW_DRAWS = {"steps": 4, "samples": 4, "baseline_draws": 2, "model_samples": 2, "input_samples": 2}
"""Fewer samples and steps than the defaults (the every-method tests check shapes and finiteness)."""


def few_draws(method: str) -> dict:
    """The :data:`FEW_DRAWS` settings ``method`` takes."""
    from spmm.methods.registry import get_method

    return {name: value for name, value in FEW_DRAWS.items() if name in get_method(method).defaults}
