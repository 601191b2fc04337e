"""Reading checkpoint files for every model family: local files only, tensors only.

``weights_only`` loading everywhere: a file holding a pickled module or code is refused, never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from spmm.errors import SpmmInputError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint file: .safetensors, or a torch file holding a state dict, possibly
    inside a ``state_dict``/``model`` wrapper and with a ``module.`` (DataParallel) prefix."""
    path = Path(path)
    if not path.is_file():
        raise SpmmInputError(f"no checkpoint file at {path}; pass weights=PATH to an existing .pth/.pt/.safetensors file")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise SpmmInputError(f"{path} is not a checkpoint: expected one of {', '.join(CHECKPOINT_SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch/safetensors raise many types for corrupt or pickled-module files
        raise SpmmInputError(
            f"cannot read {path} as a checkpoint ({type(error).__name__}: {error}); save a state dict "
            "(torch.save(model.state_dict(), path)), not a whole pickled model"
        ) from error
    for key in _WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise SpmmInputError(f"{path} does not hold a state dict of tensors")
    return _strip_prefixes(dict(loaded))


def _strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop a ``module.`` prefix, and the [−1, 1] wrapper's ``model.`` prefix and mean/std buffers."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    inner = [k for k in state if k not in ("mean", "std")]
    if "mean" in state and "std" in state and inner and all(k.startswith("model.") for k in inner):
        state = {k[len("model."):]: state[k] for k in inner}
    return state


