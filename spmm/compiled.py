"""Explaining ``torch.compile``d models.

Compiled with the pullback mode active, a model's graph carries the SP rules: torch.compile
hands a ``TorchFunctionMode`` every call of a function that ``torch.overrides`` lists as
overridable.  A few aliases of ruled ops are not on that list (``torch.relu_``,
``F.hardswish``…): called directly, the compiled graph would differentiate them exactly and the
result would silently be the plain gradient there.  Before a compiled model is explained,
one eager forward pass (the one :func:`spmm.explain` runs anyway for the model output) looks
for such calls and refuses the model if it makes any.

The user's module is never changed: :func:`compiled` wraps it with ``torch.compile`` (which
shares the module's parameters) and keeps the wrapper for later calls on the same model.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Any, Callable, Iterator
from weakref import WeakKeyDictionary

import torch
import torch.utils._pytree as pytree
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from spmm.errors import SpmmInputError
from spmm.rules import registry

_COMPILED: WeakKeyDictionary = WeakKeyDictionary()


def _is_compiled_object(obj: Any) -> bool:
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # never imported: nothing was compiled
    return eval_frame is not None and (
        isinstance(obj, eval_frame.OptimizedModule)
        or hasattr(obj, "_torchdynamo_orig_callable")
        or getattr(obj, "_compiled_call_impl", None) is not None
    )


def contains_compiled(model: Any) -> bool:
    """Whether ``model`` or one of its submodules is ``torch.compile``d (``torch.compile(m)``,
    ``m.compile()`` or a compiled function)."""
    if _is_compiled_object(model):
        return True
    return isinstance(model, nn.Module) and any(_is_compiled_object(m) for m in model.modules())


def compiled(model: Callable, backend: str = "inductor") -> Callable:
    """``torch.compile(model, backend=backend)``, made once per model and backend; ``model`` itself
    is left as it is."""
    if _is_compiled_object(model):
        return model
    per_backend = _COMPILED.setdefault(model, {})
    if backend not in per_backend:
        per_backend[backend] = torch.compile(model, backend=backend)
    return per_backend[backend]


@functools.cache
def hidden_under_compile() -> frozenset[Callable]:
    """The aliases of ruled ops that torch.compile puts in the graph without offering them to a
    ``TorchFunctionMode`` (in-graph functions that ``torch.overrides`` does not list)."""
    from torch._dynamo import trace_rules
    from torch._dynamo.variables.torch import TorchInGraphFunctionVariable, get_overridable_functions

    overridable = get_overridable_functions()
    return frozenset(
        func for func in registry.OP_RULES
        if trace_rules.lookup(func) is TorchInGraphFunctionVariable and func not in overridable
    )


class _HiddenOpProbe(TorchFunctionMode):
    """Notes the top-level calls of ops a compiled graph would hide from the rules."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = hidden_under_compile()
        self.seen: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.hidden and any(
            isinstance(a, Tensor) and a.requires_grad for a in pytree.tree_leaves((args, kwargs))
        ):
            self.seen.add(f"{getattr(func, '__module__', None) or 'torch'}.{func.__name__}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def eager_probe() -> Iterator[None]:
    """Run compiled code eagerly and raise :class:`SpmmInputError` on leaving if an op the
    compiled graph would hide from the rules was called on a tensor that needs a gradient."""
    probe = _HiddenOpProbe()
    with torch.compiler.set_stance("force_eager"), probe:
        yield
    if probe.seen:
        names = ", ".join(sorted(probe.seen))
        raise SpmmInputError(
            f"torch.compile hides {names} from the pullback rules (the compiled graph would hold the plain "
            "gradient there); explain the eager model, or call the op through its nn module / F function"
        )
