"""Which nonlinear ops of an autograd graph kept their exact gradient: the graph walk behind
:func:`spmm.audit` and the ``exact_gradient_ops`` an explanation carries."""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

# Autograd nodes whose exact backward means a nonlinearity kept its true Jacobian.
NONLINEAR_NODES = {
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
BILINEAR_NODES = {"Mul": "mul", "Div": "div", "Bmm": "bmm", "Mm": "mm", "Matmul": "matmul", "Einsum": "einsum",
                   "Baddbmm": "baddbmm"}


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
    if base in NONLINEAR_NODES:
        return NONLINEAR_NODES[base]
    if base in BILINEAR_NODES:
        dependent = [n for n, _ in node.next_functions if n is not None and input_dependent(n)]
        if len(dependent) >= 2:
            return f"{BILINEAR_NODES[base]} of two input-dependent tensors"
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


def unhandled_nodes(root: Tensor, leaf: Tensor) -> tuple[dict[str, int], bool]:
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
    return unhandled_nodes(output, inputs)[0]
