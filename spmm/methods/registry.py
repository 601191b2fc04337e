"""Method names -> attribution functions."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
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
    factory: Callable[..., Any] | None = None
    """For another library's explainer (a peer, see :func:`register_explainer`): ``factory(seed=...)
    -> explain_fn(model, inputs, targets)``, which the bench calls directly."""
    requires: tuple[str, str] | None = None
    """(package, extra) a peer needs installed: ``("lxt", "peers")``."""


METHODS: dict[str, Method] = {}
"""Every method by name: spmm's own and the peers registered by outer packages."""

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


def register_explainer(name: str, factory: Callable[..., Any], *, requires: tuple[str, str] | None = None,
                       summary: str = "") -> None:
    """Register another library's explainer as the method ``name`` (e.g. ``"lxt:attnlrp"``).

    ``factory(seed=...)`` returns ``explain_fn(model, inputs (B, ...), targets (B,)) -> (B, ...)``
    carrying ``method`` and ``params`` attributes (they key the bench's checkpoints); it explains
    class logits.  ``requires``: (package, extra) it needs, named in the error when it is missing."""
    if name in METHODS and METHODS[name].factory is None:
        raise ValueError(f"explainer {name!r} is already a method of the registry")

    def fn(context: MethodContext, inputs: Tensor) -> tuple[Tensor, dict[str, Any]]:
        indices = getattr(context.target_fn, "indices", None)
        if not isinstance(indices, Tensor) or getattr(context.target_fn, "foil", None) is not None:
            raise SpmmInputError(f"{name} explains class logits; give a class target (index, label or \"top1\"), "
                                 f"not {context.target_fn!r}")
        return factory(seed=0)(context.model, inputs, indices), {}

    METHODS[name] = Method(name, fn, False, {}, summary or f"{name} (another library's implementation)", {},
                           factory=factory, requires=requires)


def check_installed(method: Method) -> None:
    """Raise a one-line :class:`SpmmInputError` naming the extra to install when ``method`` needs a
    package that is missing."""
    if method.requires is None:
        return
    package, extra = method.requires
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        raise SpmmInputError(f"method {method.name!r} needs {package}: pip install 'spmm[{extra}]'") from None


def get_method(name: str) -> Method:
    """The method called ``name`` (peers registered by installed plugins included)."""
    _import_builtin_methods()
    if name not in METHODS:
        from spmm.plugins import load_plugins

        load_plugins()
    if name not in METHODS:
        raise SpmmInputError(f"unknown method {name!r}; available: {', '.join(list_methods(peers=True))}")
    return METHODS[name]


def list_methods(peers: bool = False) -> list[str]:
    """spmm's method names, pullback methods first; with ``peers``, then the other libraries'
    explainers registered by installed plugins (:func:`register_explainer`)."""
    _import_builtin_methods()
    own = sorted((n for n, m in METHODS.items() if m.factory is None), key=lambda n: (not METHODS[n].pullback, n))
    if not peers:
        return own
    from spmm.plugins import load_plugins

    load_plugins()
    return own + sorted(n for n, m in METHODS.items() if m.factory is not None)


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
