"""Perturbation-based faithfulness on feature groups (SPEC §4): Infidelity with optimal scaling,
faithfulness correlation over groups, faithfulness estimate, monotonicity correlation,
deletion/insertion curves, and ERASER's comprehensiveness and sufficiency.

Empty groups (groups without elements in a sample, see :class:`FeatureGroups`) are left out:
they are ordered after every non-empty group, perturbations and steps made of empty groups
only are masked out of correlations, means and areas, and top-k fractions count the non-empty
groups only.  Random draws come from one stream per sample (``sample_ids``, :mod:`spmm.metrics.draws`)."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Hashable, Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.metrics.base import (
    Metric, MetricResult, check_counts, checked, group_perturbation_logits, nan_unless, target_logits,
)
from spmm.metrics.groups import Baseline, FeatureGroups, UniformNoise, check_baseline
from spmm.metrics.statistics import pearson, spearman
from spmm.targets import output_logits

Model = Callable[[Tensor], Any]


def _group_scores(attributions: Tensor, groups: FeatureGroups, use_abs: bool) -> Tensor:
    """Attribution per group (B, G): sum of |attr| (``use_abs``) or of attr."""
    return groups.sum(attributions.abs() if use_abs else attributions).double()


def _order(scores: Tensor, present: Tensor, descending: bool) -> Tensor:
    """Group order (B, G) by score (B, G), stable, with the empty groups (``present`` False) last."""
    key = scores.masked_fill(~present, float("-inf") if descending else float("inf"))
    return torch.sort(key, dim=1, descending=descending, stable=True).indices


def _positions(order: Tensor) -> Tensor:
    """Position (B, G) of each group in ``order`` (B, G)."""
    batch, count = order.shape
    return torch.empty_like(order).scatter_(1, order, torch.arange(count, device=order.device).expand(batch, count))


def _step_of_group(order: Tensor, groups_per_step: int) -> tuple[Tensor, int]:
    """Step (B, G) at which each group is taken when groups are taken in ``order`` (B, G),
    ``groups_per_step`` at a time (position p of the order goes at step p // n), and the
    number of steps K."""
    return _positions(order) // groups_per_step, -(-order.shape[1] // groups_per_step)


def _step_masks(step_of_group: Tensor, steps: int, cumulative: bool) -> Tensor:
    """Masks (B, K, G) from steps (B, G): step k selects the groups taken at step k, or at
    any step ≤ k when ``cumulative``."""
    k = torch.arange(steps, device=step_of_group.device).view(1, -1, 1)
    chosen = step_of_group.unsqueeze(1)
    return chosen <= k if cumulative else chosen == k


def _real_steps(present: Tensor, groups_per_step: int, steps: int) -> Tensor:
    """(B, K) bool: the steps that take at least one non-empty group (empty groups come last)."""
    needed = -(-present.sum(1, keepdim=True) // groups_per_step)
    return torch.arange(steps, device=present.device).unsqueeze(0) < needed


def _block_sums(scores: Tensor, step_of_group: Tensor, steps: int) -> Tensor:
    """Sum of group scores (B, G) per step (B, K), without materialising the step masks."""
    return scores.new_zeros(scores.shape[0], steps).scatter_add_(1, step_of_group, scores)


class Infidelity(Metric):
    """Infidelity with optimal scaling (SPEC §4; Yeh et al. 2019 with the scale of the
    attribution factored out).

    Every group of every partition is replaced, one at a time, by U(low, high) noise,
    ``draws`` times.  With a = ⟨attr, x − x̃⟩ and b = f(x)_y − f(x̃)_y over those K
    perturbations, β* = Σab / Σa² and the score is mean((β*·a − b)²).  Lower is better.
    Quantus's Infidelity perturbs patches cumulatively and does not rescale; see tests.
    """

    name = "infidelity"
    higher_is_better = False
    category = "faithfulness"

    def __init__(self, draws: int = 5, low: float = -1.0, high: float = 1.0, seed: int = 0, chunk: int | None = None) -> None:
        check_counts(draws=draws, chunk=chunk)
        UniformNoise(low, high)  # refuses low >= high and non-finite bounds
        self.draws, self.low, self.high, self.seed, self.chunk = draws, low, high, seed, chunk

    def __call__(
        self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups | Sequence[FeatureGroups], sample_ids: Sequence[Hashable] | None = None,
    ) -> MetricResult:
        """Perturbations of empty groups are left out of β* and of the mean."""
        targets, attributions, finite = checked(inputs, targets, attributions)
        partitions = [groups] if isinstance(groups, FeatureGroups) else list(groups)
        streams = self._sample_streams(inputs, sample_ids)  # one stream per sample across all draws
        original = target_logits(model, inputs, targets, self._chunk(inputs.device))
        a_all, b_all, real = [], [], []
        baseline = UniformNoise(self.low, self.high)
        for _ in range(self.draws):
            for partition in partitions:
                masks = torch.eye(partition.count, dtype=torch.bool, device=inputs.device).expand(inputs.shape[0], -1, -1)
                logits, dots = group_perturbation_logits(
                    model, inputs, targets, partition, masks, baseline, streams, self._chunk(inputs.device), attributions
                )
                a_all.append(dots.double())
                b_all.append((original.unsqueeze(1) - logits).double())
                real.append(partition.present(inputs.shape[0], inputs.device))
        a, b, weight = torch.cat(a_all, 1), torch.cat(b_all, 1), torch.cat(real, 1).double()
        a, b = a * weight, b * weight
        beta = (a * b).sum(1) / (a * a).sum(1).clamp_min(1e-30)
        scores = ((beta.unsqueeze(1) * a - b) ** 2).sum(1) / weight.sum(1)
        return MetricResult(nan_unless(scores, finite), self.settings(), {"beta": beta})


class FaithfulnessCorrelation(Metric):
    """Faithfulness correlation over groups (SPEC §4: every 56×56 patch set to 0).

    Each group is replaced by the baseline on its own; the score is the Pearson
    correlation over groups between the group's attribution (Σ|attr| when ``abs``) and the
    drop of the target logit.  Higher is better.  Quantus draws random pixel subsets instead.
    """

    name = "faithfulness_correlation"
    higher_is_better = True
    category = "faithfulness"

    def __init__(self, baseline: Baseline = 0.0, abs: bool = True, seed: int = 0, chunk: int | None = None) -> None:
        check_counts(chunk=chunk)
        self.baseline, self.abs, self.seed, self.chunk = check_baseline(baseline), abs, seed, chunk

    def __call__(
        self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups, sample_ids: Sequence[Hashable] | None = None,
    ) -> MetricResult:
        """The correlation runs over the non-empty groups of each sample."""
        targets, attributions, finite = checked(inputs, targets, attributions)
        original = target_logits(model, inputs, targets, self._chunk(inputs.device))
        masks = torch.eye(groups.count, dtype=torch.bool, device=inputs.device).expand(inputs.shape[0], -1, -1)
        logits, _ = self._perturbation_logits(model, inputs, targets, groups, masks, sample_ids)
        drops = original.unsqueeze(1) - logits
        present = groups.present(inputs.shape[0], inputs.device)
        scores = pearson(_group_scores(attributions, groups, self.abs), drops, present)
        return MetricResult(nan_unless(scores, finite), self.settings())


class FaithfulnessEstimate(Metric):
    """Faithfulness estimate (Alvarez-Melis & Jaakkola 2018; Quantus FaithfulnessEstimate).

    Groups are sorted by attribution, descending; step k replaces only the k-th block of
    ``groups_per_step`` groups by the baseline.  Score = Pearson(attribution per block,
    logit drop per block).  Higher is better.
    """

    name = "faithfulness_estimate"
    higher_is_better = True
    category = "faithfulness"

    def __init__(self, groups_per_step: int = 3136, baseline: Baseline = 0.0, abs: bool = True, seed: int = 0, chunk: int | None = None) -> None:
        check_counts(groups_per_step=groups_per_step, chunk=chunk)
        self.groups_per_step, self.baseline, self.abs, self.seed, self.chunk = groups_per_step, check_baseline(baseline), abs, seed, chunk

    def __call__(
        self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups, sample_ids: Sequence[Hashable] | None = None,
    ) -> MetricResult:
        """Blocks made of empty groups only are left out of the correlation."""
        targets, attributions, finite = checked(inputs, targets, attributions)
        scores = _group_scores(attributions, groups, self.abs)
        present = groups.present(inputs.shape[0], inputs.device)
        step_of_group, steps = _step_of_group(_order(scores, present, descending=True), self.groups_per_step)
        masks = _step_masks(step_of_group, steps, cumulative=False)
        original = target_logits(model, inputs, targets, self._chunk(inputs.device))
        logits, _ = self._perturbation_logits(model, inputs, targets, groups, masks, sample_ids)
        correlation = pearson(
            _block_sums(scores, step_of_group, steps), original.unsqueeze(1) - logits,
            _real_steps(present, self.groups_per_step, steps),
        )
        return MetricResult(nan_unless(correlation, finite), self.settings())


class MonotonicityCorrelation(Metric):
    """Monotonicity correlation (Nguyen & Martínez 2020; Quantus MonotonicityCorrelation).

    Groups sorted by attribution, ascending; step k replaces the k-th block by the
    baseline ``samples`` times (fresh noise each time for ``"uniform"``); v_k = mean of
    (f(x̃)_y − f(x)_y)² / f(x)_y² (no division when |f(x)_y| < eps).  Score =
    Spearman(attribution per block, v).  f is the softmax probability when ``probability``
    (Quantus' default for this metric), else the logit.  Higher is better.
    """

    name = "monotonicity_correlation"
    higher_is_better = True
    category = "faithfulness"

    def __init__(
        self, groups_per_step: int = 3136, samples: int = 10, baseline: Baseline = "uniform", abs: bool = True,
        eps: float = 1e-12, probability: bool = True, seed: int = 0, chunk: int | None = None,
    ) -> None:
        check_counts(groups_per_step=groups_per_step, samples=samples, chunk=chunk)
        self.groups_per_step, self.samples, self.baseline, self.abs = groups_per_step, samples, check_baseline(baseline), abs
        self.eps, self.probability, self.seed, self.chunk = eps, probability, seed, chunk

    def __call__(
        self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups, sample_ids: Sequence[Hashable] | None = None,
    ) -> MetricResult:
        """Empty groups are ordered last; blocks made of them only are left out of the correlation."""
        targets, attributions, finite = checked(inputs, targets, attributions)
        scores = _group_scores(attributions, groups, self.abs)
        present = groups.present(inputs.shape[0], inputs.device)
        step_of_group, steps = _step_of_group(_order(scores, present, descending=False), self.groups_per_step)
        masks = _step_masks(step_of_group, steps, cumulative=False)
        scored = probability_model(model) if self.probability else model
        original = target_logits(scored, inputs, targets, self._chunk(inputs.device)).double()
        logits, _ = self._perturbation_logits(scored, inputs, targets, groups, masks, sample_ids, repeats=self.samples)
        squared = ((logits.double() - original.unsqueeze(1)) ** 2).view(-1, steps, self.samples).mean(-1)
        inverse = torch.where(original.abs() >= self.eps, 1.0 / original.abs().clamp_min(1e-300), torch.ones_like(original))
        variances = squared * inverse.pow(2).unsqueeze(1)
        correlation = spearman(
            _block_sums(scores, step_of_group, steps), variances, _real_steps(present, self.groups_per_step, steps)
        )
        return MetricResult(nan_unless(correlation, finite), self.settings())


class _PerturbationCurve(Metric):
    """Shared code of deletion and insertion: cumulative steps in attribution order (Σ attr per
    group, or Σ attr ⊙ input with ``times_input``: the signed token score of SPEC §5), AUC on [0, 1]."""

    category = "faithfulness"
    deletes: bool

    def __init__(self, groups_per_step: int = 3136, baseline: Baseline = 0.0, probability: bool = True, seed: int = 0,
                 chunk: int | None = None, times_input: bool = False) -> None:
        check_counts(groups_per_step=groups_per_step, chunk=chunk)
        self.groups_per_step, self.baseline, self.probability, self.seed, self.chunk = (
            groups_per_step, check_baseline(baseline), probability, seed, chunk,
        )
        self.times_input = times_input

    def __call__(
        self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups, sample_ids: Sequence[Hashable] | None = None,
    ) -> MetricResult:
        """A sample with n non-empty groups has K = ⌈n / groups_per_step⌉ steps on [0, 1]; its
        ``extras["curve"]`` is NaN after step K."""
        targets, attributions, finite = checked(inputs, targets, attributions)
        present = groups.present(inputs.shape[0], inputs.device)
        order = _order(groups.sum(attributions * inputs if self.times_input else attributions), present, descending=True)
        step_of_group, steps = _step_of_group(order, self.groups_per_step)
        removed = _step_masks(step_of_group, steps, cumulative=True)
        nothing = torch.zeros_like(removed[:, :1])
        removed = torch.cat([nothing, removed], 1)  # step 0: the untouched input
        masks = removed if self.deletes else ~removed
        scored = probability_model(model) if self.probability else model
        values, _ = self._perturbation_logits(scored, inputs, targets, groups, masks, sample_ids)
        real = _real_steps(present, self.groups_per_step, steps)
        used = real.sum(1, keepdim=True).double()  # K per sample
        curve = values.double().masked_fill(~torch.cat([torch.ones_like(real[:, :1]), real], 1), float("nan"))
        # trapezoid on [0, 1] with K intervals: end points weigh 1/(2K), inner points 1/K
        step = torch.arange(steps + 1, device=curve.device).unsqueeze(0)
        weight = torch.where((step == 0) | (step == used), 0.5, 1.0) / used
        area = (curve.nan_to_num(0.0) * weight.where(step <= used, 0.0)).sum(1)
        return MetricResult(nan_unless(area, finite), self.settings(), {"curve": curve})


def probability_model(model: Model) -> Model:
    """``model`` followed by a softmax over classes: (B, ...) -> (B, C) probabilities (float64)."""

    def softmax_model(x: Tensor) -> Tensor:
        return torch.softmax(output_logits(model(x)).double(), -1)

    return softmax_model


class DeletionAUC(_PerturbationCurve):
    """Deletion (Petsiuk et al. 2018): remove the most relevant groups first (replace by the
    baseline), area under the target-probability curve on [0, 1].  Lower is better."""

    name = "deletion_auc"
    higher_is_better = False
    deletes = True


class InsertionAUC(_PerturbationCurve):
    """Insertion (Petsiuk et al. 2018): start from the baseline and put back the most relevant
    groups first; area under the target-probability curve on [0, 1].  Higher is better."""

    name = "insertion_auc"
    higher_is_better = True
    deletes = False


class _TopFractions(Metric):
    """Shared code of comprehensiveness and sufficiency (DeYoung et al. 2020, ERASER).

    For each fraction f, the top k = min(n, max(1, ⌈f·n⌉)) of a sample's n non-empty groups by
    attribution (Σ attr, or Σ attr ⊙ input with ``times_input``: the signed token score of
    SPEC §5) are replaced by the baseline (comprehensiveness), or all its other groups are
    (sufficiency).  Score = mean over f of p(x)_y − p(x̃)_y, p the softmax probability of the
    target (``probability``) or its logit.  For text the baseline is the removal value, e.g. the
    [MASK]-token embedding as a tensor (D,); elements in no group (special tokens) always stay.
    """

    category = "faithfulness"
    removes_top: ClassVar[bool]

    def __init__(
        self, fractions: Sequence[float] = (0.1, 0.2, 0.5), baseline: Baseline = 0.0, times_input: bool = False,
        probability: bool = True, seed: int = 0, chunk: int | None = None,
    ) -> None:
        check_counts(chunk=chunk)
        if not fractions or not all(0 < f <= 1 for f in fractions):
            raise SpmmInputError(f"fractions must be a non-empty list of numbers in (0, 1], got {fractions!r}")
        self.fractions, self.baseline, self.times_input = list(fractions), check_baseline(baseline), times_input
        self.probability, self.seed, self.chunk = probability, seed, chunk

    def __call__(
        self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups, sample_ids: Sequence[Hashable] | None = None,
    ) -> MetricResult:
        targets, attributions, finite = checked(inputs, targets, attributions)
        scores = groups.sum(attributions * inputs if self.times_input else attributions).double()
        present = groups.present(inputs.shape[0], inputs.device)
        position = _positions(_order(scores, present, descending=True))
        count = present.sum(1, keepdim=True).double()
        fractions = torch.tensor(self.fractions, dtype=torch.float64, device=inputs.device)
        top_k = torch.minimum(count, torch.ceil(fractions * count).clamp_min(1))  # (B, F)
        top = position.unsqueeze(1) < top_k.unsqueeze(2)  # (B, F, G)
        masks = top if self.removes_top else present.unsqueeze(1) & ~top
        scored = probability_model(model) if self.probability else model
        original = target_logits(scored, inputs, targets, self._chunk(inputs.device)).double()
        values, _ = self._perturbation_logits(scored, inputs, targets, groups, masks, sample_ids)
        drops = original.unsqueeze(1) - values.double()
        return MetricResult(nan_unless(drops.mean(1), finite), self.settings(), {"drops": drops})


class Comprehensiveness(_TopFractions):
    """Comprehensiveness: the target's drop when the top groups are removed.  Higher is better."""

    name = "comprehensiveness"
    higher_is_better = True
    removes_top = True


class Sufficiency(_TopFractions):
    """Sufficiency: the target's drop when only the top groups are kept.  Lower is better."""

    name = "sufficiency"
    higher_is_better = False
    removes_top = False
