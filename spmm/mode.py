"""The pullback mode: a ``TorchFunctionMode`` that routes nonlinear ops to their SP rules.

Inside ``with pullback_mode():`` every op with a registered rule returns its
exact forward value together with the Semantic Pullback backward; every other
op runs untouched.  Module rules (for nonlinearities written as arithmetic) are
applied through global module forward hooks that act only in the thread that
entered the mode.  Gradient-checkpointed regions recompute under the same rules
(:mod:`spmm.checkpointing`).  Leaving the block, normally or through an exception, restores
everything.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

import torch
import torch.utils._pytree as pytree
from torch import Tensor, nn
from torch.nn.modules import module as module_hooks
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from spmm import checkpointing
from spmm.errors import SpmmInputError
from spmm.rules import registry
from spmm.temperatures import Temperatures, resolve_temperatures

_active = threading.local()
_hook_lock = threading.Lock()
_hook_users = 0
_hook_handle = None

# Ops through which softened attention weights keep their meaning (T ≠ 1).
_WEIGHT_PASSTHROUGH = {
    torch.nn.functional.dropout, torch.dropout, Tensor.to, Tensor.type, Tensor.type_as, Tensor.float,
    Tensor.half, Tensor.bfloat16, Tensor.double, Tensor.contiguous, Tensor.clone, Tensor.view, Tensor.reshape,
    torch.reshape, Tensor.transpose, torch.transpose, Tensor.permute, torch.permute, Tensor.__getitem__,
    Tensor.expand, Tensor.unsqueeze, Tensor.squeeze, Tensor.flatten, Tensor.unflatten,
}


class Recorder:
    """Collects which rule handled which op during a forward pass (used by :func:`spmm.audit`)."""

    def __init__(self) -> None:
        self.ops: dict[tuple[str, str], int] = {}

    def record(self, op: str, rule: str) -> None:
        self.ops[(op, rule)] = self.ops.get((op, rule), 0) + 1


def _op_name(func: Callable) -> str:
    return getattr(func, "__name__", None) or repr(func)


def _active_modes() -> list["PullbackMode"]:
    stack = getattr(_active, "modes", None)
    if stack is None:
        stack = _active.modes = []
    return stack


def current_mode() -> "PullbackMode | None":
    """The innermost pullback mode active in this thread, if any."""
    stack = _active_modes()
    return stack[-1] if stack else None


def _needs_graph(args: tuple, kwargs: dict) -> bool:
    if not torch.is_grad_enabled():
        return False
    return any(isinstance(a, Tensor) and a.requires_grad for a in pytree.tree_leaves((args, kwargs)))


class PullbackMode(TorchFunctionMode):
    """Apply the Semantic Pullback rules to every op run inside the mode.

    Parameters
    ----------
    temperatures:
        Per-rule temperatures (defaults: SPEC §2).
    module_rules:
        Extra ``{module type or name: rule}`` for this mode only, checked before the
        global registry (:func:`spmm.register_module_rule`).
    recorder:
        Optional :class:`Recorder` noting every rule applied.
    """

    def __init__(
        self,
        temperatures: Temperatures | Mapping[str, float] | None = None,
        module_rules: Mapping[type | str, registry.ModuleRule] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__()
        self.temperatures = resolve_temperatures(temperatures)
        self.module_rules = {key: registry.ModuleRuleEntry.of(rule) for key, rule in (module_rules or {}).items()}
        self.recorder = recorder
        self._softened_weights: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._affine_sources: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._uses_hook = False
        self._routes_checkpoints = False
        self._module_rule_cache: dict[type, tuple[int, registry.ModuleRuleEntry | None]] = {}

    def module_rule_for(self, module: nn.Module) -> registry.ModuleRuleEntry | None:
        """:func:`registry.find_module_rule` of ``module`` with this mode's rules, remembered per
        module type until the registry changes (the global hooks ask for every module call).
        Not remembered while torch.compile traces: its guards would check the cache."""
        if torch.compiler.is_compiling():
            return registry.find_module_rule(module, self.module_rules)
        kind = type(module)
        version, entry = self._module_rule_cache.get(kind, (-1, None))
        if version != registry.module_rules_version():
            entry = registry.find_module_rule(module, self.module_rules)
            self._module_rule_cache[kind] = (registry.module_rules_version(), entry)
        return entry

    def copy(self) -> "PullbackMode":
        """A fresh mode with the same temperatures and module rules (no recorder)."""
        twin = PullbackMode(self.temperatures)
        twin.module_rules = dict(self.module_rules)
        return twin

    # -- entering and leaving ---------------------------------------------------
    def __enter__(self) -> "PullbackMode":
        super().__enter__()
        try:
            _active_modes().append(self)
            checkpointing.acquire(current_mode)
            self._routes_checkpoints = True
            if self.module_rules or registry.MODULE_RULES:
                _acquire_module_hook()
                self._uses_hook = True
        except BaseException:
            self._leave()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._leave()
        super().__exit__(exc_type, exc, tb)

    def _leave(self) -> None:
        if self._routes_checkpoints:
            checkpointing.release()
            self._routes_checkpoints = False
        if self._uses_hook:
            _release_module_hook()
            self._uses_hook = False
        stack = _active_modes()
        if self in stack:
            stack.remove(self)
        self._softened_weights = WeakIdKeyDictionary()
        self._affine_sources = WeakIdKeyDictionary()

    # -- dispatch ---------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # Under torch.compile the tensor-identity bookkeeping below (weak dicts) would break the
        # graph at every op; the compiler gets rule outputs whose gradients autograd derives itself.
        compiling = torch.compiler.is_compiling()
        if compiling:
            self._check_compilable()
        elif self._softened_weights and _has_tagged(args, kwargs, self._softened_weights):
            return self._through_softened_weights(func, args, kwargs)
        else:
            forwards = getattr(_active, "ruled_forwards", None)
            handler = forwards[-1][1].in_forward_ops.get(func) if forwards else None
            if handler is not None and _needs_graph(args, kwargs):
                with torch._C.DisableTorchFunction():
                    return handler(func, args, kwargs)
        rule = registry.OP_RULES.get(func)
        if func is torch.nn.functional.batch_norm and not compiling:
            return self._batch_norm(func, args, kwargs)
        if not compiling and func in _RESIDUAL_ADDS and self._affine_sources:
            return self._residual_add(func, args, kwargs)
        if rule is None or not _needs_graph(args, kwargs):
            return func(*args, **kwargs)
        if self.recorder is not None:
            self.recorder.record(_op_name(func), rule.name)
        with torch._C.DisableTorchFunction():
            if rule.gate:
                source = None if compiling else self._source_of(args)
                result = rule.handler(func, args, kwargs, self.temperatures, source=source)
            else:
                result = rule.handler(func, args, kwargs, self.temperatures)
        if rule.name == registry.ATTENTION_WEIGHTS_RULE and self.temperatures.attention != 1:
            self._softened_weights[result] = registry.softened_softmax(func, args, kwargs, self.temperatures.attention)
        return result

    def _check_compilable(self) -> None:
        """Refuse, while torch.compile traces, what the compiled rules cannot reproduce: softened
        attention weights (T ≠ 1) are followed by tensor identity through the ops after a softmax.

        Reading which module rules are in force also makes the compiled graph's guards check it:
        torch.compile does not guard global module hooks, and would reuse a graph traced
        without them."""
        if (self.module_rules or registry.MODULE_RULES) and not self._uses_hook:
            raise SpmmInputError("module rules were registered after entering the pullback mode; register them before")
        if self.temperatures.attention != 1:
            raise SpmmInputError(
                f"attention temperature {self.temperatures.attention} cannot be traced by torch.compile "
                "(only 1 can); explain the uncompiled model or use attention=1"
            )

    def _source_of(self, args: tuple):
        """The recompute recipe of an activation's input, unless that tensor changed since (``out += x``)."""
        if not args or not isinstance(args[0], Tensor):
            return None
        source, version = self._affine_sources.get(args[0], (None, None))
        return source if source is not None and args[0]._version == version else None

    def _batch_norm(self, func, args, kwargs):
        """Eval batch norm runs as usual; its output remembers how to be recomputed from its input,
        so that a following activation rule need not keep a copy (memory as for the plain gradient)."""
        result = func(*args, **kwargs)
        if isinstance(result, Tensor) and result.requires_grad:
            source = registry.eval_batch_norm_source(func, args, kwargs, result)
            if source is not None:
                self._affine_sources[result] = (source, result._version)
        return result

    def _residual_add(self, func, args, kwargs):
        """``a + b`` (or ``a += b``) of same-shaped tensors where one was a batch norm's output:
        the sum remembers how to be recomputed from that batch norm's input and the other term,
        so that an activation after a residual connection need not keep a copy of its input."""
        sourced = None
        if not kwargs and len(args) == 2 and all(isinstance(a, Tensor) for a in args):
            first, second = self._source_of(args[:1]), self._source_of(args[1:])
            sourced = (first, args[1]) if first is not None else (second, args[0]) if second is not None else None
        result = func(*args, **kwargs)
        if sourced is not None and isinstance(result, Tensor) and result.requires_grad:
            source, residual = sourced
            if residual.shape == result.shape == args[0].shape == args[1].shape and residual.dtype == result.dtype:
                self._affine_sources[result] = (registry.residual_source(source, residual), result._version)
        return result

    def _through_softened_weights(self, func, args, kwargs):
        """Ops fed with attention weights when T ≠ 1: value from the true weights,
        gradient from the softened ones."""
        result = func(*args, **kwargs)
        softened_args, softened_kwargs = pytree.tree_map_only(
            Tensor, lambda t: self._softened_weights.get(t, t), (args, kwargs)
        )
        if func in _WEIGHT_PASSTHROUGH:
            if isinstance(result, Tensor):
                self._softened_weights[result] = func(*softened_args, **softened_kwargs)
            return result
        if isinstance(result, Tensor) and result.requires_grad and result.is_floating_point():
            surrogate = func(*softened_args, **softened_kwargs)
            return registry.keep_forward(result, surrogate)
        return result


