"""Which rule handles which torch op, and which module types get a module rule.

Op rules are keyed by every alias under which an op reaches a
``TorchFunctionMode`` (``F.relu``, ``torch.relu``, ``Tensor.relu``, ``relu_``…).
Each handler receives the intercepted function, its arguments and the active
:class:`~spmm.temperatures.Temperatures`, and returns the op's exact output
carrying the Semantic Pullback backward.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spmm.rules import attention, gates, norms, pooling
from spmm.temperatures import Temperatures

Handler = Callable[[Callable, tuple, dict, Temperatures], Any]
ModuleRule = Callable[[nn.Module, tuple, Any, Temperatures], Any]


@dataclasses.dataclass(frozen=True)
class OpRule:
    """A rule family (``name``), the ops it covers and the temperature it reads."""

    name: str
    handler: Handler
    temperature: str | None
    aliases: tuple[Callable, ...]
    gate: bool = False
    """Pointwise gate rules also accept ``source=AffineSource`` to recompute their input."""


OP_RULES: dict[Callable, OpRule] = {}
"""Every registered alias -> its rule."""

INPLACE_ALIASES: set[Callable] = set()


def _nn_op(name: str) -> Callable | None:
    return getattr(torch._C._nn, name, None)


def op_rule(
    name: str,
    temperature: str | None,
    aliases: Iterable[Callable | None],
    inplace: Iterable[Callable | None] = (),
    gate: bool = False,
):
    """Register the decorated handler for ``aliases`` (and their in-place forms ``inplace``)."""
    regular = [a for a in aliases if a is not None]
    in_place = [a for a in inplace if a is not None]

    def register(handler: Handler) -> Handler:
        rule = OpRule(name, handler, temperature, tuple(regular + in_place), gate)
        for alias in rule.aliases:
            OP_RULES[alias] = rule
        INPLACE_ALIASES.update(in_place)
        return handler

    return register


def list_rules() -> list[OpRule]:
    """The registered op rules, one per family."""
    return list({id(rule): rule for rule in OP_RULES.values()}.values())


class _Call:
    """An intercepted call bound to a reference signature, re-callable with replaced tensors.

    Only the arguments the caller passed are passed again (plus any replacement of one it left
    out, by keyword), so builtins that lack some of the reference signature's optional
    parameters keep working.  Binding is a dict update from the signature's names and defaults,
    worked out once per signature (``inspect.Signature.bind`` at every op was a tenth of the
    rules' Python time).
    """

    def __init__(self, func: Callable, signature: inspect.Signature, args: tuple, kwargs: dict):
        self.func, self.args, self.kwargs = func, args, kwargs
        self.positions, defaults = _layout(signature)
        self.arguments = dict(defaults)
        self.arguments.update(zip(self.positions, args))
        self.arguments.update(kwargs)
        if len(args) > len(self.positions) or len(self.arguments) < len(self.positions):
            signature.bind(*args, **kwargs)  # raises the TypeError that names the problem

    def __getitem__(self, name: str) -> Any:
        return self.arguments[name]

    def call(self, **replacements: Any) -> Any:
        args, kwargs = list(self.args), dict(self.kwargs)
        for name, value in replacements.items():
            position = self.positions[name]
            if position < len(args):
                args[position] = value
            else:
                kwargs[name] = value
        return self.func(*args, **kwargs)


_LAYOUTS: dict[int, tuple[inspect.Signature, dict[str, int], dict[str, Any]]] = {}


def _layout(signature: inspect.Signature) -> tuple[dict[str, int], dict[str, Any]]:
    """Parameter name -> position, and the parameters' defaults (kept by the signature's id:
    hashing a signature costs as much as binding it)."""
    known = _LAYOUTS.get(id(signature))
    if known is None or known[0] is not signature:
        parameters = signature.parameters
        defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
        known = _LAYOUTS[id(signature)] = (signature, {name: i for i, name in enumerate(parameters)}, defaults)
    return known[1], known[2]


def _signature(stub: Callable) -> inspect.Signature:
    return inspect.signature(stub)


def _unary(input, inplace=False): ...
def _leaky(input, negative_slope=0.01, inplace=False): ...
def _hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False): ...
def _gelu(input, approximate="none"): ...
def _pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False): ...
def _adaptive_pool(input, output_size, return_indices=False): ...
def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5): ...
def _group_norm(input, num_groups, weight=None, bias=None, eps=1e-5): ...
def _rms_norm(input, normalized_shape, weight=None, eps=None): ...
def _normalize(input, p=2.0, dim=1, eps=1e-12, out=None): ...
def _sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False): ...
def _softmax(input, dim=None, _stacklevel=3, dtype=None): ...
def _softmax_method(input, dim, dtype=None): ...


_SIGNATURES = {stub: _signature(stub) for stub in (
    _unary, _leaky, _hardtanh, _gelu, _pool, _adaptive_pool, _layer_norm, _group_norm, _rms_norm, _normalize, _sdpa,
    _softmax, _softmax_method,
)}


def _bind(stub: Callable, func: Callable, args: tuple, kwargs: dict) -> _Call:
    return _Call(func, _SIGNATURES[stub], args, kwargs)


def _gated(func: Callable, call: _Call, gate: gates.Gate, source: gates.AffineSource | None) -> Tensor:
    inplace = func in INPLACE_ALIASES or bool(call.arguments.get("inplace", False))
    return gates.apply_gate(call["input"], lambda x: call.call(input=x), gate, inplace, source)


# --- expected gates -----------------------------------------------------------

@op_rule("relu", "relu", [F.relu, torch.relu, Tensor.relu], inplace=[torch.relu_, Tensor.relu_], gate=True)
def _relu_rule(func, args, kwargs, t, source=None):
    return _gated(func, _bind(_unary, func, args, kwargs), gates.relu_gate(t.relu), source)


@op_rule("leaky_relu", "leaky_relu", [F.leaky_relu, _nn_op("leaky_relu")], inplace=[_nn_op("leaky_relu_")], gate=True)
def _leaky_relu_rule(func, args, kwargs, t, source=None):
    call = _bind(_leaky, func, args, kwargs)
    return _gated(func, call, gates.leaky_relu_gate(call["negative_slope"], t.leaky_relu), source)


@op_rule("hardtanh", "hardtanh", [F.hardtanh, _nn_op("hardtanh")], inplace=[_nn_op("hardtanh_")], gate=True)
def _hardtanh_rule(func, args, kwargs, t, source=None):
    call = _bind(_hardtanh, func, args, kwargs)
    return _gated(func, call, gates.hardtanh_gate(call["min_val"], call["max_val"], t.hardtanh), source)


@op_rule("relu6", "hardtanh", [F.relu6, _nn_op("relu6")], inplace=[_nn_op("relu6_")], gate=True)
def _relu6_rule(func, args, kwargs, t, source=None):
    return _gated(func, _bind(_unary, func, args, kwargs), gates.hardtanh_gate(0.0, 6.0, t.hardtanh), source)


@op_rule("gelu", "gelu", [F.gelu], inplace=[_nn_op("gelu_")], gate=True)
def _gelu_rule(func, args, kwargs, t, source=None):
    return _gated(func, _bind(_gelu, func, args, kwargs), gates.gelu_gate(t.gelu), source)


@op_rule("silu", "silu", [F.silu, _nn_op("silu")], inplace=[_nn_op("silu_")], gate=True)
def _silu_rule(func, args, kwargs, t, source=None):
    return _gated(func, _bind(_unary, func, args, kwargs), gates.silu_gate(t.silu), source)


@op_rule("hardswish", "hardswish", [F.hardswish, _nn_op("hardswish")], inplace=[_nn_op("hardswish_")], gate=True)
def _hardswish_rule(func, args, kwargs, t, source=None):
    return _gated(func, _bind(_unary, func, args, kwargs), gates.hardswish_gate(t.hardswish), source)


# --- max-pool -----------------------------------------------------------------

def _max_pool(spatial_dims: int):
    def handler(func, args, kwargs, t):
        call = _bind(_pool, func, args, kwargs)
        return pooling.soft_max_pool(
            call["input"],
            lambda x: call.call(input=x),
            spatial_dims=spatial_dims,
            kernel_size=call["kernel_size"],
            stride=call["stride"],
            padding=call["padding"],
            dilation=call["dilation"],
            temperature=t.max_pool,
        )

    return handler


def _adaptive_max_pool(spatial_dims: int):
    def handler(func, args, kwargs, t):
        call = _bind(_adaptive_pool, func, args, kwargs)
        return pooling.soft_adaptive_max_pool(
            call["input"], lambda x: call.call(input=x), spatial_dims=spatial_dims, temperature=t.max_pool
        )

    return handler


op_rule("max_pool1d", "max_pool", [F.max_pool1d, F._max_pool1d, F.max_pool1d_with_indices, torch.max_pool1d])(_max_pool(1))
op_rule("max_pool2d", "max_pool", [F.max_pool2d, F._max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d])(_max_pool(2))
op_rule("adaptive_max_pool1d", "max_pool", [F.adaptive_max_pool1d, F._adaptive_max_pool1d, F.adaptive_max_pool1d_with_indices])(
    _adaptive_max_pool(1)
)
op_rule("adaptive_max_pool2d", "max_pool", [F.adaptive_max_pool2d, F._adaptive_max_pool2d, F.adaptive_max_pool2d_with_indices])(
    _adaptive_max_pool(2)
)


# --- normalisation ------------------------------------------------------------

def _batch_norm_stub(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                     eps=1e-5): ...


_BATCH_NORM_SIGNATURE = _signature(_batch_norm_stub)


def eval_batch_norm_source(func: Callable, args: tuple, kwargs: dict, output: Tensor) -> gates.AffineSource | None:
    """For an eval-mode ``F.batch_norm`` call, how to recompute ``output`` from its input."""
    call = _Call(func, _BATCH_NORM_SIGNATURE, args, kwargs)
    if call["training"] or call["running_mean"] is None or call["running_var"] is None:
        return None

    def recompute(c: Tensor, scale: float) -> Tensor:
        if scale == 1.0:
            return call.call(input=c)
        weight, bias = call["weight"], call["bias"]
        weight = torch.full_like(call["running_var"], scale) if weight is None else weight * scale
        return call.call(input=c, weight=weight, bias=None if bias is None else bias * scale)

    return gates.AffineSource((call["input"],), recompute)


def residual_source(source: gates.AffineSource, residual: Tensor) -> gates.AffineSource:
    """The recompute recipe of ``x + residual`` for x given by ``source``."""

    def recompute(*tensors: Tensor, scale: float) -> Tensor:
        return source.recompute(*tensors[:-1], scale=scale).add_(tensors[-1], alpha=scale)

    return gates.AffineSource((*source.tensors, residual), recompute)


@op_rule("layer_norm", None, [F.layer_norm])
def _layer_norm_rule(func, args, kwargs, t):
    call = _bind(_layer_norm, func, args, kwargs)
    return norms.layer_norm(
        call["input"], call["normalized_shape"], call["weight"], call["bias"], call["eps"],
        lambda x, w, b: call.call(input=x, weight=w, bias=b),
    )


@op_rule("group_norm", None, [F.group_norm])
def _group_norm_rule(func, args, kwargs, t):
    call = _bind(_group_norm, func, args, kwargs)
    return norms.group_norm(
        call["input"], call["num_groups"], call["weight"], call["bias"], call["eps"],
        lambda x, w, b: call.call(input=x, weight=w, bias=b),
    )


@op_rule("rms_norm", None, [F.rms_norm, torch.rms_norm])
def _rms_norm_rule(func, args, kwargs, t):
    call = _bind(_rms_norm, func, args, kwargs)
    return norms.rms_norm(
        call["input"], call["normalized_shape"], call["weight"], call["eps"],
        lambda x, w: call.call(input=x, weight=w),
    )


@op_rule("normalize", None, [F.normalize])
def _normalize_rule(func, args, kwargs, t):
    call = _bind(_normalize, func, args, kwargs)
    if call["out"] is not None:
        return call.call()
    return norms.vector_normalize(call["input"], call["p"], call["dim"], call["eps"], lambda x: call.call(input=x))


# --- attention ----------------------------------------------------------------

@op_rule("scaled_dot_product_attention", "attention", [F.scaled_dot_product_attention])
def _sdpa_rule(func, args, kwargs, t):
    call = _bind(_sdpa, func, args, kwargs)
    return attention.constant_attention(
        call["query"], call["key"], call["value"],
        forward_fn=lambda q, k, v: call.call(query=q, key=k, value=v),
        attn_mask=call["attn_mask"],
        is_causal=call["is_causal"],
        scale=call["scale"],
        temperature=t.attention,
    )


def implicit_softmax_dim(ndim: int) -> int:
    """The dimension ``F.softmax`` picks when ``dim`` is None."""
    return 0 if ndim in (0, 1, 3) else 1


ATTENTION_WEIGHTS_RULE = "softmax (attention weights)"


@op_rule(ATTENTION_WEIGHTS_RULE, "attention", [F.softmax, torch.softmax, Tensor.softmax])
def _softmax_rule(func, args, kwargs, t):
    stub = _softmax if func is F.softmax else _softmax_method
    call = _bind(stub, func, args, kwargs)
    return attention.constant_weights(call["input"], lambda x: call.call(input=x))


def softened_softmax(func: Callable, args: tuple, kwargs: dict, temperature: float) -> Tensor:
    """The weights softmax(logits/T) for an intercepted softmax call (detached)."""
    stub = _softmax if func is F.softmax else _softmax_method
    call = _bind(stub, func, args, kwargs)
    logits = call["input"].detach()
    dim = call["dim"] if call["dim"] is not None else implicit_softmax_dim(logits.dim())
    return torch.softmax(logits / temperature, dim=dim, dtype=call["dtype"])


def keep_forward(output: Tensor, surrogate: Tensor) -> Tensor:
    """``output``'s value with ``surrogate``'s gradient: output.detach() + (s − s.detach())."""
    return output.detach() + (surrogate - surrogate.detach())


def _mha_stub(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias, bias_k, bias_v,
              add_zero_attn, dropout_p, out_proj_weight, out_proj_bias, training=True, key_padding_mask=None,
              need_weights=True, attn_mask=None, use_separate_proj_weight=False, q_proj_weight=None,
              k_proj_weight=None, v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
              is_causal=False): ...


_MHA_SIGNATURE = _signature(_mha_stub)


@op_rule("multi_head_attention", "attention", [F.multi_head_attention_forward])
def _mha_rule(func, args, kwargs, t):
    call = _Call(func, _MHA_SIGNATURE, args, kwargs)
    if call["static_k"] is not None or call["static_v"] is not None:
        raise NotImplementedError("the attention rule does not support multi-head attention with static_k/static_v")
    with torch.no_grad():
        output, weights = call.call()
    surrogate = attention.multi_head_attention_surrogate(
        call["query"], call["key"], call["value"],
        num_heads=call["num_heads"],
        in_proj_weight=call["in_proj_weight"],
        in_proj_bias=call["in_proj_bias"],
        bias_k=call["bias_k"],
        bias_v=call["bias_v"],
        add_zero_attn=call["add_zero_attn"],
        out_proj_weight=call["out_proj_weight"],
        out_proj_bias=call["out_proj_bias"],
        key_padding_mask=call["key_padding_mask"],
        attn_mask=call["attn_mask"],
        is_causal=call["is_causal"],
        use_separate_proj_weight=call["use_separate_proj_weight"],
        q_proj_weight=call["q_proj_weight"],
        k_proj_weight=call["k_proj_weight"],
        v_proj_weight=call["v_proj_weight"],
        temperature=t.attention,
    )
    return keep_forward(output, surrogate), weights


# --- module rules -------------------------------------------------------------

InForwardOpRule = Callable[[Callable, tuple, dict], Any]
"""``handler(func, args, kwargs)``: runs one op of a ruled module's own forward (see ModuleRuleEntry)."""


