"""Normalisation rules with constant statistics (SPEC §2).

Holding the mean and the variance (or the RMS) of a normalisation layer fixed
makes it an affine map; its backward is then grad_out · weight · rstd.  The
forward value is the ordinary one.  The statistics do not depend on the weight
and bias, so their gradients are the native ones and ``weight.grad``/``bias.grad``
remain meaningful.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor


def _inverse_std(x: Tensor, dims: tuple[int, ...], eps: float, centred: bool) -> Tensor:
    """1/sqrt(var + eps) (or 1/sqrt(mean(x²) + eps)) over ``dims``, computed in ≥ float32."""
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if centred:
        second_moment = xf.var(dim=dims, unbiased=False, keepdim=True)
    else:
        second_moment = xf.pow(2).mean(dim=dims, keepdim=True)
    return torch.rsqrt(second_moment + eps).to(x.dtype)


class ConstantStatisticsNorm(torch.autograd.Function):
    """Passes the norm's output ``y`` through; dL/dx = dL/dy · weight · rstd(x), dL/dy goes on to ``y``.

    ``y`` is the ordinary norm of x.detach(), so autograd computes the weight and bias
    gradients natively (and skips them when they are not asked for).  ``grouped(t)``
    reshapes x-shaped tensors so that ``rstd`` broadcasts (identity for layer/RMS norm,
    (N, G, -1) for group norm); ``expand_weight(w, x)`` broadcasts the per-feature weight.
    """

    @staticmethod
    def forward(ctx, x, y, rstd, weight, grouped, expand_weight):
        ctx.grouped, ctx.expand_weight = grouped, expand_weight
        ctx.save_for_backward(rstd, weight)
        ctx.mark_dirty(y)  # y, fresh from the norm, is handed on as the output itself (not a view of it)
        return y

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        rstd, weight = ctx.saved_tensors
        scaled = grad_out if weight is None else grad_out * ctx.expand_weight(weight, grad_out)
        grad_x = (ctx.grouped(scaled) * rstd).view_as(grad_out)
        return grad_x, grad_out if ctx.needs_input_grad[1] else None, None, None, None, None


def _constant_statistics(x, weight, bias, forward_fn, dims, eps, centred, grouped, expand_weight) -> Tensor:
    """``forward_fn(x, weight, bias)`` with the statistics of x held constant in the backward."""
    detached = x.detach()
    rstd = _inverse_std(grouped(detached), dims, eps, centred)
    y = forward_fn(detached, weight, bias)
    saved_weight = weight.detach() if weight is not None else None
    return ConstantStatisticsNorm.apply(x, y, rstd, saved_weight, grouped, expand_weight)


def _identity(t: Tensor) -> Tensor:
    return t


def _trailing_weight(weight: Tensor, like: Tensor) -> Tensor:
    return weight


def layer_norm(x: Tensor, normalized_shape: Sequence[int], weight, bias, eps: float, forward_fn: Callable) -> Tensor:
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    return _constant_statistics(x, weight, bias, forward_fn, dims, eps, True, _identity, _trailing_weight)


def rms_norm(x: Tensor, normalized_shape: Sequence[int], weight, eps: float | None, forward_fn: Callable) -> Tensor:
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return _constant_statistics(
        x, weight, None, lambda t, w, b: forward_fn(t, w), dims, eps, False, _identity, _trailing_weight
    )


def group_norm(x: Tensor, num_groups: int, weight, bias, eps: float, forward_fn: Callable) -> Tensor:
    """x: (N, C, *) with statistics per sample and group of C/num_groups channels."""
    batch = x.shape[0]

    def grouped(t: Tensor) -> Tensor:
        return t.reshape(batch, num_groups, -1)

    def channel_weight(w: Tensor, like: Tensor) -> Tensor:
        return w.view(1, -1, *([1] * (like.dim() - 2)))

    return _constant_statistics(x, weight, bias, forward_fn, (-1,), eps, True, grouped, channel_weight)


def vector_normalize(x: Tensor, p: float, dim: int, eps: float, forward_fn: Callable) -> Tensor:
    """``F.normalize``: x / max(‖x‖_p, eps) over ``dim`` with the norm held constant (like a norm
    layer's statistics): the backward is grad / max(‖x‖_p, eps).  The forward is ``forward_fn(x)``."""
    y = forward_fn(x.detach())
    denominator = x.detach().norm(p, dim, keepdim=True).clamp_min(eps)
    surrogate = x / denominator
    return y + (surrogate - surrogate.detach())
