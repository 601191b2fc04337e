"""Perturbation-based faithfulness on feature groups (SPEC §4): Infidelity with optimal scaling,
faithfulness correlation over groups, faithfulness estimate, monotonicity correlation, and
deletion/insertion curves."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from spmm.metrics.base import Metric, MetricResult, check_batch, check_counts, group_perturbation_logits, target_logits
from spmm.metrics.groups import Baseline, FeatureGroups, UniformNoise
from spmm.metrics.statistics import pearson, spearman
from spmm.targets import output_logits

Model = Callable[[Tensor], Any]


def _group_scores(attributions: Tensor, groups: FeatureGroups, use_abs: bool) -> Tensor:
    """Attribution per group (B, G): sum of |attr| (``use_abs``) or of attr."""
    return groups.sum(attributions.abs() if use_abs else attributions).double()


def _step_of_group(order: Tensor, groups_per_step: int) -> tuple[Tensor, int]:
    """Step (B, G) at which each group is taken when groups are taken in ``order`` (B, G),
    ``groups_per_step`` at a time (position p of the order goes at step p // n), and the
    number of steps K."""
    batch, count = order.shape
    position = torch.empty_like(order).scatter_(1, order, torch.arange(count, device=order.device).expand(batch, count))
    return position // groups_per_step, -(-count // groups_per_step)


def _step_masks(step_of_group: Tensor, steps: int, cumulative: bool) -> Tensor:
    """Masks (B, K, G) from steps (B, G): step k selects the groups taken at step k, or at
    any step ≤ k when ``cumulative``."""
    k = torch.arange(steps, device=step_of_group.device).view(1, -1, 1)
    chosen = step_of_group.unsqueeze(1)
    return chosen <= k if cumulative else chosen == k


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
        self.draws, self.low, self.high, self.seed, self.chunk = draws, low, high, seed, chunk

    def __call__(
        self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        groups: FeatureGroups | Sequence[FeatureGroups],
    ) -> MetricResult:
        targets = check_batch(inputs, targets, attributions)
        partitions = [groups] if isinstance(groups, FeatureGroups) else list(groups)
        generator = self._generator(inputs.device)
        original = target_logits(model, inputs, targets, self._chunk(inputs.device))
        a_all, b_all = [], []
        baseline = UniformNoise(self.low, self.high)
        for _ in range(self.draws):
            for partition in partitions:
                masks = torch.eye(partition.count, dtype=torch.bool, device=inputs.device).expand(inputs.shape[0], -1, -1)
                logits, dots = group_perturbation_logits(
                    model, inputs, targets, partition, masks, baseline, generator, self._chunk(inputs.device), attributions
                )
                a_all.append(dots.double())
                b_all.append((original.unsqueeze(1) - logits).double())
        a, b = torch.cat(a_all, 1), torch.cat(b_all, 1)
        beta = (a * b).sum(1) / (a * a).sum(1).clamp_min(1e-30)
        scores = ((beta.unsqueeze(1) * a - b) ** 2).mean(1)
        return MetricResult(scores, self.settings(), {"beta": beta})


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
        self.baseline, self.abs, self.seed, self.chunk = baseline, abs, seed, chunk

    def __call__(self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *, groups: FeatureGroups) -> MetricResult:
        targets = check_batch(inputs, targets, attributions)
        original = target_logits(model, inputs, targets, self._chunk(inputs.device))
        masks = torch.eye(groups.count, dtype=torch.bool, device=inputs.device).expand(inputs.shape[0], -1, -1)
        logits, _ = group_perturbation_logits(
            model, inputs, targets, groups, masks, self.baseline, self._generator(inputs.device), self._chunk(inputs.device)
        )
        drops = original.unsqueeze(1) - logits
        return MetricResult(pearson(_group_scores(attributions, groups, self.abs), drops), self.settings())


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
        self.groups_per_step, self.baseline, self.abs, self.seed, self.chunk = groups_per_step, baseline, abs, seed, chunk

    def __call__(self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *, groups: FeatureGroups) -> MetricResult:
        targets = check_batch(inputs, targets, attributions)
        scores = _group_scores(attributions, groups, self.abs)
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices
        step_of_group, steps = _step_of_group(order, self.groups_per_step)
        masks = _step_masks(step_of_group, steps, cumulative=False)
        original = target_logits(model, inputs, targets, self._chunk(inputs.device))
        logits, _ = group_perturbation_logits(
            model, inputs, targets, groups, masks, self.baseline, self._generator(inputs.device), self._chunk(inputs.device)
        )
        return MetricResult(pearson(_block_sums(scores, step_of_group, steps), original.unsqueeze(1) - logits), self.settings())


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
        self.groups_per_step, self.samples, self.baseline, self.abs = groups_per_step, samples, baseline, abs
        self.eps, self.probability, self.seed, self.chunk = eps, probability, seed, chunk

    def __call__(self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *, groups: FeatureGroups) -> MetricResult:
        targets = check_batch(inputs, targets, attributions)
        scores = _group_scores(attributions, groups, self.abs)
        order = torch.sort(scores, dim=1, stable=True).indices
        step_of_group, steps = _step_of_group(order, self.groups_per_step)
        masks = _step_masks(step_of_group, steps, cumulative=False)
        scored = probability_model(model) if self.probability else model
        original = target_logits(scored, inputs, targets, self._chunk(inputs.device)).double()
        logits, _ = group_perturbation_logits(
            scored, inputs, targets, groups, masks, self.baseline, self._generator(inputs.device), self._chunk(inputs.device),
            repeats=self.samples,
        )
        squared = ((logits.double() - original.unsqueeze(1)) ** 2).view(-1, steps, self.samples).mean(-1)
        inverse = torch.where(original.abs() >= self.eps, 1.0 / original.abs().clamp_min(1e-300), torch.ones_like(original))
        variances = squared * inverse.pow(2).unsqueeze(1)
        return MetricResult(spearman(_block_sums(scores, step_of_group, steps), variances), self.settings())


class _PerturbationCurve(Metric):
    """Shared code of deletion and insertion: cumulative steps in attribution order, AUC on [0, 1]."""

    category = "faithfulness"
    deletes: bool

    def __init__(self, groups_per_step: int = 3136, baseline: Baseline = 0.0, probability: bool = True, seed: int = 0, chunk: int | None = None) -> None:
        check_counts(groups_per_step=groups_per_step, chunk=chunk)
        self.groups_per_step, self.baseline, self.probability, self.seed, self.chunk = (
            groups_per_step, baseline, probability, seed, chunk,
        )

    def __call__(self, model: Model, inputs: Tensor, targets: Tensor, attributions: Tensor, *, groups: FeatureGroups) -> MetricResult:
        targets = check_batch(inputs, targets, attributions)
        order = torch.sort(groups.sum(attributions), dim=1, descending=True, stable=True).indices
        removed = _step_masks(*_step_of_group(order, self.groups_per_step), cumulative=True)
        nothing = torch.zeros_like(removed[:, :1])
        removed = torch.cat([nothing, removed], 1)  # step 0: the untouched input
        masks = removed if self.deletes else ~removed
        curve = self._curve(model, inputs, targets, groups, masks)
        fraction = torch.linspace(0, 1, curve.shape[1], dtype=torch.float64, device=curve.device)
        return MetricResult(torch.trapezoid(curve, fraction, dim=1), self.settings(), {"curve": curve})

    def _curve(self, model: Model, inputs: Tensor, targets: Tensor, groups: FeatureGroups, masks: Tensor) -> Tensor:
        scored = probability_model(model) if self.probability else model
        values, _ = group_perturbation_logits(
            scored, inputs, targets, groups, masks, self.baseline, self._generator(inputs.device), self._chunk(inputs.device)
        )
        return values.double()


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
