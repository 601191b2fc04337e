"""Where Grad-CAM reads a spatial map, per architecture (facts in :data:`~.facts.CAM_LAYERS`).

Token models (ViT, DeiT) have no spatial layer: for the duration of a ``with`` block a
:class:`TokenGridTap` wraps the last block and passes its patch tokens through an
identity laid out as a grid; leaving the block puts the original module back, so the
user's model is never left changed.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError

from .facts import CAM_LAYERS, PREFIX_TOKEN_PARAMETERS, CamLayer


def _classifier(model: nn.Module) -> nn.Module:
    """The wrapped classifier of a [−1, 1] wrapper (anything with ``.model``), else ``model``."""
    from .models import UnitRangeInput

    return model.model if isinstance(model, UnitRangeInput) else model


def _facts(model: nn.Module) -> CamLayer | None:
    cls = type(model)
    return CAM_LAYERS.get(f"{cls.__module__.split('.')[0]}.{cls.__name__}")


def _prefix_tokens(inner: nn.Module, facts: CamLayer) -> int:
    """Leading non-patch tokens of ``inner``: the fact itself, the attribute it names, or the
    class/distillation/register token parameters of the embeddings module it names."""
    if isinstance(facts.prefix_tokens, int):
        return facts.prefix_tokens
    value = functools.reduce(getattr, facts.prefix_tokens.split("."), inner)
    if isinstance(value, nn.Module):
        tokens = (getattr(value, name, None) for name in PREFIX_TOKEN_PARAMETERS)
        return sum(int(token.shape[1]) for token in tokens if token is not None)
    return int(value)


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


def _replace(parent: nn.Module, name: str, module: nn.Module) -> None:
    if name.lstrip("-").isdigit():
        parent[int(name)] = module
    else:
        setattr(parent, name, module)


@contextlib.contextmanager
def gradcam_layer(model: nn.Module) -> Iterator[nn.Module]:
    """The layer Grad-CAM (``guided_gradcam``/``guided_pb_cam``) reads for ``model``, for the
    duration of the block; its output is (B, C, h, w).

    CNNs: the last convolutional stage (per-family facts), else the last ``Conv2d`` (never for a
    ``transformers`` class without facts: there it would be the patch embedding).
    ViT/DeiT: the last block's patch tokens, laid out as a grid by a :class:`TokenGridTap` that is
    removed again when the block ends (outputs are unchanged while it is in place).

    >>> with gradcam_layer(model) as layer:
    ...     spmm.explain(model, x, 3, "guided_pb_cam", layer=layer)
    """
    inner = _classifier(model)
    facts = _facts(inner)
    if facts is None and type(inner).__module__.startswith("transformers."):
        raise SpmmInputError(
            f"no Grad-CAM layer known for {type(inner).__name__} (spmm does not guess for transformers classes: "
            "their last Conv2d is often the patch embedding); pass layer=<module>"
        )
    if facts is None:
        convs = [m for m in inner.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise SpmmInputError(
                f"no Grad-CAM layer known for {type(inner).__name__} and it has no Conv2d; pass layer=<module>"
            )
        yield convs[-1]
        return
    *parents, last = facts.path.split(".")
    parent = functools.reduce(_child, parents, inner)
    layer = _child(parent, last)
    if not facts.tokens:
        yield layer
        return
    grid_size = getattr(getattr(inner, "patch_embed", None), "grid_size", None)
    tap = TokenGridTap(layer, _prefix_tokens(inner, facts), tuple(grid_size) if grid_size is not None else None)
    _replace(parent, last, tap)
    try:
        yield tap.grid
    finally:
        _replace(parent, last, layer)