# Additions after which an activation's input can still be recomputed (see PullbackMode._residual_add).
_RESIDUAL_ADDS = {Tensor.__iadd__, Tensor.add_, Tensor.__add__, Tensor.__radd__, Tensor.add, torch.add}


def _acquire_module_hook() -> None:
    """One pair of global forward hooks serves every active mode in every thread.

    The pair is installed while a mode is active and removed after, always under the same hook
    ids: torch.compile guards the ids of the global hooks, and new ids at every explanation made
    a compiled model recompile at every call (measured: 7 s per call on a CPU ResNet18)."""
    global _hook_users, _hook_handle
    with _hook_lock:
        if _hook_users == 0:
            if _hook_handle is None:
                _hook_handle = (
                    register_module_forward_pre_hook(_enter_ruled_module),
                    register_module_forward_hook(_apply_module_rule, always_call=True),
                )
            else:
                pre, post = _hook_handle
                module_hooks._global_forward_pre_hooks[pre.id] = _enter_ruled_module
                module_hooks._global_forward_hooks[post.id] = _apply_module_rule
                module_hooks._global_forward_hooks_always_called[post.id] = True
        _hook_users += 1


def _release_module_hook() -> None:
    global _hook_users
    with _hook_lock:
        _hook_users -= 1
        if _hook_users == 0 and _hook_handle is not None:
            for handle in _hook_handle:
                handle.remove()


