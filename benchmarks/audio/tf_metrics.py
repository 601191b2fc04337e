"""Faithfulness, robustness, randomisation and localisation metrics on time-frequency patches.

A small stand-in for ``spmm.metrics`` (issue 4, not merged when this was written),
following SPEC §4 with images replaced by TF inputs (T, F) and square patches by
TF patches (group ids (T, F), see :func:`spmm.modalities.audio.groups.tf_patches`).
Every function scores ONE clip; ``forward`` maps (N, T, F) inputs to (N, C) logits.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Forward = Callable[[Tensor], Tensor]
Explainer = Callable[[Tensor, Tensor], Tensor]  # (N, T, F) inputs, (N,) targets -> (N, T, F)


def _batched(forward: Forward, x: Tensor, batch: int = 64) -> Tensor:
    with torch.no_grad():
        return torch.cat([forward(x[i: i + batch]) for i in range(0, x.shape[0], batch)])


def _pearson(a: Tensor, b: Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denominator = a.norm() * b.norm()
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def patch_sums(attribution: Tensor, groups: Tensor) -> Tensor:
    """(T, F) attribution, (T, F) ids -> (G,) sums."""
    count = int(groups.max()) + 1
    return torch.zeros(count, dtype=attribution.dtype).scatter_add_(0, groups.flatten(), attribution.flatten())


def occlusion_drops(forward: Forward, x: Tensor, target: int, groups: Tensor, baseline: Tensor) -> Tensor:
    """f(x)_y − f(x with patch g set to the baseline)_y for every patch: (G,)."""
    count = int(groups.max()) + 1
    masks = groups.unsqueeze(0) == torch.arange(count).view(-1, 1, 1)
    perturbed = torch.where(masks, baseline, x)
    logits = _batched(forward, torch.cat([x[None], perturbed]))[:, target]
    return logits[0] - logits[1:]


def occlusion_attribution(drops: Tensor, groups: Tensor) -> Tensor:
    """Occlusion map: each patch's drop spread evenly over its bins: (T, F)."""
    sizes = torch.bincount(groups.flatten()).to(drops.dtype)
    return (drops / sizes)[groups]


def faithfulness_correlation(attribution: Tensor, groups: Tensor, drops: Tensor) -> float:
    """Pearson correlation over patches between Σ|attribution| and the logit drop (higher is better)."""
    return _pearson(patch_sums(attribution.abs(), groups), drops)


def infidelity_perturbations(forward: Forward, x: Tensor, target: int, grids: list[Tensor], draws: int,
                             low: float, high: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Every patch of every grid replaced by U(low, high) noise, ``draws`` times.
    Returns x − x̃ (P, T, F) and f(x)_y − f(x̃)_y (P,)."""
    perturbed = []
    for groups in grids:
        count = int(groups.max()) + 1
        masks = groups.unsqueeze(0) == torch.arange(count).view(-1, 1, 1)
        for _ in range(draws):
            noise = torch.rand((count, *x.shape), generator=generator) * (high - low) + low
            perturbed.append(torch.where(masks, noise, x))
    perturbed = torch.cat(perturbed)
    logits = _batched(forward, torch.cat([x[None], perturbed]))[:, target]
    return x[None] - perturbed, logits[0] - logits[1:]


def infidelity(attribution: Tensor, differences: Tensor, drops: Tensor) -> float:
    """Infidelity with optimal scaling: mean((β*·a − b)²), a = ⟨attr, x − x̃⟩ (lower is better)."""
    a = (differences * attribution).flatten(1).sum(1).double()
    b = drops.double()
    beta = (a * b).sum() / (a * a).sum() if (a * a).sum() > 0 else 0.0
    return float(((beta * a - b) ** 2).mean())


def deletion_auc(forward: Forward, probability: Callable[[Tensor], Tensor], x: Tensor, target: int,
                 attribution: Tensor, groups: Tensor, baseline: Tensor) -> float:
    """Patches set to the baseline in order of decreasing attribution sum, one per step; area under
    the target-probability curve over the deleted fraction (lower is better)."""
    order = patch_sums(attribution, groups).argsort(descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    rank_of_bin = rank[groups]
    steps = torch.arange(order.numel() + 1).view(-1, 1, 1)
    curve_inputs = torch.where(rank_of_bin.unsqueeze(0) < steps, baseline, x)
    curve = probability(_batched(forward, curve_inputs))[:, target].double()
    return float(torch.trapezoid(curve, dx=1.0 / order.numel()))


def max_sensitivity(explain: Explainer, x: Tensor, target: int, attribution: Tensor, radius: float, samples: int,
                    generator: torch.Generator) -> float:
    """max over ``samples`` inputs x + U(−r, r) of ‖a(x̃) − a(x)‖ / ‖a(x)‖ (lower is better)."""
    noise = (torch.rand((samples, *x.shape), generator=generator) * 2 - 1) * radius
    perturbed = explain(x[None] + noise, torch.full((samples,), target))
    norm = attribution.norm().clamp_min(1e-30)
    return float(((perturbed - attribution[None]).flatten(1).norm(dim=1) / norm).max())


def random_logit(explain: Explainer, x: Tensor, target: int, attribution: Tensor, classes: int,
                 generator: torch.Generator) -> float:
    """Pearson similarity between the explanation of the target and of a random other class (lower is better)."""
    other = int(torch.randint(classes - 1, (1,), generator=generator))
    other += other >= target
    return _pearson(explain(x[None], torch.tensor([other]))[0].flatten(), attribution.flatten())
