"""Ground-truth localisation: agreement of an attribution map with a per-sample mask of the
evidence (e.g. the class-determining object of a synthetic image).

Four scores, all higher-is-better, all computed on element relevance r (B, N): the attributions
reduced to the mask's elements (colour channels summed) as |attr| (``relevance="abs"``) or as
the positive part of attr (``"positive"``), optionally times the input.

- relevance mass accuracy (Arras et al. 2022, "CLEVR-XAI"): Σ_mask r / Σ r;
- relevance rank accuracy (ibid.): share of the K = |mask| highest-ranked elements that lie in
  the mask;
- mask AUROC: probability that a mask element outranks a non-mask element (ties count ½),
  the Mann–Whitney U statistic over K·(N − K);
- pointing hit (Zhang et al. 2016, without tolerance): whether the maximum lies in the mask.

Ties are broken at random *in expectation*: rank accuracy and the pointing hit count a tied
block by the share of its elements inside the mask, so a constant map scores the mask's share
of the elements on both, 0.5 on AUROC, and the mask's share on mass accuracy.  Spmm's
``pointing_game`` (:mod:`spmm.metrics.localisation`) is the share-of-relevance score on text
segments; ``pointing_hit`` is the classic hit on a mask.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.metrics.base import Metric, MetricResult, checked, nan_unless
from spmm.metrics.statistics import ranks

RELEVANCE = ("abs", "positive")


def mask_relevance(
    inputs: Tensor, attributions: Tensor, mask: Tensor, relevance: str = "abs", times_input: bool = False,
    require_evidence: bool = True,
) -> tuple[Tensor, Tensor]:
    """Element relevance (B, N) float64 and the flattened mask (B, N) bool.

    attributions, inputs: (B, *S); mask: (B, *M) bool with M equal to S or a suffix of it (e.g.
    (B, H, W) for images (B, C, H, W)): the leading sample dims not in M are summed over after
    taking |attr| or its positive part per element.  ``require_evidence``: an empty mask is an error.
    """
    if mask.dtype != torch.bool:
        raise SpmmInputError(f"the ground-truth mask must be a bool tensor, got {mask.dtype}")
    sample, kept = tuple(attributions.shape[1:]), tuple(mask.shape[1:])
    if mask.shape[0] != attributions.shape[0] or not kept or sample[len(sample) - len(kept):] != kept:
        raise SpmmInputError(
            f"a mask of shape {tuple(mask.shape)} does not fit attributions of shape {tuple(attributions.shape)}: "
            "it needs the batch dim and the trailing sample dims, e.g. (B, H, W) for (B, C, H, W)"
        )
    if relevance not in RELEVANCE:
        raise SpmmInputError(f"relevance must be one of {RELEVANCE}, got {relevance!r}")
    values = attributions * inputs if times_input else attributions
    values = values.abs() if relevance == "abs" else values.clamp_min(0)
    summed = list(range(1, 1 + len(sample) - len(kept)))
    if summed:
        values = values.sum(summed)
    mask = mask.to(values.device).flatten(1)
    empty = ~mask.any(1)
    if require_evidence and bool(empty.any()):
        raise SpmmInputError(
            f"the ground-truth mask of sample {int(empty.nonzero()[0])} is empty: these metrics need some evidence"
        )
    return values.flatten(1).double(), mask


def _tied_share(values: Tensor, mask: Tensor, threshold: Tensor, take: Tensor) -> Tensor:
    """Expected number of mask elements among the ``take`` (B,) highest elements when every
    element equal to ``threshold`` (B,) (the take-th largest) is picked at random: (B,)."""
    above = values > threshold[:, None]
    tied = values == threshold[:, None]
    inside_above = (above & mask).sum(1).double()
    left = take.double() - above.sum(1).double()
    tied_inside = (tied & mask).sum(1).double() / tied.sum(1).double()
    return inside_above + left * tied_inside


class _MaskMetric(Metric):
    """Settings and the shared call of the ground-truth metrics; subclasses give ``_score``."""

    higher_is_better = True
    category = "ground_truth"

    def __init__(self, relevance: str = "abs", times_input: bool = False) -> None:
        if relevance not in RELEVANCE:
            raise SpmmInputError(f"relevance must be one of {RELEVANCE}, got {relevance!r}")
        self.relevance, self.times_input = relevance, times_input

    def __call__(
        self, model: Callable[[Tensor], Any] | None, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        mask: Tensor,
    ) -> MetricResult:
        """mask: (B, *M) bool, the evidence of each sample (see :func:`mask_relevance`); the model is not used."""
        _, attributions, finite = checked(inputs, targets, attributions)
        values, flat = mask_relevance(inputs, attributions.detach(), mask, self.relevance, self.times_input)
        return MetricResult(nan_unless(self._score(values, flat), finite), self.settings())

    def _score(self, values: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError


class MassAccuracy(_MaskMetric):
    """Relevance mass accuracy: Σ_mask r / Σ r per sample, 0 for a map without relevance."""

    name = "mass_accuracy"

    def _score(self, values: Tensor, mask: Tensor) -> Tensor:
        total = values.sum(1)
        inside = (values * mask).sum(1)
        return torch.where(total > 0, inside / total.where(total > 0, 1.0), 0.0)


class RankAccuracy(_MaskMetric):
    """Relevance rank accuracy: share of the K = |mask| top-ranked elements inside the mask
    (tied elements at the K-th place counted by their share inside the mask)."""

    name = "rank_accuracy"

    def _score(self, values: Tensor, mask: Tensor) -> Tensor:
        take = mask.sum(1)
        threshold = values.sort(1, descending=True).values.gather(1, (take - 1)[:, None]).squeeze(1)
        return _tied_share(values, mask, threshold, take) / take.double()


class MaskAUROC(_MaskMetric):
    """Area under the ROC curve of the relevance as a detector of mask elements:
    (Σ ranks of mask elements − K(K+1)/2) / (K·(N − K)), average ranks for ties."""

    name = "mask_auroc"

    def _score(self, values: Tensor, mask: Tensor) -> Tensor:
        inside = mask.sum(1).double()
        outside = mask.shape[1] - inside
        if bool((outside == 0).any()):
            raise SpmmInputError("a ground-truth mask covers the whole sample: AUROC needs elements outside it")
        rank_sum = (ranks(values) * mask).sum(1)
        return (rank_sum - inside * (inside + 1) / 2) / (inside * outside)


class PointingHit(_MaskMetric):
    """Pointing game hit: 1 when the most relevant element lies in the mask (a tie for the
    maximum counts the share of the tied elements inside the mask)."""

    name = "pointing_hit"

    def _score(self, values: Tensor, mask: Tensor) -> Tensor:
        one = torch.ones(values.shape[0], dtype=torch.long, device=values.device)
        return _tied_share(values, mask, values.max(1).values, one)


class OtherMass(MassAccuracy):
    """Relevance mass on the other objects: Σ_other r / Σ r per sample, the share of relevance on
    ``other_mask`` (B, *M) bool — e.g. the objects a caption word does not name — which a faithful
    map keeps low (lower is better; an empty ``other_mask`` scores 0)."""

    name = "mass_other"
    higher_is_better = False

    def __call__(
        self, model: Callable[[Tensor], Any] | None, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        other_mask: Tensor,
    ) -> MetricResult:
        """other_mask: (B, *M) bool, the elements that are not the evidence (see :func:`mask_relevance`)."""
        _, attributions, finite = checked(inputs, targets, attributions)
        values, flat = mask_relevance(inputs, attributions.detach(), other_mask, self.relevance, self.times_input,
                                      require_evidence=False)
        return MetricResult(nan_unless(self._score(values, flat), finite), self.settings())
