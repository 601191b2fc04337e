"""Registers the vision family with the core: the ``vision`` rule set, the embedded
``efficientnet-lite0`` and every torchvision/timm classifier name for ``spmm.load``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from spmm.explainable import Explainable
from spmm.load import SpecResolver, register_model, register_resolver
from spmm.adapters.hf.rules import transformer_module_rules
from spmm.ruleset import RuleSet, register_ruleset

from .cam import gradcam_layer
from .rules import VISION_MODULE_RULES

VISION_RULES = register_ruleset(RuleSet(
    "vision", module_rules=VISION_MODULE_RULES, model_rules=transformer_module_rules, cam_layer=gradcam_layer,
))
"""SPEC §2 temperatures, squeeze-excitation gates held constant, transformer blocks written as
arithmetic (QuickGELU, RMS norms, gated MLPs), Grad-CAM layers per family."""

IMAGENET_CLASSES = 1000
MAX_NAME_LENGTH = 100
"""Longer specs (or ones with spaces or path separators) are never torchvision/timm names."""


def _explainable(model: Any, name: str, labels: Sequence[str] | None, size: int = 224,
                 classes: int = IMAGENET_CLASSES) -> Explainable:
    from spmm.modalities.image.modality import ImageModality

    from .models import imagenet_class_names

    if labels is None and classes == IMAGENET_CLASSES:
        labels = imagenet_class_names()
    return Explainable(model, ImageModality(size), VISION_RULES, list(labels) if labels else None, name)


@register_model("efficientnet-lite0", "image", "ImageNet EfficientNet-Lite0 (embedded weights, 1000 classes)",
                default=True)
def load_lite0(weights: str | Path | None = None, random_init: bool = False,
               labels: Sequence[str] | None = None) -> Explainable:
    """The embedded weights, or (``weights``) a local checkpoint of the same architecture."""
    from .models import load_model

    model = load_model("tf_efficientnet_lite0", weights=weights, random_init=random_init)
    return _explainable(model, "efficientnet-lite0", labels)


def _is_classifier_name(spec: str) -> bool:
    if len(spec) > MAX_NAME_LENGTH or any(c.isspace() or c in "/\\" for c in spec):
        return False
    from .models import resolve_source

    try:
        resolve_source(spec)
    except ValueError:
        return False
    return True


def load_classifier(
    spec: str,
    weights: str | Path | None = None,
    random_init: bool = False,
    labels: Sequence[str] | None = None,
    size: int = 224,
    **model_kwargs: Any,
) -> Explainable:
    """Any torchvision/timm classifier (``timm:NAME``/``torchvision:NAME`` pick the library) with
    ``weights`` from a local checkpoint (or the user's cache), or ``random_init=True``."""
    from .models import load_model

    model = load_model(spec, weights=weights, random_init=random_init, **model_kwargs)
    return _explainable(model, spec, labels, size, model_kwargs.get("num_classes", IMAGENET_CLASSES))


register_resolver(SpecResolver(
    "torchvision/timm", _is_classifier_name, load_classifier,
    "any torchvision/timm classifier name (weights=PATH to a local checkpoint, or random_init=True)",
))
