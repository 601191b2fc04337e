"""Row-wise correlations that never produce NaN: a constant row correlates 0 with anything."""

from __future__ import annotations

import torch
from torch import Tensor


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of the rows of a and b: (B, N), (B, N) -> (B,); 0 where a row is constant."""
    a = a.double() - a.double().mean(-1, keepdim=True)
    b = b.double() - b.double().mean(-1, keepdim=True)
    norm = a.norm(dim=-1) * b.norm(dim=-1)
    corr = (a * b).sum(-1) / norm.clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(norm > 0, corr, torch.zeros_like(corr)).clamp(-1, 1)


def ranks(values: Tensor) -> Tensor:
    """Average ranks (ties share the mean rank, as scipy.stats.rankdata) along the last dim: (B, N) -> (B, N)."""
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


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of the rows: (B, N), (B, N) -> (B,); 0 where a row is constant."""
    return pearson(ranks(a), ranks(b))
