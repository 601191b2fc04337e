"""Expected-gate rules for pointwise activations (SPEC §2).

An activation y = x · g(x) is, for fixed gates, linear in x.  Semantic Pullbacks
keep the forward value and, in the backward pass only, multiply the incoming
gradient by a softened gate g_T(x) that is treated as a constant:

=============  ===============================================  ===========
activation     softened gate g_T(x)                             temperature
=============  ===============================================  ===========
ReLU           Φ(x/T)                                           ``relu``
LeakyReLU(a)   a + (1 − a) Φ(x/T)                               ``leaky_relu``
Hardtanh/ReLU6 Φ((x − lo)/T) − Φ((x − hi)/T)                    ``hardtanh``
GELU           Φ(x/T)                                           ``gelu``
SiLU           σ(x/T)                                           ``silu``
Hardswish      E[clip((x + Tε + 3)/6, 0, 1)], ε ~ N(0, 1)       ``hardswish``
=============  ===============================================  ===========

T = 0 gives the hard gate (for the piecewise-linear ones, the exact gradient).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
from torch import Tensor

Gate = Callable[[Tensor], Tensor]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def normal_cdf(x: Tensor) -> Tensor:
    """Φ(x), the standard normal CDF, elementwise."""
    return torch.special.ndtr(x)


def _soft_step(x: Tensor, temperature: float) -> Tensor:
    """Φ(x/T) = (1 + erf(x/(T√2)))/2, or the hard step 1[x > 0] when T = 0.

    Four passes over x and one new tensor (``ndtr(x / T)`` takes five of each).  ``erf`` rather
    than ``erfc(−x/(T√2))/2``: ATen's vectorised float erf costs about 30% less than erfc on CPU,
    for an absolute error ≤ 5e-8 in float32 (gates below ≈ 3e-8 come out as 0).  Half and
    bfloat16 inputs are evaluated in float32 so that small gates keep their relative precision.
    """
    if temperature == 0:
        return (x > 0).to(x.dtype)
    z = x.to(torch.promote_types(x.dtype, torch.float32)) * (_INV_SQRT_2 / temperature)
    return z.erf_().mul_(0.5).add_(0.5).to(x.dtype)


@dataclasses.dataclass  # not frozen: torch.compile cannot trace a frozen dataclass's __init__
class SoftStep:
    """The gate Φ(x/T), T > 0, of ReLU and GELU, with a fused backward.

    ``pull(x · input_scale, grad)`` gives grad · Φ(x/T) in two passes after the erf, and lets
    the caller fold ``input_scale`` into how it obtains x (an eval batch norm recomputed with
    scaled weights): one pass fewer than recompute, scale, gate, then multiply.
    """

    temperature: float

    def __call__(self, x: Tensor) -> Tensor:
        return _soft_step(x, self.temperature)

    @property
    def input_scale(self) -> float:
        return _INV_SQRT_2 / self.temperature

    @staticmethod
    def pull(z: Tensor, grad: Tensor) -> Tensor:
        """grad · (1 + erf(z))/2 for z = x · input_scale, same shape; z is overwritten."""
        return torch.addcmul(grad, grad, z.erf_(), out=z).mul_(0.5)


def relu_gate(temperature: float) -> Gate:
    if temperature == 0:
        return lambda x: _soft_step(x, 0.0)
    return SoftStep(temperature)


def leaky_relu_gate(negative_slope: float, temperature: float) -> Gate:
    return lambda x: negative_slope + (1.0 - negative_slope) * _soft_step(x, temperature)


def hardtanh_gate(min_val: float, max_val: float, temperature: float) -> Gate:
    return lambda x: _soft_step(x - min_val, temperature) - _soft_step(x - max_val, temperature)


def gelu_gate(temperature: float) -> Gate:
    return relu_gate(temperature)


def silu_gate(temperature: float) -> Gate:
    if temperature == 0:
        return lambda x: (x > 0).to(x.dtype)
    return lambda x: torch.sigmoid(x / temperature)


def _expected_relu(u: Tensor, scale: float) -> Tensor:
    """E[max(u + scale·ε, 0)] for ε ~ N(0, 1): u Φ(u/s) + s φ(u/s)."""
    z = u / scale
    return u * normal_cdf(z) + scale * _INV_SQRT_2PI * torch.exp(-0.5 * z * z)


def hardswish_gate(temperature: float) -> Gate:
    """Gaussian-smoothed Hardswish gate clip((x + 3)/6, 0, 1)."""
    if temperature == 0:
        return lambda x: ((x + 3.0) / 6.0).clamp(0.0, 1.0)
    scale = temperature / 6.0

    def gate(x: Tensor) -> Tensor:
        u = (x + 3.0) / 6.0
        return _expected_relu(u, scale) - _expected_relu(u - 1.0, scale)

    return gate


@dataclasses.dataclass(frozen=True)
class AffineSource:
    """How to recompute an activation's input x from tensors autograd keeps anyway.

    For x = BatchNorm_eval(c), ``recompute(c, scale=s)`` is s times the same batch norm applied to
    c (s folded into its weight and bias), so the gate needs no copy of x (the batch norm already
    saves c for its own backward); for a residual x = BatchNorm_eval(c) + r, ``recompute(c, r,
    scale=s)`` (r is typically saved by the next block's conv).
    """

    tensors: tuple[Tensor, ...]
    recompute: Callable[..., Tensor]  # (*tensors, scale: float) -> scale · x


class ExpectedGate(torch.autograd.Function):
    """y = forward_fn(x) exactly (in place when ``inplace``); dL/dx = dL/dy · gate(x), the gate
    held constant.  x is kept for the backward, or recomputed from ``source`` when given."""

    @staticmethod
    def forward(ctx, x: Tensor, forward_fn, gate: Gate, inplace: bool, source: AffineSource | None):
        ctx.gate, ctx.source = gate, source
        if source is not None:
            ctx.source_versions = tuple(t._version for t in source.tensors)
        else:
            ctx.save_for_backward(x.clone() if inplace else x)
        out = forward_fn(x)
        if inplace:
            ctx.mark_dirty(x)
            return x
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        gate = ctx.gate
        fused = (  # in place, so not when the backward itself is differentiated (create_graph=True)
            isinstance(gate, SoftStep) and grad_out.dtype in (torch.float32, torch.float64)
            and not torch.is_grad_enabled()
        )
        scale = gate.input_scale if fused else 1.0
        if ctx.source is not None:
            if tuple(t._version for t in ctx.source.tensors) != ctx.source_versions:
                raise RuntimeError("spmm: a tensor needed by an activation's pullback was modified in place")
            with torch.no_grad():
                x = ctx.source.recompute(*ctx.source.tensors, scale=scale)
        else:
            (x,) = ctx.saved_tensors
            if fused:
                x = x * scale
        grad_in = gate.pull(x, grad_out) if fused else gate(x).mul_(grad_out)
        return grad_in, None, None, None, None


def apply_gate(
    x: Tensor,
    forward_fn: Callable[[Tensor], Tensor],
    gate: Gate,
    inplace: bool,
    source: AffineSource | None = None,
) -> Tensor:
    """Run ``forward_fn(x)`` with the expected-gate backward."""
    if inplace and torch.compiler.is_compiling():
        return _traced_in_place_gate(x, forward_fn, gate)
    return ExpectedGate.apply(x, forward_fn, gate, inplace, source)


def _traced_in_place_gate(x: Tensor, forward_fn: Callable[[Tensor], Tensor], gate: Gate) -> Tensor:
    """The in-place rule in a form torch.compile keeps: the out-of-place rule applied to x₀, a
    snapshot of x, copied back into x through ``copy_``, which autograd sees.

    An in-place op inside an ``autograd.Function`` is hidden from autograd, and when x is a
    compiled graph's input the compiler recomputes the saved pre-activation from the overwritten
    x (the gate is then evaluated at the activation's output).  The snapshot is an opaque op the
    compiler must keep rather than recompute from x; its gradient is the identity.
    """
    before = snapshot(x)
    return x.copy_(ExpectedGate.apply(before, lambda b: forward_fn(b.clone()), gate, False, None))


@torch.library.custom_op("spmm::snapshot", mutates_args=())
def snapshot(x: Tensor) -> Tensor:
    """A copy of x that torch.compile saves for the backward instead of recomputing it from x."""
    return x.clone()


@snapshot.register_fake
def _snapshot_shape(x: Tensor) -> Tensor:
    return torch.empty_like(x)


def _snapshot_backward(ctx, grad: Tensor) -> Tensor:
    return grad


snapshot.register_autograd(_snapshot_backward)
