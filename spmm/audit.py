"""``spmm.audit``: which nonlinear ops a forward pass meets and which rule handles each."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explain import (
    TRAINING_WARNING, _forward, buffers_kept, check_autograd, check_inputs, is_training, refuse_compiled,
)
from spmm.mode import PullbackMode, Recorder
from spmm.targets import output_logits
from spmm.temperatures import Temperatures

# Autograd nodes whose exact backward means a nonlinearity kept its true Jacobian.
_NONLINEAR_NODES = {
    "Sigmoid": "sigmoid", "Tanh": "tanh", "Hardsigmoid": "hardsigmoid", "Softplus": "softplus", "Elu": "elu",
    "Mish": "mish", "LogSoftmax": "log_softmax", "Softmax": "softmax", "Exp": "exp", "Log": "log",
    "Pow": "pow", "Sqrt": "sqrt", "Rsqrt": "rsqrt", "Erf": "erf", "Clamp": "clamp", "Abs": "abs",
    "Where": "where", "Maximum": "maximum", "Minimum": "minimum", "Max": "max", "Min": "min", "Amax": "amax",
    "Amin": "amin", "Relu": "relu", "Gelu": "gelu", "Silu": "silu", "Hardtanh": "hardtanh", "LeakyRelu": "leaky_relu",
    "Hardswish": "hardswish", "MaxPool1DWithIndices": "max_pool1d", "MaxPool2DWithIndices": "max_pool2d",
    "MaxPool3DWithIndices": "max_pool3d", "AdaptiveMaxPool2D": "adaptive_max_pool2d",
    "AdaptiveMaxPool1D": "adaptive_max_pool1d", "NativeLayerNorm": "layer_norm", "NativeGroupNorm": "group_norm",
    "FusedRmsNorm": "rms_norm", "Var": "var", "Std": "std", "Norm": "norm", "LinalgVectorNorm": "vector_norm",
    "Sort": "sort", "Topk": "topk", "Reciprocal": "reciprocal", "Sin": "sin", "Cos": "cos",
    "ScaledDotProductFlashAttentionForCpu": "scaled_dot_product_attention",
    "ScaledDotProductEfficientAttention": "scaled_dot_product_attention",
    "ScaledDotProductFlashAttention": "scaled_dot_product_attention",
    "ScaledDotProductCudnnAttention": "scaled_dot_product_attention",
    "Glu": "glu", "Selu": "selu", "Celu": "celu", "Rrelu": "rrelu", "Prelu": "prelu", "PreluKernel": "prelu",
    "NativeBatchNorm": "batch_norm (training statistics)",
}
# Products that are nonlinear when both operands depend on the input.
_BILINEAR_NODES = {"Mul": "mul", "Div": "div", "Bmm": "bmm", "Mm": "mm", "Matmul": "matmul", "Einsum": "einsum",
                   "Baddbmm": "baddbmm"}


@dataclasses.dataclass
class AuditRow:
    op: str
    count: int
    rule: str | None


@dataclasses.dataclass
class AuditReport:
    """Nonlinear ops met in one forward pass. ``rows``: (op, count, rule or None)."""

    rows: list[AuditRow]

    @property
    def unhandled(self) -> list[str]:
        """Nonlinear ops that kept their exact gradient."""
        return [row.op for row in self.rows if row.rule is None]

    @property
    def handled(self) -> dict[str, str]:
        return {row.op: row.rule for row in self.rows if row.rule is not None}

    def __str__(self) -> str:
        width = max([len(r.op) for r in self.rows] + [2])
        lines = [f"{'op'.ljust(width)}  {'count':>5}  rule", f"{'-' * width}  {'-' * 5}  {'-' * 24}"]
        for row in self.rows:
            lines.append(f"{row.op.ljust(width)}  {row.count:>5}  {row.rule or 'UNHANDLED (exact gradient)'}")
        lines.append(f"{len(self.unhandled)} unhandled nonlinear op(s)")
        return "\n".join(lines)


def _node_kind(node, input_dependent: Callable[[Any], bool]) -> str | None:
    """Map an autograd node to a nonlinear-op name, or None for linear nodes and spmm's own rules.
    ``input_dependent(node)``: whether a node's value depends on the audited input."""
    name = type(node).__name__
    if name.startswith("BackwardHookFunction"):
        return None
    if name == "BackwardCFunction" or not name.endswith(tuple(f"Backward{i}" for i in range(4))):
        forward_class = getattr(node, "_forward_cls", None)
        if forward_class is None or forward_class.__module__.startswith("spmm."):
            return None
        return f"custom autograd Function {forward_class.__module__}.{forward_class.__qualname__}"
    base = name.rstrip("0123456789")
    base = base[: -len("Backward")] if base.endswith("Backward") else base
    if base == "NativeBatchNorm" and not getattr(node, "_saved_training", True):
        return None  # eval-mode batch norm is affine
    if base in _NONLINEAR_NODES:
        return _NONLINEAR_NODES[base]
    if base in _BILINEAR_NODES:
        dependent = [n for n, _ in node.next_functions if n is not None and input_dependent(n)]
        if len(dependent) >= 2:
            return f"{_BILINEAR_NODES[base]} of two input-dependent tensors"
    return None