def _ruled_modules() -> list[nn.Module]:
    stack = getattr(_active, "ruled_modules", None)
    if stack is None:
        stack = _active.ruled_modules = []
    return stack


def _ruled_forwards() -> list[tuple[nn.Module, registry.ModuleRuleEntry]]:
    """The modules (innermost last) whose own forward runs under their rule's ``in_forward_ops``."""
    stack = getattr(_active, "ruled_forwards", None)
    if stack is None:
        stack = _active.ruled_forwards = []
    return stack


def _enter_ruled_module(module: nn.Module, inputs: tuple) -> None:
    """Global forward pre-hook: a module with a module rule runs its own forward without autograd
    (its output's value is all the rule keeps), so that no graph is built and saved for nothing;
    or, when the rule has ``in_forward_ops``, once with autograd under those op rules."""
    mode = current_mode()
    if mode is None or not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return
    entry = mode.module_rule_for(module)
    if entry is None:
        return
    if entry.in_forward_ops:
        _record_module_rule(mode, module, entry)
        _ruled_forwards().append((module, entry))
        return
    _ruled_modules().append(module)
    torch.set_grad_enabled(False)


def _has_tagged(args: tuple, kwargs: dict, tags: WeakIdKeyDictionary) -> bool:
    return any(isinstance(a, Tensor) and a in tags for a in pytree.tree_leaves((args, kwargs)))


def _apply_module_rule(module: nn.Module, inputs: tuple, output: Any) -> Any:
    """Global forward hook (also called when the forward raised, with ``output`` None): swap in a
    module rule's output when this thread is in a pullback mode."""
    ruled = _ruled_modules()
    if ruled and ruled[-1] is module:
        ruled.pop()
        torch.set_grad_enabled(True)
    forwards = _ruled_forwards()
    if forwards and forwards[-1][0] is module:
        forwards.pop()
        return None
    mode = current_mode()
    if mode is None or output is None or not torch.is_grad_enabled():
        return None
    entry = mode.module_rule_for(module)
    if entry is None:
        return None
    _record_module_rule(mode, module, entry)
    return entry.rule(module, inputs, output, mode.temperatures)


def _record_module_rule(mode: PullbackMode, module: nn.Module, entry: registry.ModuleRuleEntry) -> None:
    if mode.recorder is not None:
        cls = type(module)
        mode.recorder.record(f"module {cls.__module__}.{cls.__qualname__}", entry.name)


def pullback_mode(
    module_rules: Mapping[type | str, registry.ModuleRule] | None = None,
    **temperatures: float,
) -> PullbackMode:
    """Context manager applying the Semantic Pullback rules; keyword arguments override
    the per-rule temperatures (``relu``, ``gelu``, ``silu``, ``max_pool``, ``attention``…).

    >>> with spmm.pullback_mode(relu=0.6):
    ...     score = model(x)[:, 3].sum()
    >>> x_grad, = torch.autograd.grad(score, x)
    """
    return PullbackMode(temperatures, module_rules)
