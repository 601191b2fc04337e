"""Attention rule (SPEC §2): the attention weights are constants of the pullback.

For out = A·V with A = softmax(QKᵀ·s + mask), the backward sends Aᵀ·grad_out to V
and nothing to Q, K (or the mask).  With a temperature T ≠ 1 the weights used in
the backward are softmax((QKᵀ·s)/T + mask) instead; the forward value is always
the ordinary one.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def attention_weights(
    query: Tensor,
    key: Tensor,
    attn_mask: Tensor | None,
    is_causal: bool,
    scale: float | None,
    temperature: float,
) -> Tensor:
    """softmax((Q Kᵀ · scale)/T + mask) as scaled_dot_product_attention defines Q, K and the mask.

    query: (..., Hq, L, E); key: (..., Hk, S, E) with Hq a multiple of Hk -> (..., Hq, L, S).
    A boolean mask keeps the positions where it is True; a float mask is added.
    Rows with every position masked get zero weights.
    """
    groups = query.shape[-3] // key.shape[-3] if query.dim() >= 3 and key.dim() >= 3 else 1
    if groups > 1:
        key = key.repeat_interleave(groups, dim=-3)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    logits = (query @ key.transpose(-2, -1)) * (scale / temperature)
    length, source = query.shape[-2], key.shape[-2]
    if is_causal:
        keep = torch.ones(length, source, dtype=torch.bool, device=query.device).tril()
        logits = logits.masked_fill(~keep, -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attn_mask, -math.inf)
        else:
            logits = logits + attn_mask
    return torch.softmax(logits, dim=-1).nan_to_num(0.0)


class ConstantAttention(torch.autograd.Function):
    """Exact ``forward_fn(q, k, v)``; backward: grad_v = Aᵀ grad_out, none to q, k."""

    @staticmethod
    def forward(ctx, query, key, value, forward_fn: Callable, weights_fn: Callable):
        ctx.weights_fn = weights_fn
        ctx.value_heads = value.shape[-3] if value.dim() >= 3 else None
        ctx.save_for_backward(query, key)
        return forward_fn(query, key, value)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        query, key = ctx.saved_tensors
        weights = ctx.weights_fn(query, key).to(grad_out.dtype)
        grad_value = weights.transpose(-2, -1) @ grad_out
        heads = ctx.value_heads
        if heads is not None and grad_value.shape[-3] != heads:
            grad_value = grad_value.unflatten(-3, (heads, -1)).sum(dim=-3)
        return None, None, grad_value, None, None


def constant_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    forward_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
    attn_mask: Tensor | None,
    is_causal: bool,
    scale: float | None,
    temperature: float,
) -> Tensor:
    """Scaled-dot-product attention output with the constant-weights backward."""
    mask = attn_mask.detach() if attn_mask is not None else None

    def weights_fn(q: Tensor, k: Tensor) -> Tensor:
        return attention_weights(q, k, mask, is_causal, scale, temperature)

    return ConstantAttention.apply(query, key, value, forward_fn, weights_fn)


def constant_weights(x: Tensor, forward_fn: Callable[[Tensor], Tensor]) -> Tensor:
    """``forward_fn(x)`` (a softmax) as a constant of the pullback: no gradient to x."""
    return forward_fn(x.detach())


def multi_head_attention_surrogate(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    num_heads: int,
    in_proj_weight: Tensor | None,
    in_proj_bias: Tensor | None,
    bias_k: Tensor | None,
    bias_v: Tensor | None,
    add_zero_attn: bool,
    out_proj_weight: Tensor,
    out_proj_bias: Tensor | None,
    key_padding_mask: Tensor | None,
    attn_mask: Tensor | None,
    is_causal: bool,
    use_separate_proj_weight: bool,
    q_proj_weight: Tensor | None,
    k_proj_weight: Tensor | None,
    v_proj_weight: Tensor | None,
    temperature: float,
) -> Tensor:
    """``F.multi_head_attention_forward``'s output rebuilt from linear maps and
    :func:`constant_attention`, so that its gradient follows the attention rule.

    query: (L, N, E) or (L, E); key, value: (S, N, E) or (S, E) -> like query.
    Its value equals the native one up to rounding; callers keep the native value.
    """
    unbatched = query.dim() == 2
    if unbatched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    length, batch, embed = query.shape
    head_dim = embed // num_heads
    if use_separate_proj_weight:
        weights = (q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        weights = in_proj_weight.chunk(3)
    biases = in_proj_bias.chunk(3) if in_proj_bias is not None else (None, None, None)
    q = F.linear(query, weights[0], biases[0])
    k = F.linear(key, weights[1], biases[1])
    v = F.linear(value, weights[2], biases[2])
    if bias_k is not None:
        k = torch.cat([k, bias_k.expand(1, batch, embed)])
        v = torch.cat([v, bias_v.expand(1, batch, embed)])
    if add_zero_attn:
        k = torch.cat([k, k.new_zeros(1, batch, embed)])
        v = torch.cat([v, v.new_zeros(1, batch, embed)])
    source = k.shape[0]

    def heads(t: Tensor) -> Tensor:  # (T, N, E) -> (N, H, T, D)
        return t.reshape(t.shape[0], batch, num_heads, head_dim).permute(1, 2, 0, 3)

    mask = _merged_additive_mask(attn_mask, key_padding_mask, batch, num_heads, length, source, q.dtype)
    causal = is_causal and mask is None
    out = constant_attention(
        heads(q),
        heads(k),
        heads(v),
        forward_fn=lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask, is_causal=causal),
        attn_mask=mask,
        is_causal=causal,
        scale=None,
        temperature=temperature,
    )
    out = out.permute(2, 0, 1, 3).reshape(length, batch, embed)
    out = F.linear(out, out_proj_weight, out_proj_bias)
    return out.squeeze(1) if unbatched else out


def _pad_source(mask: Tensor, source: int) -> Tensor:
    """Extend a mask's last dim with zeros for the bias_k / zero-attention columns."""
    missing = source - mask.shape[-1]
    return F.pad(mask, (0, missing)) if missing > 0 else mask


def _merged_additive_mask(attn_mask, key_padding_mask, batch, num_heads, length, source, dtype):
    """nn.MultiheadAttention's masks (True = masked out) as one additive (N, H, L, S) float mask."""
    merged = None
    if attn_mask is not None:
        additive = _to_additive(attn_mask, dtype)
        if additive.dim() == 3:
            additive = additive.view(batch, num_heads, length, -1)
        merged = _pad_source(additive, source)
    if key_padding_mask is not None:
        padding = _pad_source(_to_additive(key_padding_mask, dtype), source).view(batch, 1, 1, source)
        merged = padding if merged is None else merged + padding
    return merged


def _to_additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, -math.inf)
    return mask.to(dtype)