def _input_dependent_nodes(root: Tensor, leaf: Tensor) -> set:
    """The nodes of ``root``'s graph whose value depends on ``leaf`` (a path reaches its
    accumulation node, or its own node when ``leaf`` was computed); iterative post-order, so deep
    graphs do not recurse."""
    source = leaf.grad_fn
    depends: dict = {}
    stack = [(root.grad_fn, False)]
    while stack:
        node, expanded = stack.pop()
        if node is None:
            continue
        children = [n for n, _ in node.next_functions if n is not None]
        if expanded:
            depends[node] = (node is source or getattr(node, "variable", None) is leaf
                             or any(depends.get(n, False) for n in children))
        elif node not in depends:
            depends[node] = False  # visiting; set for real once its inputs are done
            stack.append((node, True))
            if node is not source:
                stack.extend((n, False) for n in children if n not in depends)
    return {node for node, depends_on_leaf in depends.items() if depends_on_leaf}


def _unhandled_nodes(root: Tensor, leaf: Tensor) -> tuple[dict[str, int], bool]:
    """Counts of unhandled nonlinear nodes on the paths from ``leaf`` to ``root`` (nodes that depend
    only on parameters or constants are not counted), and whether ``root`` depends on ``leaf``."""
    dependent = _input_dependent_nodes(root, leaf)
    counts: dict[str, int] = {}
    for node in dependent:
        kind = _node_kind(node, dependent.__contains__)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    return counts, root.grad_fn in dependent


def exact_gradient_ops(output: Tensor, inputs: Tensor) -> dict[str, int]:
    """``{op: count}`` of the nonlinear ops on the paths from ``inputs`` to ``output`` whose exact
    gradient no rule replaced (the graph of a forward pass just run under the pullback mode)."""
    if not isinstance(output, Tensor) or output.grad_fn is None:
        return {}
    return _unhandled_nodes(output, inputs)[0]


def audit(
    model: Callable[[Tensor], Any],
    inputs: Tensor,
    *,
    temperatures: Temperatures | Mapping[str, float] | None = None,
    module_rules: Mapping | None = None,
    output_fn: Callable[[Any], Tensor] = output_logits,
) -> AuditReport:
    """Run one forward of ``model`` on ``inputs`` under the pullback mode and report every
    nonlinear op met: the ones a rule handled (with the rule) and, in ``.unhandled``,
    those whose exact gradient reaches the input (sigmoid, tanh, where, products of two
    input-dependent tensors, custom autograd Functions, …).

    Inputs are checked as :func:`spmm.explain` checks them; the pass runs with gradients enabled
    (inside ``torch.inference_mode()`` it is refused: no graph could be seen).  Parameter
    gradients are switched off during the pass (and restored) so that only input-dependent
    paths are inspected; a model in training mode gets its buffers restored afterwards.
    """
    refuse_compiled(model)
    check_inputs(inputs)
    x = check_autograd(inputs).requires_grad_(True)
    if is_training(model):
        warnings.warn(TRAINING_WARNING, stacklevel=2)
    recorder = Recorder()
    params = [p for p in (model.parameters() if isinstance(model, nn.Module) else []) if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with buffers_kept(model), torch.enable_grad(), PullbackMode(temperatures, module_rules, recorder=recorder):
            output = output_fn(_forward(model, x))
    finally:
        for p in params:
            p.requires_grad_(True)
    unhandled, reached = _unhandled_nodes(output, x) if isinstance(output, Tensor) else ({}, False)
    if not reached:
        raise SpmmInputError(
            "audit could not see the graph: the model output does not depend on the input through autograd "
            "(detached, computed under no_grad, or output_fn does not return a tensor of the model output)"
        )
    rows = [AuditRow(op, count, rule) for (op, rule), count in sorted(recorder.ops.items())]
    rows += [AuditRow(op, count, None) for op, count in sorted(unhandled.items())]
    return AuditReport(rows)
