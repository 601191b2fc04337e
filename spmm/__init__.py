"""spmm — Semantic Pullbacks for PyTorch models.

Forward passes stay exactly as they are; inside :func:`pullback_mode` every
nonlinearity's backward uses a softened, expected gate (SPEC §2).

The public names are imported on first use (PEP 562), so ``import spmm`` and the ``spmm``
command's help and argument errors do not import torch; the first access to any of them
imports the whole public API at once, as an eager import would.  Submodules (``spmm.metrics``…)
are imported on first access.
"""

import importlib as _importlib
import sys as _sys
import threading as _threading
import types as _types

from spmm.errors import SpmmInputError, SpmmParameterError  # noqa: F401  (public: in __all__)

_PUBLIC_MODULES = {
    "spmm.audit": ("AuditReport", "audit"),
    "spmm.explain": ("check_inputs", "explain", "quantus_explain_func"),
    "spmm.explainable": ("Explainable", "Prepared"),
    "spmm.explanation": ("Explanation", "GroupedExplanation", "Prediction"),
    "spmm.load": ("list_models", "load"),
    "spmm.methods.registry": ("list_methods",),
    "spmm.mode": ("PullbackMode", "pullback_mode"),
    "spmm.rules.registry": (
        "gate_module_rule", "keep_forward", "list_rules", "register_module_rule", "unregister_module_rule",
    ),
    "spmm.ruleset": ("RuleSet", "get_ruleset", "list_rulesets", "register_ruleset", "rulesets"),
    "spmm.targets": ("ClassLogit", "Continuation", "Contrast", "SequenceLogProb", "TokenLabel"),
    "spmm.temperatures": ("Temperatures",),
}
_LAZY = {name: module for module, names in _PUBLIC_MODULES.items() for name in names}

__all__ = sorted([*_LAZY, "SpmmInputError", "SpmmParameterError"])
__version__ = "0.1.0"

_state = {"imported": False, "importing": False}


_lock = _threading.RLock()


def _import_public_api() -> None:
    """Import every public name's module and bind the names here (once).  Another thread asking
    meanwhile waits for the names; the importing thread itself (a module reading ``spmm.X`` while
    it is imported) goes on without them."""
    if _state["imported"]:
        return
    with _lock:
        if _state["imported"] or _state["importing"]:
            return
        _state["importing"] = True
        try:
            for module_name, names in _PUBLIC_MODULES.items():
                module = _importlib.import_module(module_name)
                for name in names:
                    globals()[name] = getattr(module, name)
            _state["imported"] = True
        finally:
            _state["importing"] = False


def __getattr__(name: str) -> object:
    if name in _LAZY:
        _import_public_api()
        if name in globals():
            return globals()[name]
    elif not name.startswith("__"):
        try:  # a submodule, imported on first access (as `from spmm import progress` does)
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(_types.ModuleType):
    """The package ``spmm``, whose public functions ``load``, ``explain`` and ``audit`` share their
    names with submodules: importing such a submodule does not rebind the name to the module (an
    eager ``from spmm.load import load`` would have rebound it to the function)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
