"""Method names -> attribution functions."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

from torch import Tensor

from spmm.errors import SpmmInputError, SpmmParameterError
from spmm.methods.context import MethodContext
from spmm.methods.parameters import Check

MethodFn = Callable[..., "tuple[Tensor, dict[str, Any]]"]


@dataclasses.dataclass(frozen=True)
class Method:
    """An attribution method: ``fn(context, inputs, **params) -> (attributions, extras)``.

    ``pullback`` methods run their forward passes under the SP rules; ``defaults``
    are the parameters used when the caller gives none; ``checks`` validate the value of
    each parameter (see :mod:`spmm.methods.parameters`).
    """

    name: str
    fn: MethodFn
    pullback: bool
    defaults: dict[str, Any]
    summary: str
    checks: dict[str, Check]


METHODS: dict[str, Method] = {}

BUILTIN_METHOD_MODULES = ("spmm.methods.classic", "spmm.methods.deeplift", "spmm.methods.pullback")
"""The modules that register the built-in methods (imported on the first look-up, so that importing
this registry alone, without ``spmm``'s public API, still sees them)."""


def _import_builtin_methods() -> None:
    for module in BUILTIN_METHOD_MODULES:
        importlib.import_module(module)


def register_method(
    name: str, *, pullback: bool, summary: str, checks: Mapping[str, Check] | None = None, **defaults: Any
) -> Callable[[MethodFn], MethodFn]:
    """Register ``fn`` under ``name``; the same function may be registered as a baseline and as its
    pullback version.  ``checks``: parameter name -> value check; every parameter needs one."""
    checks = dict(checks or {})
    if set(checks) != set(defaults):
        raise ValueError(f"method {name!r}: parameters {sorted(defaults)} need one check each, got {sorted(checks)}")

    def register(fn: MethodFn) -> MethodFn:
        METHODS[name] = Method(name, fn, pullback, dict(defaults), summary, checks)
        return fn

    return register


def get_method(name: str) -> Method:
    _import_builtin_methods()
    if name not in METHODS:
        raise SpmmInputError(f"unknown method {name!r}; available: {', '.join(list_methods())}")
    return METHODS[name]


def list_methods() -> list[str]:
    """All method names, pullback methods first."""
    _import_builtin_methods()
    return sorted(METHODS, key=lambda n: (not METHODS[n].pullback, n))


def check_parameters(method: Method, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``method`` runs with (``params`` over its defaults), each checked.

    Raises :class:`SpmmParameterError` naming any parameter ``method`` does not take, or a
    value outside its valid range."""
    unknown = sorted(set(params) - set(method.defaults))
    if unknown:
        raise SpmmParameterError(
            f"method {method.name!r} got unknown parameter(s) {unknown}; its parameters: {sorted(method.defaults)}"
        )
    merged = {**method.defaults, **params}
    return {name: method.checks[name](f"{method.name} {name}", value) for name, value in merged.items()}


def run_method(method: Method, context: MethodContext, inputs: Tensor, params: Mapping[str, Any]):
    """(attributions, extras, parameters used) of ``method`` on ``inputs``."""
    used = check_parameters(method, params)
    attributions, extras = method.fn(context, inputs, **used)
    return attributions, extras, used
