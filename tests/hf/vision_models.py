"""Tiny Hugging Face image classifiers for the conformance suite: each family's model class from a
small random-init config, saved with its own image processor class built offline with that class's
defaults (crop_pct, channel flip, include_top…) and only the size made small."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

SIDE = 32
LABELS = {0: "tabby", 1: "tiger", 2: "lynx"}
VIT_LIKE = dict(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=37)
SQUARE = {"height": SIDE, "width": SIDE}


@dataclasses.dataclass(frozen=True)
class VisionCell:
    """One architecture: the model class, its tiny config and its processor (names in ``transformers``)."""

    model_class: str
    config: Callable[[Any], Any]
    processor: Callable[[Any], Any]


VISION_CELLS: dict[str, VisionCell] = {
    "vit": VisionCell("ViTForImageClassification", lambda t: t.ViTConfig(**VIT_LIKE),
                      lambda t: t.ViTImageProcessor(size=SQUARE)),
    "deit": VisionCell("DeiTForImageClassificationWithTeacher", lambda t: t.DeiTConfig(**VIT_LIKE),
                       lambda t: t.DeiTImageProcessor(size={"height": 40, "width": 40}, crop_size=SQUARE)),
    "beit": VisionCell("BeitForImageClassification", lambda t: t.BeitConfig(**VIT_LIKE),
                       lambda t: t.BeitImageProcessor(size=SQUARE, crop_size=SQUARE)),
    "swin": VisionCell("SwinForImageClassification", lambda t: t.SwinConfig(
        image_size=SIDE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4),
        lambda t: t.ViTImageProcessor(size=SQUARE)),
    "convnext": VisionCell("ConvNextForImageClassification", lambda t: t.ConvNextConfig(
        hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
        lambda t: t.ConvNextImageProcessor(size={"shortest_edge": SIDE})),          # crop_pct 0.875
    "resnet": VisionCell("ResNetForImageClassification", lambda t: t.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"),
        lambda t: t.ConvNextImageProcessor(size={"shortest_edge": SIDE})),
    "regnet": VisionCell("RegNetForImageClassification", lambda t: t.RegNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8, layer_type="y"),
        lambda t: t.ConvNextImageProcessor(size={"shortest_edge": SIDE})),
    "efficientnet": VisionCell("EfficientNetForImageClassification", lambda t: t.EfficientNetConfig(
        image_size=SIDE, width_coefficient=0.25, depth_coefficient=0.25, hidden_dim=320),
        lambda t: t.EfficientNetImageProcessor(size=SQUARE)),                        # include_top
    "mobilevit": VisionCell("MobileViTForImageClassification", lambda t: t.MobileViTConfig(
        image_size=SIDE, hidden_sizes=[16, 16, 16], neck_hidden_sizes=[8, 8, 8, 16, 16, 16, 32], num_attention_heads=2,
        patch_size=2), lambda t: t.MobileViTImageProcessor(size={"shortest_edge": 36}, crop_size=SQUARE)),  # BGR
    "pvt": VisionCell("PvtForImageClassification", lambda t: t.PvtConfig(
        image_size=SIDE, num_encoder_blocks=2, depths=[1, 1], sequence_reduction_ratios=[2, 1], hidden_sizes=[16, 32],
        patch_sizes=[4, 2], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2]),
        lambda t: t.PvtImageProcessor(size=SQUARE)),
    "pvt_v2": VisionCell("PvtV2ForImageClassification", lambda t: t.PvtV2Config(
        image_size=SIDE, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
        patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2]),
        lambda t: t.PvtImageProcessor(size=SQUARE)),
    "dinov2": VisionCell("Dinov2ForImageClassification", lambda t: t.Dinov2Config(**VIT_LIKE),
                         lambda t: t.BitImageProcessor(size={"shortest_edge": SIDE}, crop_size=SQUARE)),
    "data2vec_vision": VisionCell("Data2VecVisionForImageClassification", lambda t: t.Data2VecVisionConfig(**VIT_LIKE),
                                  lambda t: t.BeitImageProcessor(size=SQUARE, crop_size=SQUARE)),
}


def save_vision_cell(transformers: Any, name: str, folder) -> None:
    """Build cell ``name`` (seeded, eval mode, non-trivial batch-norm statistics) and save model and processor."""
    cell = VISION_CELLS[name]
    torch.manual_seed(0)
    config = cell.config(transformers)
    config.num_labels = len(LABELS)  # PVT keeps num_labels apart from id2label
    config.id2label, config.label2id = LABELS, {v: k for k, v in LABELS.items()}
    model = getattr(transformers, cell.model_class)(config).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(folder)
    cell.processor(transformers).save_pretrained(folder)


# -- audio ---------------------------------------------------------------------------------------
RATE = 16000
AUDIO_LABELS = {0: "yes", 1: "no", 2: "up"}
WAVEFORM_LIKE = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                     conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                     num_conv_pos_embedding_groups=2, classifier_proj_size=8)


@dataclasses.dataclass(frozen=True)
class AudioCell:
    """One audio architecture: model class, tiny config, feature extractor, the keyword the model
    takes its features under, and the attribution shape (frames, bins) of a 1 s clip."""

    model_class: str
    config: Callable[[Any], Any]
    extractor: Callable[[Any], Any]
    input_name: str
    shape: tuple[int, int]


def _waveform_cell(family: str, normalize: bool) -> AudioCell:
    return AudioCell(f"{family}ForSequenceClassification", lambda t: getattr(t, f"{family}Config")(**WAVEFORM_LIKE),
                     lambda t: t.Wav2Vec2FeatureExtractor(do_normalize=normalize), "input_values", (126, 257))


AUDIO_CELLS: dict[str, AudioCell] = {
    "wav2vec2": _waveform_cell("Wav2Vec2", True),
    "hubert": _waveform_cell("Hubert", True),
    "wavlm": _waveform_cell("WavLM", False),
    "data2vec_audio": _waveform_cell("Data2VecAudio", True),
    "ast": AudioCell("ASTForAudioClassification", lambda t: t.ASTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, patch_size=16,
        frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=32),
        lambda t: t.ASTFeatureExtractor(num_mel_bins=32, max_length=100), "input_values", (100, 32)),
    "whisper_encoder": AudioCell("WhisperForAudioClassification", lambda t: t.WhisperConfig(
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=37, decoder_ffn_dim=37, num_mel_bins=16, max_source_positions=50, classifier_proj_size=8,
        vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1),
        lambda t: t.WhisperFeatureExtractor(feature_size=16, chunk_length=1), "input_features", (100, 16)),
}


def save_audio_cell(transformers: Any, name: str, folder) -> None:
    """Build audio cell ``name`` (seeded, eval mode) and save model and feature extractor."""
    cell = AUDIO_CELLS[name]
    torch.manual_seed(0)
    config = cell.config(transformers)
    config.id2label, config.label2id = AUDIO_LABELS, {v: k for k, v in AUDIO_LABELS.items()}
    getattr(transformers, cell.model_class)(config).eval().save_pretrained(folder)
    cell.extractor(transformers).save_pretrained(folder)


# -- dual encoders ---------------------------------------------------------------------------------
DUAL_TEXT = dict(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=64)
DUAL_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=SIDE,
                   patch_size=8)


def _clip(t: Any) -> tuple[Any, Any]:
    config = t.CLIPConfig(text_config=dict(DUAL_TEXT, eos_token_id=102, bos_token_id=101, pad_token_id=0),
                          vision_config=DUAL_VISION, projection_dim=16)
    return t.CLIPModel(config), t.CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size=SQUARE)


def _siglip(t: Any) -> tuple[Any, Any]:
    model = t.SiglipModel(t.SiglipConfig(text_config=dict(DUAL_TEXT, pad_token_id=0), vision_config=DUAL_VISION))
    with torch.no_grad():
        model.logit_scale.fill_(1.5)
        model.logit_bias.fill_(-2.0)
    return model, t.SiglipImageProcessor(size=SQUARE)


def _siglip2(t: Any) -> tuple[Any, Any]:
    vision = {k: v for k, v in DUAL_VISION.items() if k != "image_size"}
    model = t.Siglip2Model(t.Siglip2Config(text_config=dict(DUAL_TEXT, pad_token_id=0),
                                           vision_config=dict(vision, num_patches=16)))
    return model, t.Siglip2ImageProcessor(patch_size=8, max_num_patches=16)


DUAL_CELLS: dict[str, Callable[[Any], tuple[Any, Any]]] = {"clip": _clip, "siglip": _siglip, "siglip2": _siglip2}
"""name -> builder of (model, image processor); the tokenizer is the offline MiniLM fast tokenizer
(vocabulary 30522), saved with model_max_length 64, the text towers' position limit."""


def save_dual_cell(transformers: Any, name: str, folder) -> None:
    """Build dual cell ``name`` (seeded, eval mode) and save model, image processor and tokenizer."""
    from spmm.adapters.text.models import minilm_path

    torch.manual_seed(0)
    model, processor = DUAL_CELLS[name](transformers)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True,
                                                           model_max_length=DUAL_TEXT["max_position_embeddings"])
    tokenizer.save_pretrained(folder)
