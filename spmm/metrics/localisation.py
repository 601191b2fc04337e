"""Localisation: the share of positive relevance on the target's groups — Focus on image and
audio mosaics (Arias-Duart et al. 2022) and the pointing game on text segment mosaics."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.metrics.base import Metric, MetricResult, checked, nan_unless
from spmm.metrics.groups import FeatureGroups


class Focus(Metric):
    """Share of positive relevance that falls in the target's groups.

    groups: the mosaic's parts (2×2 image quadrants, audio time slots, text segments or their
    words; per-sample groups allowed); target_groups: (B, G) bool, the parts holding the
    target.  Relevance is attr ⊙ input (``times_input``, as in SPEC §4) or attr, summed over
    the sample dims ``sum_dims`` (none for images; the embedding dim −1 for text, which makes
    it the signed token score ⟨attr, embedding⟩ of SPEC §5); only its positive part counts.
    Score = positive relevance in the target groups / (all positive relevance + eps), 0 for
    a map without positive relevance.  Higher is better.
    """

    name = "focus"
    higher_is_better = True
    category = "localisation"

    def __init__(self, times_input: bool = True, sum_dims: Sequence[int] = (), eps: float = 1e-9) -> None:
        self.times_input, self.sum_dims, self.eps = times_input, list(sum_dims), eps

    def __call__(
        self, model: Callable[[Tensor], Any] | None, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups, target_groups: Tensor,
    ) -> MetricResult:
        _, attributions, finite = checked(inputs, targets, attributions)
        if target_groups.shape != (inputs.shape[0], groups.count):
            raise SpmmInputError(
                f"target_groups must have shape ({inputs.shape[0]}, {groups.count}), got {tuple(target_groups.shape)}"
            )
        relevance = attributions * inputs if self.times_input else attributions
        dims = [d % inputs.dim() for d in self.sum_dims]
        if 0 in dims:
            raise SpmmInputError("sum_dims name sample dims, not the batch dim")
        if dims:
            relevance = relevance.sum(dims, keepdim=True)
        per_group = groups.sum(relevance.clamp_min(0)).double()
        inside = (per_group * target_groups.to(per_group.device).double()).sum(1)
        return MetricResult(nan_unless(inside / (per_group.sum(1) + self.eps), finite), self.settings())


class PointingGame(Focus):
    """Focus with the text defaults: relevance per token is ⟨attr, embedding⟩ (attr ⊙ input
    summed over the embedding dim, the last one), then its positive part.  inputs: (B, L, D)
    token embeddings; groups: e.g. per-sample word groups with labels (B, L, 1)."""

    name = "pointing_game"

    def __init__(self, times_input: bool = True, sum_dims: Sequence[int] = (-1,), eps: float = 1e-9) -> None:
        super().__init__(times_input, sum_dims, eps)
