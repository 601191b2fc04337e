"""Soft max-pool rule (SPEC §2).

The forward pass is the ordinary hard max.  In the backward pass each pooling
window spreads its incoming gradient over all of its inputs with the constant
weights softmax(x_window / T); T = 0 sends it to the (first) arg-max, as the
exact gradient does.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def _window_geometry(kernel_size, stride, padding, dilation) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, dilation) as (h, w) pairs; no stride means stride = kernel."""
    kernel = _pair(kernel_size)
    return kernel, _pair(stride) if stride not in (None, ()) else kernel, _pair(padding), _pair(dilation)


def _window_weights(windows: Tensor, temperature: float, dim: int) -> Tensor:
    """softmax(windows/T) along ``dim``; one-hot arg-max when T = 0."""
    if temperature == 0:
        index = windows.argmax(dim=dim, keepdim=True)
        return torch.zeros_like(windows).scatter_(dim, index, 1.0)
    return torch.softmax(windows / temperature, dim=dim)


def soft_max_pool2d_grad(
    x: Tensor,
    grad_out: Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None,
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    temperature: float,
) -> Tensor:
    """Input gradient of a 2-d max-pool under the soft rule.

    x: (N, C, H, W); grad_out: (N, C, H_out, W_out) -> (N, C, H, W).
    Windows that ceil_mode lets run past the border see only real inputs.

    The windows are laid out as one contiguous (kh·kw, N, C, H_out, W_out) tensor, so that the
    softmax over the window runs over its leading dimension (contiguous, vectorised) rather than
    over strided window elements; windows that tile the input (VGG's 2×2/2) are a permuted copy.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window_geometry(kernel_size, stride, padding, dilation)
    n, c, h, w = x.shape
    h_out, w_out = grad_out.shape[-2:]
    if (kh, kw) == (sh, sw) and (ph, pw) == (0, 0) and (dh, dw) == (1, 1) and (h, w) == (h_out * kh, w_out * kw):
        tiles = x.reshape(n, c, h_out, kh, w_out, kw).permute(3, 5, 0, 1, 2, 4)
        windows = tiles.clone(memory_format=torch.contiguous_format).view(kh * kw, n, c, h_out, w_out)
        spread = _spread_over_windows(windows, grad_out, temperature).view(kh, kw, n, c, h_out, w_out)
        return spread.permute(2, 3, 4, 0, 5, 1).reshape(n, c, h, w)
    extra_h = max(0, (h_out - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
    extra_w = max(0, (w_out - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
    padded = F.pad(x, (pw, pw + extra_w, ph, ph + extra_h), value=-math.inf)
    offsets = [
        (slice(i * dh, i * dh + sh * (h_out - 1) + 1, sh), slice(j * dw, j * dw + sw * (w_out - 1) + 1, sw))
        for i in range(kh)
        for j in range(kw)
    ]
    windows = torch.stack([padded[..., rows, cols] for rows, cols in offsets])
    spread = _spread_over_windows(windows, grad_out, temperature)
    grad_padded = torch.zeros_like(padded)
    for (rows, cols), share in zip(offsets, spread):
        grad_padded[..., rows, cols] += share
    return grad_padded[..., ph : ph + h, pw : pw + w]


def _spread_over_windows(windows: Tensor, grad_out: Tensor, temperature: float) -> Tensor:
    """grad_out · softmax(windows/T) over dim 0 (one-hot first arg-max when T = 0), in place.

    windows: a fresh (K, N, C, H_out, W_out) copy of the window elements; grad_out: (N, C, H_out, W_out).
    """
    if temperature == 0:
        return _window_weights(windows, 0.0, dim=0).mul_(grad_out)
    weights = windows.sub_(windows.amax(dim=0)).mul_(1.0 / temperature).exp_()
    return weights.mul_(grad_out / weights.sum(dim=0))


def _adaptive_bounds(size_in: int, size_out: int) -> list[tuple[int, int]]:
    return [
        (math.floor(i * size_in / size_out), math.ceil((i + 1) * size_in / size_out))
        for i in range(size_out)
    ]


def soft_adaptive_max_pool2d_grad(x: Tensor, grad_out: Tensor, temperature: float) -> Tensor:
    """Input gradient of an adaptive 2-d max-pool under the soft rule.

    x: (N, C, H, W); grad_out: (N, C, H_out, W_out) -> (N, C, H, W).
    """
    h, w = x.shape[-2:]
    h_out, w_out = grad_out.shape[-2:]
    if h % h_out == 0 and w % w_out == 0:
        kernel = (h // h_out, w // w_out)
        return soft_max_pool2d_grad(x, grad_out, kernel, kernel, 0, 1, temperature)
    grad_in = torch.zeros_like(x)
    for i, (h0, h1) in enumerate(_adaptive_bounds(h, h_out)):
        for j, (w0, w1) in enumerate(_adaptive_bounds(w, w_out)):
            window = x[..., h0:h1, w0:w1].flatten(-2)
            weights = _window_weights(window, temperature, dim=-1)
            share = weights * grad_out[..., i, j].unsqueeze(-1)
            grad_in[..., h0:h1, w0:w1] += share.view_as(x[..., h0:h1, w0:w1])
    return grad_in


def _as_batched_2d(x: Tensor, spatial_dims: int) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """View a 1-d/2-d pooling input, batched or not, as (N, C, H, W)."""
    batched = x.dim() == spatial_dims + 2
    x4 = x if batched else x.unsqueeze(0)
    if spatial_dims == 1:
        x4 = x4.unsqueeze(-2)

    def restore(t: Tensor) -> Tensor:
        if spatial_dims == 1:
            t = t.squeeze(-2)
        return t if batched else t.squeeze(0)

    return x4, restore


class SoftMaxPool(torch.autograd.Function):
    """Exact max-pool forward; soft spread backward.

    ``forward_fn(x)`` returns the pooled tensor or ``(pooled, indices)``;
    ``grad_fn(x4, grad4)`` maps (N, C, H, W) input and gradient to the input gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor, forward_fn, grad_fn, spatial_dims: int):
        ctx.grad_fn = grad_fn
        ctx.spatial_dims = spatial_dims
        ctx.save_for_backward(x)
        result = forward_fn(x)
        if isinstance(result, tuple):
            ctx.mark_non_differentiable(result[1])
        return result

    @staticmethod
    def backward(ctx, grad_out: Tensor, *unused):
        (x,) = ctx.saved_tensors
        x4, restore = _as_batched_2d(x, ctx.spatial_dims)
        grad4, _ = _as_batched_2d(grad_out, ctx.spatial_dims)
        return restore(ctx.grad_fn(x4, grad4)), None, None, None


