"""The statistics of spmm, in one place: row-wise correlations that never produce NaN (a
constant row correlates 0 with anything), optionally over a subset of each row, and the paired
percentile bootstrap used for confidence intervals of differences between explainers."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from spmm.errors import SpmmInputError


def pearson(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Pearson correlation of the rows of a and b: (B, N), (B, N) -> (B,); 0 where a row is constant.

    mask: (B, N) bool, the entries that count (e.g. the non-empty groups of a sample); the
    others are left out of means and sums, as if the rows were shorter.
    """
    a, b = a.double(), b.double()
    if mask is not None:
        mask = mask.to(a.device).expand_as(a)
        a, b = a.where(mask, 0.0), b.where(mask, 0.0)
        size = mask.sum(-1, keepdim=True).clamp_min(1)
        a = (a - a.sum(-1, keepdim=True) / size).where(mask, 0.0)
        b = (b - b.sum(-1, keepdim=True) / size).where(mask, 0.0)
    else:
        a = a - a.mean(-1, keepdim=True)
        b = b - b.mean(-1, keepdim=True)
    norm = a.norm(dim=-1) * b.norm(dim=-1)
    corr = (a * b).sum(-1) / norm.clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(norm > 0, corr, torch.zeros_like(corr)).clamp(-1, 1)


def ranks(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Average ranks (ties share the mean rank, as scipy.stats.rankdata) along the last dim: (B, N) -> (B, N).

    mask: (B, N) bool; entries outside it rank after every entry inside it, so the ranks of the
    masked entries are those of the masked subset alone.
    """
    values = values.double()
    if mask is not None:
        values = values.masked_fill(~mask.to(values.device).expand_as(values), float("inf"))
    order = torch.sort(values, dim=-1, stable=True).indices
    sorted_values = values.gather(-1, order)
    n = values.shape[-1]
    position = torch.arange(n, device=values.device, dtype=torch.float64).expand_as(values)
    new_run = torch.ones_like(sorted_values, dtype=torch.bool)
    new_run[..., 1:] = sorted_values[..., 1:] != sorted_values[..., :-1]
    run_id = new_run.long().cumsum(-1) - 1
    run_sum = torch.zeros_like(position).scatter_add_(-1, run_id, position)
    run_len = torch.zeros_like(position).scatter_add_(-1, run_id, torch.ones_like(position))
    average = (run_sum / run_len.clamp_min(1)).gather(-1, run_id) + 1
    return torch.empty_like(average).scatter_(-1, order, average)


def spearman(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Spearman rank correlation of the rows: (B, N), (B, N) -> (B,); 0 where a row is constant.
    mask: (B, N) bool, the entries that count (see :func:`pearson`)."""
    return pearson(ranks(a, mask), ranks(b, mask), mask)


def paired_bootstrap_ci(
    a: ArrayLike, b: ArrayLike, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a − b) over paired samples a, b: (n,), (n,).

    The n pairs are resampled with replacement ``resamples`` times (numpy generator seeded with
    ``seed``); the CI is the (1 − level)/2 and (1 + level)/2 percentiles of the resampled mean
    differences.  Fewer than 2 pairs give (nan, nan).
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.ndim != 1:
        raise SpmmInputError(f"paired samples must be two vectors of the same length, got shape {diff.shape}")
    if diff.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, (resamples, diff.size))].mean(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
