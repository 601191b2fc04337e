"""``spmm.load``: one entry point from a name, a path or a module to an :class:`Explainable`.

The core knows no model family.  Families (``spmm.adapters``) and modalities
(``spmm.modalities``) register what they provide in the registries below when their
plugin module is imported; plugins are found through the ``spmm.plugins`` entry-point
group of the installed distributions, so the core never imports an outer ring.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from pathlib import Path
from typing import Any, Callable

from torch import nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable
from spmm.plugins import load_plugins


@dataclasses.dataclass(frozen=True)
class NamedModel:
    """A model ``spmm.load(name)`` knows: its loader ``load(**options) -> Explainable``."""

    name: str
    modality: str
    summary: str
    load: Callable[..., Explainable]


@dataclasses.dataclass(frozen=True)
class SpecResolver:
    """Loads specs no name matches: ``accepts(spec) -> bool`` then ``load(spec, **options)``.

    E.g. every torchvision/timm classifier name, or a Hugging Face ``save_pretrained`` folder."""

    name: str
    accepts: Callable[[str], bool]
    load: Callable[..., Explainable]
    describe: str


@dataclasses.dataclass(frozen=True)
class ModuleResolver:
    """Wraps modules a family recognises without ``modality=``: ``accepts(module) -> bool`` then
    ``load(module, **options)`` (e.g. any loaded Hugging Face ``PreTrainedModel``)."""

    name: str
    accepts: Callable[[nn.Module], bool]
    load: Callable[..., Explainable]


NAMED_MODELS: dict[str, NamedModel] = {}
RESOLVERS: list[SpecResolver] = []
MODULE_RESOLVERS: list[ModuleResolver] = []
MODULE_WRAPPERS: dict[str, Callable[..., Explainable]] = {}
"""Modality name -> ``wrap(module, **options) -> Explainable`` for user modules."""
DEFAULT_MODELS: dict[str, str] = {}
"""Modality name -> the embedded default model's name."""


def register_model(name: str, modality: str, summary: str, default: bool = False) -> Callable:
    """Decorator registering ``load(**options) -> Explainable`` under ``name``."""

    def register(load: Callable[..., Explainable]) -> Callable[..., Explainable]:
        NAMED_MODELS[name] = NamedModel(name, modality, summary, load)
        if default:
            DEFAULT_MODELS[modality] = name
        return load

    return register


def register_resolver(resolver: SpecResolver) -> None:
    """Add a resolver for specs that are not registered names (tried in registration order)."""
    if all(r.name != resolver.name for r in RESOLVERS):
        RESOLVERS.append(resolver)


def register_module_resolver(resolver: ModuleResolver) -> None:
    """Add a resolver for modules passed without ``modality=`` (tried in registration order)."""
    if all(r.name != resolver.name for r in MODULE_RESOLVERS):
        MODULE_RESOLVERS.append(resolver)


def register_modality(name: str, wrap: Callable[..., Explainable]) -> None:
    """Make ``modality=name`` available to ``spmm.load(module, modality=name)``: ``wrap(module, **options)``."""
    MODULE_WRAPPERS[name] = wrap


def list_models() -> dict[str, str]:
    """Registered model names -> one-line summaries (any torchvision/timm name and Hugging Face
    folder works too, through the resolvers)."""
    load_plugins()
    return {name: f"[{m.modality}] {m.summary}" for name, m in sorted(NAMED_MODELS.items())}


def default_model(modality: str) -> str:
    """The embedded default model of ``modality``."""
    load_plugins()
    if modality not in DEFAULT_MODELS:
        raise SpmmInputError(f"no default model for modality {modality!r}; known: {', '.join(DEFAULT_MODELS)}")
    return DEFAULT_MODELS[modality]


def load(spec: str | Path | nn.Module | Explainable, **options: Any) -> Explainable:
    """An :class:`Explainable` from a registered name, a spec a family resolves (a
    torchvision/timm name, a Hugging Face folder), or a module.

    >>> m = spmm.load("efficientnet-lite0")
    >>> m = spmm.load("resnet50", weights="resnet50.pth")
    >>> m = spmm.load("minilm-zero-shot", labels=["sports", "politics"])
    >>> m = spmm.load(my_module, modality="image", labels=[...], preprocess=...)

    ``options`` go to the loader (``weights``, ``labels``, ``random_init``, ``modality``…);
    a loader rejects options it does not take with an error naming the ones it does.
    """
    load_plugins()
    if isinstance(spec, Explainable):
        return spec
    if isinstance(spec, nn.Module):
        modality = options.pop("modality", None)
        if modality is None:
            for resolver in MODULE_RESOLVERS:
                if resolver.accepts(spec):
                    return call_loader(functools.partial(resolver.load, spec), type(spec).__name__, options)
            raise SpmmInputError(
                f"spmm.load(module) needs modality=...: one of {', '.join(sorted(MODULE_WRAPPERS))}"
            )
        if modality not in MODULE_WRAPPERS:
            raise SpmmInputError(f"unknown modality {modality!r}; available: {', '.join(sorted(MODULE_WRAPPERS))}")
        return MODULE_WRAPPERS[modality](spec, **options)
    if not isinstance(spec, (str, Path)):
        raise SpmmInputError(f"spmm.load takes a name, a path or an nn.Module, got {type(spec).__name__}")
    text = str(spec)
    if text in NAMED_MODELS:
        return call_loader(NAMED_MODELS[text].load, text, options)
    for resolver in RESOLVERS:
        if resolver.accepts(text):
            return call_loader(functools.partial(resolver.load, text), text, options)
    close = difflib.get_close_matches(text, list(NAMED_MODELS), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    accepted = "; ".join(r.describe for r in RESOLVERS)
    raise SpmmInputError(
        f"cannot load {text!r}: not a registered model ({', '.join(sorted(NAMED_MODELS))}){hint}; also accepted: {accepted}"
    )


def call_loader(loader: Callable[..., Explainable], spec: str, options: dict[str, Any]) -> Explainable:
    """``loader(**options)`` after checking that it takes every option given (one-line error naming
    the ones it takes); ``spec`` names the model in the error."""
    parameters = inspect.signature(loader).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        accepted = [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise SpmmInputError(
                f"spmm.load({spec!r}) got unknown option(s) {unknown}; it takes: {', '.join(accepted) or 'none'}"
            )
    return loader(**options)
