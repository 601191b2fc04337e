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