@dataclasses.dataclass(frozen=True)
class ModuleRuleEntry:
    """A module rule.  ``in_forward_ops`` (read from the rule's attribute of that name) is its
    cheaper eager form: ``{op: handler}`` applied to the ops of the module's own forward, which then
    runs once, with autograd, instead of without autograd and again through ``rule``.  ``rule`` is
    what torch.compile traces."""

    name: str
    rule: ModuleRule
    in_forward_ops: Mapping[Callable, InForwardOpRule] | None = None

    @classmethod
    def of(cls, rule: ModuleRule, name: str | None = None) -> "ModuleRuleEntry":
        return cls(name or getattr(rule, "__name__", "module rule"), rule, getattr(rule, "in_forward_ops", None))


MODULE_RULES: dict[type | str, ModuleRuleEntry] = {}
"""Module type (or its ``module.QualName`` / bare class name) -> rule; filled by
:func:`register_module_rule` calls, never by importing a module."""


_module_rules_changes = 0


def module_rules_version() -> int:
    """Changes with every :func:`register_module_rule` / :func:`unregister_module_rule` call."""
    return _module_rules_changes


def register_module_rule(module_type: type | str, rule: ModuleRule, name: str | None = None) -> None:
    """Give every module of ``module_type`` (a class, or its qualified or bare name) the rule.

    ``rule(module, inputs, output, temperatures)`` returns a replacement output with
    the same value, typically ``keep_forward(output, surrogate)``.  Inside the pullback mode the
    module's own forward runs without autograd (``output`` carries no graph): the rule's
    surrogate is the only gradient path.  A rule whose surrogate is the module's own computation
    with some ops swapped can say so with an ``in_forward_ops`` attribute (see ModuleRuleEntry):
    the forward then runs once instead of twice.
    """
    global _module_rules_changes
    MODULE_RULES[module_type] = ModuleRuleEntry.of(rule, name)
    _module_rules_changes += 1


