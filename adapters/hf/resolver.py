"""``spmm.load`` for Hugging Face models: a ``save_pretrained`` folder, a model id in the local
HF cache (offline, nothing is downloaded) or an already loaded ``PreTrainedModel``.

The folder is read as data only (:mod:`.folder`: no custom code, every weight present).
The config's first architecture picks the task (:mod:`.tasks`); the model loads with an
attention kernel the SP rules see (``sdpa`` where the class supports it, else ``eager``),
in eval mode, parameters frozen (explanations need input gradients only).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable
from spmm.load import ModuleResolver, SpecResolver, call_loader, register_module_resolver, register_resolver

from .folder import load_config, load_weights
from .tasks import task_for


def is_pretrained_folder(spec: str) -> bool:
    """A folder holding a ``config.json`` (what ``save_pretrained`` writes); False for texts no file
    system could hold (too long, NUL bytes)."""
    try:
        return (Path(spec).expanduser() / "config.json").is_file()
    except (OSError, ValueError):
        return False


def is_cached_model_id(spec: str) -> bool:
    """An ``org/name`` id whose config is in the local Hugging Face cache."""
    if spec.count("/") != 1 or any(c.isspace() for c in spec) or len(spec) > 200 or Path(spec).exists():
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(spec, "config.json"), str)
    except ValueError:  # not a valid repo id (HFValidationError), e.g. "./no_such/folder"
        return False


def is_pretrained_model(module: nn.Module) -> bool:
    """A loaded ``transformers`` model (checked by its class tree, without importing transformers)."""
    return any(cls.__name__ == "PreTrainedModel" for cls in type(module).__mro__)


def attention_kernel(model_class: type, requested: str | None, has_attention: bool = True) -> str:
    """The attention kernel to load ``model_class`` with: ``requested`` when the SP rules see it
    ("sdpa", "eager"); a kernel they cannot see (flash_attention_2/3, flex_attention, paged…) is
    replaced by sdpa with a warning; a class without sdpa runs eager attention, with a warning
    (explicit softmax: handled by the attention-weights rule, but slower and larger) unless the model
    has no attention at all (``has_attention`` False: convolutional models such as ResNet, ConvNeXt)."""
    from spmm.modalities.text.embedding import ATTENTION_IMPLEMENTATIONS

    has_sdpa = bool(getattr(model_class, "_supports_sdpa", False))
    if requested is not None and requested not in ATTENTION_IMPLEMENTATIONS:
        warnings.warn(
            f"the {requested!r} attention kernel is invisible to the SP rules; {model_class.__name__} is loaded "
            f"with {'sdpa' if has_sdpa else 'eager'} attention instead", stacklevel=3,
        )
        requested = None
    if requested == "eager":
        return "eager"
    if has_sdpa:
        return "sdpa"
    if not has_attention:
        return "eager"
    warnings.warn(
        f"{model_class.__name__} has no sdpa attention kernel: it runs eager attention (its softmax gets the "
        "attention rule; explanations are slower and use more memory)", stacklevel=3,
    )
    return "eager"


def load_pretrained(spec: str, attention: str | None = None, **options: Any) -> Explainable:
    """The Explainable of the model saved at ``spec`` (folder or cached id); ``attention``:
    "sdpa" or "eager" (default: sdpa where supported; see :func:`attention_kernel`)."""
    import transformers

    from spmm.adapters.text.models import quiet_loading

    source = str(Path(spec).expanduser()) if is_pretrained_folder(spec) else spec
    config = load_config(source, spec)
    architectures = getattr(config, "architectures", None) or []
    if not architectures:
        raise SpmmInputError(f"{spec}: config.json names no architecture (save the model with save_pretrained)")
    task = task_for(architectures[0])
    model_class = getattr(transformers, architectures[0], None)
    if model_class is None:
        raise SpmmInputError(
            f"{spec}: architecture {architectures[0]} is not in transformers {transformers.__version__} "
            "(spmm never runs code from a model folder)"
        )
    has_attention = any("heads" in key for key in config.to_dict())  # num_attention_heads, num_heads…
    chosen = attention_kernel(model_class, attention, has_attention)
    with quiet_loading():
        model = load_weights(model_class, source, spec, attn_implementation=chosen)
    model.eval().requires_grad_(False)
    return call_loader(functools.partial(task.load, model, source), spec, options)


def wrap_pretrained(model: nn.Module, **options: Any) -> Explainable:
    """The Explainable of a loaded ``transformers`` model (``spmm.load(model, tokenizer=...)``);
    the user's model is used as is (its mode and parameters are not changed)."""
    task = task_for(type(model).__name__)
    return call_loader(functools.partial(task.load, model, None), type(model).__name__, options)


register_resolver(SpecResolver(
    "huggingface-folder", is_pretrained_folder, load_pretrained, "a Hugging Face save_pretrained folder",
))
register_resolver(SpecResolver(
    "huggingface-cache", is_cached_model_id, load_pretrained, "a model id in the local Hugging Face cache",
))
register_module_resolver(ModuleResolver("huggingface-model", is_pretrained_model, wrap_pretrained))
