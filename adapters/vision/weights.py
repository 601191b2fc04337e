"""Finding and reading vision checkpoints: local files and the user's existing caches only.

Nothing here downloads: the torch hub cache and the Hugging Face cache are only
looked into (``huggingface_hub.try_to_load_from_cache`` never touches the network).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from spmm.adapters.checkpoints import CHECKPOINT_SUFFIXES, state_mismatch
from spmm.errors import SpmmInputError

_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def _densenet_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Old torchvision DenseNet files name ``norm.1``; current modules expect ``norm1``."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    renamed = {}
    for key, value in state.items():
        match = pattern.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def _candidate_state_dicts(state: dict[str, Tensor], model: nn.Module):
    yield state
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:  # timm: converts original-repo checkpoints to timm's layout
        try:
            yield filter_fn(dict(state), model)
        except (KeyError, RuntimeError, ValueError, AttributeError):
            pass
    yield _densenet_keys(state)


def load_into(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load ``state`` strictly, trying the family's known key conversions; a mismatch -> SpmmInputError."""
    for candidate in _candidate_state_dicts(state, model):
        try:
            model.load_state_dict(candidate, strict=True)
            return
        except RuntimeError:
            continue
    raise SpmmInputError(
        f"{source} does not fit this {type(model).__name__}: {state_mismatch(model, state)}; is it a checkpoint of "
        "this architecture with the same number of classes (num_classes=)?"
    )


def torchvision_cache_file(name: str) -> Path | None:
    """Where torch hub would have cached torchvision's default weights for ``name``."""
    import torchvision

    try:
        url = torchvision.models.get_model_weights(name).DEFAULT.url
    except (ValueError, AttributeError):
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def cached_checkpoint(source: str, name: str, pretrained_cfg: Mapping[str, Any] | None) -> tuple[Path | None, list[str]]:
    """A cached checkpoint for the model, if the user already has one, and the places looked at."""
    looked: list[str] = []
    if source == "torchvision":
        path = torchvision_cache_file(name)
        if path is not None:
            looked.append(str(path))
            if path.is_file():
                return path, looked
        return None, looked
    cfg = pretrained_cfg or {}
    repo = cfg.get("hf_hub_id")
    if repo:
        from huggingface_hub import try_to_load_from_cache

        for filename in _HF_FILES:
            looked.append(f"Hugging Face cache {repo}/{filename}")
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found), looked
    url = cfg.get("url")
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        looked.append(str(path))
        if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
            return path, looked
    return None, looked