def unregister_module_rule(module_type: type | str) -> None:
    global _module_rules_changes
    MODULE_RULES.pop(module_type, None)
    _module_rules_changes += 1


def find_module_rule(module: nn.Module, extra: Mapping[type | str, ModuleRuleEntry]) -> ModuleRuleEntry | None:
    """The rule for ``module``: ``extra`` first, then the registry, most derived class first."""
    for cls in type(module).__mro__:
        if cls in (nn.Module, object):
            return None
        for key in (cls, f"{cls.__module__}.{cls.__qualname__}", cls.__name__):
            entry = extra.get(key) or MODULE_RULES.get(key)
            if entry is not None:
                return entry
    return None


def gate_module_rule(kind: str) -> ModuleRule:
    """Module rule for an activation written as arithmetic, y = x·g(x) (HF ``NewGELUActivation``,
    ``QuickGELU``, timm ``Swish``…): its input gets the ``kind`` gate ("relu", "gelu" or "silu")."""
    gate_factories = {"relu": gates.relu_gate, "gelu": gates.gelu_gate, "silu": gates.silu_gate}
    if kind not in gate_factories:
        raise ValueError(f"unknown gate kind {kind!r}; choose from {sorted(gate_factories)}")

    def rule(module: nn.Module, inputs: tuple, output: Tensor, t: Temperatures) -> Tensor:
        x = inputs[0]
        gate = gate_factories[kind](getattr(t, kind))(x.detach())
        return keep_forward(output, x * gate)

    rule.__name__ = f"{kind} gate (module)"
    return rule