def _lift_1d(value, fill: int):
    """1-d pooling argument -> 2-d one acting on a height-1 image."""
    if value is None or value == ():
        return None
    first = value if isinstance(value, int) else value[0]
    return (fill, first)


def soft_max_pool(
    x: Tensor,
    forward_fn: Callable[[Tensor], Tensor],
    *,
    spatial_dims: int,
    kernel_size,
    stride,
    padding,
    dilation,
    temperature: float,
):
    """Apply ``forward_fn`` (a max-pool) with the soft-spread backward."""
    if spatial_dims == 1:
        kernel_size, stride = _lift_1d(kernel_size, 1), _lift_1d(stride, 1)
        padding, dilation = _lift_1d(padding, 0), _lift_1d(dilation, 1)

    window = _window_geometry(kernel_size, stride, padding, dilation)

    def grad_fn(x4: Tensor, grad4: Tensor) -> Tensor:
        if torch.compiler.is_compiling():
            return _soft_max_pool2d_grad_op(x4, grad4, *window, temperature)
        return soft_max_pool2d_grad(x4, grad4, *window, temperature)

    return SoftMaxPool.apply(x, forward_fn, grad_fn, spatial_dims)


@torch.library.custom_op("spmm::soft_max_pool2d_grad", mutates_args=())
def _soft_max_pool2d_grad_op(
    x: Tensor,
    grad_out: Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    temperature: float,
) -> Tensor:
    """:func:`soft_max_pool2d_grad` as one opaque op: torch.compile calls it as it is rather than
    fusing its window gathers and scatters into the neighbouring kernels, which made the inductor
    kernel recompute each window's softmax for every input it touches (ResNet18's pool, one CPU thread:
    193 ms against 17 ms eagerly; ``benchmarks/cost/compiled_variants.py --kernel-profile``)."""
    return soft_max_pool2d_grad(x, grad_out, kernel_size, stride, padding, dilation, temperature).contiguous()


@_soft_max_pool2d_grad_op.register_fake
def _soft_max_pool2d_grad_shape(x, grad_out, kernel_size, stride, padding, dilation, temperature) -> Tensor:
    return torch.empty_like(x)


def soft_adaptive_max_pool(x: Tensor, forward_fn, *, spatial_dims: int, temperature: float):
    """Apply ``forward_fn`` (an adaptive max-pool) with the soft-spread backward."""

    def grad_fn(x4: Tensor, grad4: Tensor) -> Tensor:
        return soft_adaptive_max_pool2d_grad(x4, grad4, temperature)

    return SoftMaxPool.apply(x, forward_fn, grad_fn, spatial_dims)
