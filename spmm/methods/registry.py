"""Method names -> attribution functions."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from torch import Tensor

from spmm.errors import SpmmInputError, SpmmParameterError
from spmm.methods.context import MethodContext

MethodFn = Callable[..., "tuple[Tensor, dict[str, Any]]"]


@dataclasses.dataclass(frozen=True)
class Method:
    """An attribution method: ``fn(context, inputs, **params) -> (attributions, extras)``.

    ``pullback`` methods run their forward passes under the SP rules; ``defaults``
    are the parameters used when the caller gives none.
    """

    name: str
    fn: MethodFn
    pullback: bool
    defaults: dict[str, Any]
    summary: str


METHODS: dict[str, Method] = {}


def register_method(name: str, *, pullback: bool, summary: str, **defaults: Any) -> Callable[[MethodFn], MethodFn]:
    """Register ``fn`` under ``name``; the same function may be registered as a baseline and as its
    pullback version."""

    def register(fn: MethodFn) -> MethodFn:
        METHODS[name] = Method(name, fn, pullback, dict(defaults), summary)
        return fn

    return register


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise SpmmInputError(f"unknown method {name!r}; available: {', '.join(list_methods())}")
    return METHODS[name]


def list_methods() -> list[str]:
    """All method names, pullback methods first."""
    return sorted(METHODS, key=lambda n: (not METHODS[n].pullback, n))


def check_parameters(method: Method, params: Mapping[str, Any]) -> None:
    """Raise :class:`SpmmParameterError` naming any parameter ``method`` does not take."""
    unknown = sorted(set(params) - set(method.defaults))
    if unknown:
        raise SpmmParameterError(
            f"method {method.name!r} got unknown parameter(s) {unknown}; its parameters: {sorted(method.defaults)}"
        )


def run_method(method: Method, context: MethodContext, inputs: Tensor, params: dict[str, Any]):
    check_parameters(method, params)
    merged = {**method.defaults, **params}
    attributions, extras = method.fn(context, inputs, **merged)
    return attributions, extras, merged
