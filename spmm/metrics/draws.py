"""Per-sample random draws of metrics and methods, counter-based: a sample's draws depend only on
(seed, its id, the metric's or method's name) and on how many draws its stream gave before — not
on the other samples of the batch, their order, the chunk size or the device.

A sample without an id given is known by its content (:func:`content_ids`): the same values give
the same draws alone, in any batch and at any position.

Each sample has a :class:`SampleStream` with two 32-bit keys k0, k1 (the first 8 bytes of
sha256 of the JSON list ``[seed, metric, str(id)]``, two little-endian words) and a counter.
Draw number p of the stream (counting from 0), an array of N elements, gives element e
(row-major)::

    h = fmix32(k0 ^ fmix32((p + k1) mod 2³²))
    u = (fmix32((fmix32(e ^ h) + k0) mod 2³²) >> 8) / 2²⁴        in [0, 1)

with fmix32 the 32-bit finaliser of MurmurHash3.  All arithmetic is exact in int64, so every
device gives the same bits.  Draws are float32; callers cast them to their inputs' dtype, so a
float16 or bfloat16 model gets the draws of its float32 original.  Normal draws (:func:`normal`)
take one uniform draw of their size rounded up to even, its elements paired in order (Box–Muller).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Hashable, Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError

DRAWS_VERSION = 2
"""Changes whenever the values of a draw change (2: normal draws pair adjacent elements); part of
every benchmark checkpoint key, so a resumed run never mixes rows drawn the old way."""
_LOW32 = 0xFFFFFFFF
_BLOCK = 1 << 18
"""Elements hashed at once on a CPU (64 times as many on other devices): the int64 temporaries
stay a few MiB, which makes the hashing ~3× faster than in one go, with the same bits."""


def _times_(x: Tensor, constant: int) -> Tensor:
    """x ← (x · constant) mod 2³² in place, for int64 x in [0, 2³²): in two 16-bit halves, so no
    product overflows int64 and every device computes the same exact value."""
    high = (x * (constant >> 16)).bitwise_and_(0xFFFF).bitwise_left_shift_(16)
    return x.mul_(constant & 0xFFFF).add_(high).bitwise_and_(_LOW32)


def fmix32_(x: Tensor) -> Tensor:
    """MurmurHash3's 32-bit finaliser, in place on int64 values in [0, 2³²): a bijection with full avalanche."""
    x ^= x >> 16
    _times_(x, 0x85EBCA6B)
    x ^= x >> 13
    _times_(x, 0xC2B2AE35)
    x ^= x >> 16
    return x


class SampleStream:
    """The random draws of one sample in one metric (see the module docstring)."""

    def __init__(self, seed: int, sample: Hashable, metric: str) -> None:
        digest = hashlib.sha256(json.dumps([seed, metric, str(sample)]).encode()).digest()
        self.keys = (int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little"))
        self.drawn = 0


def uniform(
    streams: Sequence[SampleStream], count: int, shape: Sequence[int], device: torch.device | str,
    low: float = 0.0, high: float = 1.0,
) -> Tensor:
    """The next ``count`` draws of every stream, U(low, high): (B, count, *shape) float32 on ``device``.
    Every stream moves on by ``count`` draws, so two calls give what one call for both would."""
    keys = torch.tensor([s.keys for s in streams], dtype=torch.long, device=device).view(-1, 1, 2)
    first = torch.tensor([s.drawn for s in streams], dtype=torch.long, device=device).view(-1, 1)
    draw = first + torch.arange(count, device=device)  # (B, count)
    mixed = fmix32_(fmix32_((draw + keys[..., 1]).bitwise_and_(_LOW32)).bitwise_xor_(keys[..., 0])).view(-1, 1)
    key = keys[..., 0].expand(-1, count).reshape(-1, 1)
    size = int(torch.Size(shape).numel())
    unit = torch.empty(mixed.shape[0], size, dtype=torch.float32, device=device)
    block = max(1, (_BLOCK if unit.device.type == "cpu" else 64 * _BLOCK) // max(1, mixed.shape[0]))
    for start in range(0, size, block):  # in blocks: small int64 temporaries, the same bits
        elements = torch.arange(start, min(size, start + block), dtype=torch.long, device=device)
        unit[:, start : start + block] = fmix32_(fmix32_(elements ^ mixed).add_(key).bitwise_and_(_LOW32)) >> 8
    for stream in streams:
        stream.drawn += count
    return unit.mul_(2.0**-24).mul_(high - low).add_(low).view(len(streams), count, *shape)


def normal(streams: Sequence[SampleStream], count: int, shape: Sequence[int], device: torch.device | str) -> Tensor:
    """The next ``count`` draws of every stream, N(0, 1): (B, count, *shape) float32 on ``device``.

    Box–Muller on one uniform draw of 2h elements, h = ⌈n / 2⌉ for n elements: pair k is
    (u₁, u₂) = (element 2k, element 2k + 1), r = √(−2 ln(1 − u₁)), θ = 2π u₂, and element 2k is
    r·cos θ, element 2k + 1 is r·sin θ (row-major), so |values| ≤ 5.8 (u has 24 bits).  An
    element's value depends on its index only, never on n: the first m elements of a draw of any
    larger shape are those of a draw of m elements (a text padded to a longer batch keeps its noise)."""
    size = int(torch.Size(shape).numel())
    unit = uniform(streams, count, (-(-size // 2), 2), device)
    radius = torch.log1p(-unit[..., 0]).mul_(-2.0).sqrt_()
    angle = unit[..., 1].mul_(2 * math.pi)
    values = torch.stack([radius * torch.cos(angle), radius.mul_(torch.sin(angle))], -1).flatten(2)
    return values[:, :, :size].reshape(len(streams), count, *shape)


def content_ids(inputs: Tensor) -> list[str]:
    """The ids of the samples of ``inputs`` (B, ...) known by their content: sha256 of each sample's
    shape and values as float32 (−0 as 0), so a float16 or bfloat16 copy and its float32 upcast
    share them.  One copy to the CPU for the whole batch."""
    values = inputs.detach().to("cpu", torch.float32).contiguous() + 0.0
    shape = json.dumps(list(values.shape[1:])).encode()
    return [f"sha256:{hashlib.sha256(shape + item.numpy().tobytes()).hexdigest()}" for item in values]


def sample_streams(
    seed: int, name: str, inputs: Tensor, sample_ids: Sequence[Hashable] | None = None
) -> list[SampleStream]:
    """One stream per sample of ``inputs`` (B, ...) for the metric or method ``name``: keyed by
    (``seed``, the sample's id in ``sample_ids``, ``name``), or without ids by (``seed``, its
    :func:`content_ids`, ``name``)."""
    if sample_ids is not None and len(sample_ids) != inputs.shape[0]:
        raise SpmmInputError(f"got {len(sample_ids)} sample ids for a batch of {inputs.shape[0]} samples")
    ids = content_ids(inputs) if sample_ids is None else sample_ids
    return [SampleStream(seed, sample, name) for sample in ids]
