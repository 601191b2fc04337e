"""AttnLRP / CP-LRP rules of LXT (PyPI ``lxt``) on one model instance, undone on exit.

``lxt.efficient.monkey_patch`` swaps methods on *classes* process-wide (``nn.LayerNorm.forward``,
``nn.Dropout.forward``, transformers' attention registry) and has no way back; with transformers 5
its Llama map breaks (it replaces the attention registry by a plain dict) and its BERT map cannot be
imported (its bundled BERT copy imports a removed module).  :func:`lxt_rules` applies the same
rule functions of ``lxt.efficient.patches`` / ``lxt.efficient.rules`` as *instance* attributes of
the model's submodules, and routes the model's attention through a registered attention
implementation wrapping the original one with LXT's own wrappers; everything is restored on exit,
even when an exception is raised.

Per module (LXT's maps for Llama, Qwen, GPT-2, BERT):
- RMSNorm (``variance_epsilon``) / ``nn.LayerNorm``: LXT's ``rms_norm_forward`` / ``layer_norm_forward``
  (statistics detached: identity rule);
- gated MLPs (``gate_proj``, ``up_proj``, ``down_proj``, ``act_fn``): ``gated_mlp_forward`` (AttnLRP)
  or ``cp_gated_mlp_forward`` (CP-LRP: the gate held constant);
- other activation modules (BERT's GELU): LXT's ``non_linear_forward`` (identity rule), in both
  variants, as LXT's GPT-2 CP-LRP map does (LXT ships no CP-LRP map for BERT);
- ``nn.Dropout``: ``dropout_forward`` (identity);
- attention: LXT's ``wrap_attention_forward`` (AttnLRP: uniform rule, q, k gradients / 4, v / 2) or
  ``cp_wrap_attention_forward`` (CP-LRP: q, k detached, the attention pattern held constant) around
  the model's own attention function; the implementation is registered in transformers'
  ``AttentionInterface`` *and* ``AttentionMaskInterface`` (with the original's mask function:
  without it transformers drops the padding mask), and removed again on exit.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import inspect
import itertools
import os
import sys
import types
from typing import Any, Callable, Iterator

from torch import nn

from spmm.errors import SpmmInputError

from .versions import peer_version

VARIANTS = ("attnlrp", "cp_lrp")
"""The LXT rule sets: AttnLRP (Achtibat et al., ICML 2024) and CP-LRP (Ali et al., ICML 2022)."""

_ACTIVATIONS = (nn.GELU, nn.SiLU, nn.ReLU, nn.Tanh)
_counter = itertools.count()


def lxt_patches() -> types.ModuleType:
    """``lxt.efficient.patches`` (LXT's rule functions).  LXT 2.1's ``lxt.efficient/__init__`` imports
    every bundled model map, and its BERT copy fails on transformers 5 (``ImportError``, a
    ``ModuleNotFoundError`` on some versions); the package is then loaded without that ``__init__``
    (its modules are unchanged).  If the rule functions themselves cannot be imported, a one-line
    :class:`SpmmInputError` names the lxt and transformers versions."""
    version = peer_version("lxt")
    try:
        return importlib.import_module("lxt.efficient.patches")
    except ImportError as error:  # ModuleNotFoundError is an ImportError
        first = error
    import lxt

    package = types.ModuleType("lxt.efficient")
    package.__path__ = [os.path.join(os.path.dirname(lxt.__file__), "efficient")]
    saved = sys.modules.get("lxt.efficient")
    sys.modules["lxt.efficient"] = package
    try:
        return importlib.import_module("lxt.efficient.patches")
    except ImportError as error:
        if saved is None:
            sys.modules.pop("lxt.efficient", None)
        else:
            sys.modules["lxt.efficient"] = saved
        reason = (str(error) or str(first) or type(error).__name__).splitlines()[0]
        raise SpmmInputError(
            f"lxt {version} does not support transformers {importlib.metadata.version('transformers')} ({reason}); "
            "pip install 'spmm[peers]' installs a tested pair"
        ) from error


def _is_activation(module: nn.Module) -> bool:
    return isinstance(module, _ACTIVATIONS) or type(module).__module__ == "transformers.activations"


def _is_gated_mlp(module: nn.Module) -> bool:
    return all(hasattr(module, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn"))


def _forward_patches(model: nn.Module, variant: str) -> list[tuple[nn.Module, dict[str, Any]]]:
    """(module, instance attributes to set) for every submodule LXT's maps patch."""
    patches = lxt_patches()
    gated = [m for m in model.modules() if _is_gated_mlp(m)]
    inside_gated = {id(m.act_fn) for m in gated if isinstance(m.act_fn, nn.Module)}
    mlp_rule = patches.gated_mlp_forward if variant == "attnlrp" else patches.cp_gated_mlp_forward
    found = []
    for module in model.modules():
        if _is_gated_mlp(module):
            rule = mlp_rule
        elif hasattr(module, "variance_epsilon") and hasattr(module, "weight"):
            rule = patches.rms_norm_forward
        elif isinstance(module, nn.LayerNorm):
            rule = patches.layer_norm_forward
        elif isinstance(module, nn.Dropout):
            rule = patches.dropout_forward
        elif _is_activation(module) and id(module) not in inside_gated:
            found.append((module, {"original_forward": module.forward,
                                   "forward": types.MethodType(patches.non_linear_forward, module)}))
            continue
        else:
            continue
        found.append((module, {"forward": types.MethodType(rule, module)}))
    return found


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """Submodules whose ``forward`` looks up transformers' attention registry (``ALL_ATTENTION_FUNCTIONS``)."""
    found = []
    for module in model.modules():
        code = getattr(inspect.unwrap(type(module).forward), "__code__", None)
        if hasattr(module, "config") and code is not None and "ALL_ATTENTION_FUNCTIONS" in code.co_names:
            found.append(module)
    return found


def _original_attention(module: nn.Module, implementation: str) -> Callable[..., Any]:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if implementation == "eager":
        return sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[implementation]


@contextlib.contextmanager
def lxt_rules(model: nn.Module, variant: str = "attnlrp") -> Iterator[nn.Module]:
    """``model`` with LXT's ``variant`` rules ("attnlrp" or "cp_lrp") on its transformers submodules.

    The forward pass is unchanged; the input gradient of a logit under the rules, times the input
    embeddings and summed over the hidden size, is LXT's relevance per token.  On exit every
    submodule, config and transformers registry is as it was.
    """
    if not isinstance(model, nn.Module):
        raise SpmmInputError(f"LXT rules patch a torch module, got {type(model).__name__}")
    if variant not in VARIANTS:
        raise SpmmInputError(f"unknown LXT variant {variant!r}; available: {', '.join(VARIANTS)}")
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    patches = lxt_patches()
    wrap = patches.wrap_attention_forward if variant == "attnlrp" else patches.cp_wrap_attention_forward
    attention = _attention_modules(model)
    configs = {id(m.config): m.config for m in attention}
    if not attention:
        raise SpmmInputError(f"LXT rules need a transformers model with an attention registry; {type(model).__name__} has none")
    stored = {key: config._attn_implementation_internal for key, config in configs.items()}
    originals = {key: impl or "eager" for key, impl in stored.items()}
    unknown = sorted({impl for impl in originals.values() if impl not in ("eager", "sdpa")})
    if unknown:
        raise SpmmInputError(f"LXT rules wrap eager or sdpa attention, not {', '.join(unknown)}")
    wrapped = {id(m): wrap(_original_attention(m, originals[id(m.config)])) for m in attention}
    key = f"spmm_lxt_{variant}_{next(_counter)}"
    mask_functions = {ALL_MASK_ATTENTION_FUNCTIONS[impl] for impl in originals.values()}
    if len(mask_functions) != 1:
        raise SpmmInputError("LXT rules need one attention implementation per model (eager or sdpa)")

    def attention_forward(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return wrapped[id(module)](module, *args, **kwargs)

    forwards = _forward_patches(model, variant)
    saved = [(m, {name: m.__dict__[name] for name in attrs if name in m.__dict__}) for m, attrs in forwards]
    AttentionInterface.register(key, attention_forward)
    AttentionMaskInterface.register(key, mask_functions.pop())
    try:
        for module, attrs in forwards:
            for name, value in attrs.items():
                setattr(module, name, value)
        for config in configs.values():
            config._attn_implementation_internal = key
        yield model
    finally:
        for (module, attrs), (_, before) in zip(forwards, saved):
            for name in attrs:
                module.__dict__.pop(name, None)
            module.__dict__.update(before)
        for config_key, config in configs.items():
            config._attn_implementation_internal = stored[config_key]
        AttentionInterface._global_mapping.pop(key, None)
        AttentionMaskInterface._global_mapping.pop(key, None)
