"""Reading checkpoint files for every model family: local files only, tensors only.

``weights_only`` loading everywhere: a file holding a pickled module or code is refused, never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pickle

import torch
from torch import Tensor

from spmm.errors import SpmmInputError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
PICKLED_OBJECTS = ("the checkpoint is refused: torch's safe loader (weights_only) found something other than tensors in it (pickled "
                   "objects, which could run code, or damaged bytes); save a state dict of tensors "
                   "(torch.save(model.state_dict(), path)) or a .safetensors file")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint file: .safetensors, or a torch file holding a state dict, possibly
    inside a ``state_dict``/``model`` wrapper and with a ``module.`` (DataParallel) prefix."""
    path = Path(path)
    if not path.is_file():
        raise SpmmInputError(f"no checkpoint file at {path}; pass weights=PATH to an existing .pth/.pt/.safetensors file")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise SpmmInputError(f"{path} is not a checkpoint: expected one of {', '.join(CHECKPOINT_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise SpmmInputError(f"{path}: the checkpoint is empty (0 bytes); is the download or copy complete?")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch/safetensors raise many types for corrupt files
        if refused_pickle(error):
            raise SpmmInputError(f"{path}: {PICKLED_OBJECTS}") from None
        raise SpmmInputError(
            f"cannot read {path} as a checkpoint ({type(error).__name__}: {first_line(error)}); is the file complete? "
            "save a state dict (torch.save(model.state_dict(), path)), not a whole pickled model"
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise SpmmInputError(f"{path} does not hold a state dict of tensors")
    return _strip_prefixes(dict(loaded))


def refused_pickle(error: BaseException) -> bool:
    """Whether ``error`` is torch's ``weights_only`` unpickler refusing what it found (an object
    other than tensors, a possible code payload, or bytes it cannot parse)."""
    return isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in str(error)


def state_mismatch(model: torch.nn.Module, state: Mapping[str, Tensor], shown: int = 5) -> str:
    """What keeps ``state`` from loading strictly into ``model``, in one line: missing and
    unexpected keys, and weights of another shape (file vs model), the first ``shown`` of each."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state))[:shown], sorted(set(state) - set(expected))[:shown]
    reshaped = [f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}" for key, value in expected.items()
                if key in state and state[key].shape != value.shape][:shown]
    return f"missing keys {missing}, unexpected keys {unexpected}, other shapes (file vs model) {reshaped}"


def first_line(error: BaseException) -> str:
    """The first non-empty line of a library's error message (torch and transformers add
    paragraphs and reports below it), for one-line errors."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop a ``module.`` prefix, and the [−1, 1] wrapper's ``model.`` prefix and mean/std buffers."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    inner = [k for k in state if k not in ("mean", "std")]
    if "mean" in state and "std" in state and inner and all(k.startswith("model.") for k in inner):
        state = {k[len("model."):]: state[k] for k in inner}
    return state


