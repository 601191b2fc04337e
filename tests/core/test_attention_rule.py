"""Attention rule: Aᵀ·g to V, nothing to Q and K; softened weights when T ≠ 1."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmm


def _weights(q, k, mask=None, causal=False, t=1.0, scale=None):
    """Hand-written softmax((QKᵀ·s)/T + mask) in float64."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    logits = q @ k.transpose(-2, -1) * scale / t
    if causal:
        logits = logits.masked_fill(torch.ones(q.shape[-2], k.shape[-2]).tril() == 0, -math.inf)
    if mask is not None:
        logits = logits.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else logits + mask
    return torch.softmax(logits, -1)


def _qkv(b=2, h=3, l=5, s=6, e=4, hk=None):
    hk = hk or h
    return (
        torch.randn(b, h, l, e, dtype=torch.float64, requires_grad=True),
        torch.randn(b, hk, s, e, dtype=torch.float64, requires_grad=True),
        torch.randn(b, hk, s, e, dtype=torch.float64, requires_grad=True),
    )


@pytest.mark.parametrize("t", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("variant", ["plain", "bool_mask", "float_mask", "causal", "scale"])
def test_sdpa(variant, t):
    q, k, v = _qkv(l=6 if variant == "causal" else 5)
    kwargs, ref = {}, {}
    if variant == "bool_mask":
        mask = torch.rand(q.shape[-2], k.shape[-2]) > 0.3
        mask[:, 0] = True
        kwargs["attn_mask"] = ref["mask"] = mask
    if variant == "float_mask":
        kwargs["attn_mask"] = ref["mask"] = torch.randn(2, 1, q.shape[-2], k.shape[-2], dtype=torch.float64)
    if variant == "causal":
        kwargs["is_causal"] = ref["causal"] = True
    if variant == "scale":
        kwargs["scale"] = ref["scale"] = 0.3
    with spmm.pullback_mode(attention=t):
        out = F.scaled_dot_product_attention(q, k, v, **kwargs)
    assert torch.equal(out.detach(), F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), **kwargs))
    g = torch.randn_like(out)
    grad_q, grad_k, grad_v = torch.autograd.grad(out, (q, k, v), g, allow_unused=True, materialize_grads=True)
    assert grad_q.abs().max() == 0 and grad_k.abs().max() == 0
    weights = _weights(q.detach(), k.detach(), t=t, **ref)
    torch.testing.assert_close(grad_v, weights.transpose(-2, -1) @ g)


def test_sdpa_grouped_heads():
    q, k, v = _qkv(h=4, hk=2)
    with spmm.pullback_mode(attention=0.7):
        out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    g = torch.randn_like(out)
    (grad_v,) = torch.autograd.grad(out, (v,), g)
    weights = _weights(q.detach(), k.detach().repeat_interleave(2, dim=1), t=0.7)
    per_query_head = weights.transpose(-2, -1) @ g  # (B, Hq, S, E); query heads 2j, 2j+1 share key head j
    expected = per_query_head.unflatten(1, (2, 2)).sum(2)
    torch.testing.assert_close(grad_v, expected)


def _explicit_attention(x, wq, wk, wv, heads):
    """timm / Hugging Face 'eager' style: q@kᵀ → softmax → dropout(eval) → @v."""
    b, n, d = x.shape
    split = lambda t: t.view(b, n, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(x @ wq), split(x @ wk), split(x @ wv)
    attn = (q @ k.transpose(-2, -1)) * (d // heads) ** -0.5
    attn = attn.softmax(dim=-1)
    attn = F.dropout(attn, 0.1, training=False)
    return (attn @ v).transpose(1, 2).reshape(b, n, d)


@pytest.mark.parametrize("t", [1.0, 0.5])
def test_explicit_softmax_attention(t):
    torch.manual_seed(3)
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    wq, wk, wv = (torch.randn(8, 8, dtype=torch.float64) for _ in range(3))
    with spmm.pullback_mode(attention=t):
        out = _explicit_attention(x, wq, wk, wv, 2)
    assert torch.equal(out.detach(), _explicit_attention(x.detach(), wq, wk, wv, 2))
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, g)
    # reference: only the value path carries gradient, through hand-computed (softened) weights
    xd = x.detach().clone().requires_grad_(True)
    split = lambda t_: t_.view(2, 5, 2, 4).transpose(1, 2)  # noqa: E731
    weights = _weights(split(x.detach() @ wq), split(x.detach() @ wk), t=t)
    ref = (weights @ split(xd @ wv)).transpose(1, 2).reshape(2, 5, 8)
    (expected,) = torch.autograd.grad(ref, xd, g)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("masks", ["none", "key_padding", "attn_mask_bool", "attn_mask_float"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_module(masks, batch_first):
    torch.manual_seed(4)
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first).double().eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    x = x if batch_first else x.transpose(0, 1)
    x = x.clone().requires_grad_(True)
    kwargs = {}
    key_padding = attn_bool = attn_float = None
    if masks == "key_padding":
        key_padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
        kwargs["key_padding_mask"] = key_padding
    if masks == "attn_mask_bool":
        attn_bool = torch.ones(5, 5, dtype=torch.bool).triu(1)
        kwargs["attn_mask"] = attn_bool
    if masks == "attn_mask_float":
        attn_float = torch.randn(5, 5, dtype=torch.float64)
        kwargs["attn_mask"] = attn_float
    with spmm.pullback_mode():
        out, _ = mha(x, x, x, **kwargs)
    plain, _ = mha(x, x, x, **kwargs)
    assert torch.equal(out.detach(), plain.detach())
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, g)
    # reference: out_proj(A · V(x)) with A computed by hand and held constant
    xb = x.detach() if batch_first else x.detach().transpose(0, 1)
    xd = xb.clone().requires_grad_(True)
    wq, wk, wv = mha.in_proj_weight.detach().chunk(3)
    bq, bk, bv = mha.in_proj_bias.detach().chunk(3)
    heads = lambda t: t.view(2, 5, 2, 4).transpose(1, 2)  # noqa: E731
    mask = None
    if key_padding is not None:
        mask = (~key_padding).view(2, 1, 1, 5)
    if attn_bool is not None:
        mask = ~attn_bool
    if attn_float is not None:
        mask = attn_float
    weights = _weights(heads(xb @ wq.T + bq), heads(xb @ wk.T + bk), mask=mask)
    values = heads(xd @ wv.T + bv)
    ref = mha.out_proj((weights @ values).transpose(1, 2).reshape(2, 5, 8))
    ref = ref if batch_first else ref.transpose(0, 1)
    (expected,) = torch.autograd.grad(ref, xd, g)
    expected = expected if batch_first else expected.transpose(0, 1)
    torch.testing.assert_close(grad, expected)
