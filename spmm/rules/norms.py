"""Normalisation rules with constant statistics (SPEC §2).

Holding the mean and the variance (or the RMS) of a normalisation layer fixed
makes it an affine map; its backward is then grad_out · weight · rstd.  The
forward value is the ordinary one.  Parameter gradients stay exact for those
statistics, so ``weight.grad``/``bias.grad`` remain meaningful.
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
    """y = forward_fn(x, weight, bias) exactly; dL/dx = dL/dy · weight · rstd(x).

    ``grouped(t)`` reshapes x-shaped tensors so that the statistics are taken
    over ``dims`` (identity for layer/RMS norm, (N, G, -1) for group norm);
    ``expand_weight(w, x)`` broadcasts the per-feature weight against x.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, forward_fn, dims, eps, centred, grouped, expand_weight):
        rstd = _inverse_std(grouped(x), dims, eps, centred)
        ctx.dims, ctx.centred, ctx.grouped, ctx.expand_weight = dims, centred, grouped, expand_weight
        ctx.bias = bias.detach() if bias is not None and ctx.needs_input_grad[2] else None
        keep_x = weight is not None and ctx.needs_input_grad[1]
        ctx.save_for_backward(rstd, weight, x if keep_x else None)
        return forward_fn(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        rstd, weight, x = ctx.saved_tensors
        scaled = grad_out if weight is None else grad_out * ctx.expand_weight(weight, grad_out)
        grad_x = (ctx.grouped(scaled) * rstd).view_as(grad_out)
        grad_weight = grad_bias = None
        if x is not None:
            xg = ctx.grouped(x)
            centred = xg - xg.mean(dim=ctx.dims, keepdim=True) if ctx.centred else xg
            normalised = (centred * rstd).view_as(x)
            grad_weight = _sum_to_param(grad_out * normalised, weight, ctx.expand_weight)
        if ctx.bias is not None and ctx.needs_input_grad[2]:
            grad_bias = _sum_to_param(grad_out, ctx.bias, ctx.expand_weight)
        return grad_x, grad_weight, grad_bias, None, None, None, None, None, None


def _sum_to_param(t: Tensor, param: Tensor, expand: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Sum ``t`` over the dimensions along which ``expand(param, t)`` broadcasts."""
    view_shape = tuple(expand(param, t).shape)
    view_shape = (1,) * (t.dim() - len(view_shape)) + view_shape
    dims = [d for d, (p, n) in enumerate(zip(view_shape, t.shape)) if p == 1 and n != 1]
    summed = t.sum(dim=dims, keepdim=True) if dims else t
    return summed.reshape(param.shape)


def _identity(t: Tensor) -> Tensor:
    return t


def _trailing_weight(weight: Tensor, like: Tensor) -> Tensor:
    return weight


def layer_norm(x: Tensor, normalized_shape: Sequence[int], weight, bias, eps: float, forward_fn: Callable) -> Tensor:
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    return ConstantStatisticsNorm.apply(x, weight, bias, forward_fn, dims, eps, True, _identity, _trailing_weight)


def rms_norm(x: Tensor, normalized_shape: Sequence[int], weight, eps: float | None, forward_fn: Callable) -> Tensor:
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return ConstantStatisticsNorm.apply(
        x, weight, None, lambda t, w, b: forward_fn(t, w), dims, eps, False, _identity, _trailing_weight
    )


def group_norm(x: Tensor, num_groups: int, weight, bias, eps: float, forward_fn: Callable) -> Tensor:
    """x: (N, C, *) with statistics per sample and group of C/num_groups channels."""
    batch = x.shape[0]

    def grouped(t: Tensor) -> Tensor:
        return t.reshape(batch, num_groups, -1)

    def channel_weight(w: Tensor, like: Tensor) -> Tensor:
        return w.view(1, -1, *([1] * (like.dim() - 2)))

    return ConstantStatisticsNorm.apply(x, weight, bias, forward_fn, (-1,), eps, True, grouped, channel_weight)
