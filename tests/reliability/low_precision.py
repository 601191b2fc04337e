"""How close a bfloat16 / float16 result must be to the float32 result of the same method, derived
from the rounding of the low-precision format rather than from one machine's numbers.

Every stored value is rounded to within u = eps/2 relative (eps = ``torch.finfo(dtype).eps``:
2^-7 for bfloat16, 2^-10 for float16).  On the tiny nets one forward and backward path is rounded
about ``ROUNDINGS`` times; in the worst case these errors add up, and an iterated method (ascent
steps) adds them up once per step.  That bounds the methods whose gates are smooth (SP methods).
A hard gate (ReLU, max-pool winner) whose input lies within rounding distance of its switch point
may flip; the result then changes by O(1) inside that unit's receptive field only, and which units
flip depends on the CPU's kernels.  Hard-gate methods must meet the bound everywhere except in the
receptive fields of at most ``FLIPPED_GATES_PER_SAMPLE`` units per sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

ROUNDINGS = 12
"""Forward: input, weights, conv, norm, gate, pool, linear (and the cast of the output); the backward as many."""
FLIPPED_GATES_PER_SAMPLE = 2


def rounding_bound(dtype: torch.dtype, steps: int = 1) -> float:
    """Worst-case relative error of ``steps`` chained evaluations: steps · ROUNDINGS · eps/2."""
    return steps * ROUNDINGS * torch.finfo(dtype).eps / 2


def assert_close_to_float32(low: Tensor, full: Tensor, dtype: torch.dtype, *, steps: int = 1,
                            hard_gates: bool, receptive_field: int) -> None:
    """low, full: (B, ...) attributions of the low-precision and the float32 model.

    Smooth gates: relative L2 error within :func:`rounding_bound`.  Hard gates: every element within
    the bound (relative to its sample's largest |attribution|) except at most
    ``FLIPPED_GATES_PER_SAMPLE · receptive_field`` elements per sample (``receptive_field``: the
    input elements one hidden unit sees)."""
    bound = rounding_bound(dtype, steps)
    difference = low.float() - full
    if not hard_gates:
        error = (difference.norm() / full.norm()).item()
        assert error <= bound, f"relative error {error:.4f} > {bound:.4f} ({steps} × {ROUNDINGS} roundings of {dtype})"
        return
    scale = full.flatten(1).abs().amax(dim=1).view(-1, *[1] * (full.dim() - 1))
    outside = (difference.abs() > bound * scale).flatten(1).sum(dim=1)
    allowed = FLIPPED_GATES_PER_SAMPLE * receptive_field
    assert (outside <= allowed).all(), (
        f"{outside.tolist()} elements per sample differ by more than {bound:.4f} of the largest; "
        f"{FLIPPED_GATES_PER_SAMPLE} flipped gates explain at most {allowed}"
    )
