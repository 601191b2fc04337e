"""Localisation on mosaics: Focus (Arias-Duart et al. 2022)."""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.metrics.base import Metric, MetricResult, check_batch
from spmm.metrics.groups import FeatureGroups


class Focus(Metric):
    """Share of positive relevance that falls in the target's regions of a mosaic.

    groups: the mosaic's tiles (e.g. 2×2 quadrants); target_groups: (B, G) bool, the
    tiles holding the target class.  Relevance is attr ⊙ input (``times_input``, as in
    SPEC §4) or attr; only its positive part counts.  Higher is better.
    """

    name = "focus"
    higher_is_better = True
    category = "localisation"

    def __init__(self, times_input: bool = True, eps: float = 1e-9) -> None:
        self.times_input, self.eps = times_input, eps

    def __call__(
        self, model: Callable[[Tensor], Any] | None, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups, target_groups: Tensor,
    ) -> MetricResult:
        check_batch(inputs, targets, attributions)
        if target_groups.shape != (inputs.shape[0], groups.count):
            raise SpmmInputError(
                f"target_groups must have shape ({inputs.shape[0]}, {groups.count}), got {tuple(target_groups.shape)}"
            )
        relevance = (attributions * inputs if self.times_input else attributions).clamp_min(0)
        per_group = groups.sum(relevance).double()
        inside = (per_group * target_groups.to(per_group.device).double()).sum(1)
        return MetricResult(inside / (per_group.sum(1) + self.eps), self.settings())
