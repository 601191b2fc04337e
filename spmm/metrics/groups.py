"""Feature groups: the only view of an input that metrics have.

A modality partitions one sample into ``count`` groups (image patches, tokens,
time-frequency patches) by giving every input element a group label.  Metrics then
sum attributions per group, and perturb whole groups by replacing them with a
baseline.  Modalities build their own partitions on :class:`FeatureGroups`; the two
generic ones here cover square patches over the trailing two dims and 1-d segments.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Sequence, Union

import torch
from torch import Tensor

from spmm.errors import SpmmInputError


@dataclasses.dataclass(frozen=True)
class UniformNoise:
    """Baseline drawn afresh for every element and perturbation: U(low, high), finite low < high."""

    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not (_finite_number(self.low) and _finite_number(self.high) and self.low < self.high):
            raise SpmmInputError(f"uniform noise needs finite low < high, got low={self.low!r}, high={self.high!r}")


def _finite_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


Baseline = Union[float, str, UniformNoise, Tensor]
"""What a removed group is replaced by: a constant, :class:`UniformNoise` (``"uniform"`` is
U(−1, 1)) or a tensor shaped like the inputs (B, ...) or like one sample."""


@dataclasses.dataclass(frozen=True)
class FeatureGroups:
    """A partition of each sample's elements into at most ``count`` groups.

    labels: long tensor, values −1..count−1.  Shared by every sample (``per_sample`` False):
        broadcastable to one sample's shape (e.g. (1, H, W) for images (C, H, W): all
        channels of a pixel share its group).  One partition per sample (``per_sample``
        True): a leading batch dim, (B, ...) with (...) broadcastable to one sample's shape
        (e.g. (B, L, 1) word labels of (B, L, D) token embeddings).
    count: number of groups G (for per-sample partitions the largest number of groups).
    per_sample: whether ``labels`` carry the leading batch dim.

    Label −1 puts an element in no group: it is never summed and never perturbed (special
    and padding tokens).  A group without elements in a sample is *empty* there
    (:meth:`present` is False); metrics leave empty groups out of correlations, rankings and
    means instead of treating them as features with zero attribution and zero effect.
    """

    labels: Tensor
    count: int
    per_sample: bool = False

    def __post_init__(self) -> None:
        if self.labels.dtype != torch.long:
            raise SpmmInputError(f"group labels must be a long tensor, got {self.labels.dtype}")
        if self.labels.numel() and (self.labels.min() < -1 or self.labels.max() >= self.count):
            raise SpmmInputError(f"group labels must lie in 0..{self.count - 1} (or −1 for no group)")
        if self.per_sample and self.labels.dim() < 1:
            raise SpmmInputError("per-sample group labels need a leading batch dim (B, ...)")

    def check(self, inputs: Tensor) -> None:
        """Raise :class:`SpmmInputError` unless the labels fit ``inputs`` (B, ...): broadcastable
        to one sample, after a leading dim of B for per-sample labels."""
        sample = inputs.shape[1:]
        labels = self.labels.shape
        if self.per_sample:
            if labels[0] != inputs.shape[0]:
                raise SpmmInputError(f"per-sample feature groups for {labels[0]} samples do not fit a batch of {inputs.shape[0]}")
            labels = labels[1:]
        try:
            shape = torch.broadcast_shapes(labels, sample)
        except RuntimeError:
            shape = None
        if shape != sample:
            raise SpmmInputError(
                f"feature groups of shape {tuple(self.labels.shape)} do not fit inputs of sample shape {tuple(sample)}"
            )

    def _labels(self, device: torch.device, rank: int) -> Tensor:
        """Labels (B or 1, *S) with S padded to ``rank`` sample dims and −1 mapped to the extra
        index G (a column that is dropped or never selected)."""
        labels = self.labels.to(device)
        labels = labels if self.per_sample else labels.unsqueeze(0)
        labels = labels.view(labels.shape[0], *([1] * (rank - labels.dim() + 1)), *labels.shape[1:])
        return labels.where(labels >= 0, self.count)

    def sum(self, values: Tensor) -> Tensor:
        """Per-group sums: values (B, ...) -> (B, G); 0 for empty groups."""
        self.check(values)
        batch = values.shape[0]
        labels = self._labels(values.device, values.dim() - 1)
        labels = labels.expand(labels.shape[0], *values.shape[1:]).reshape(labels.shape[0], -1)
        out = values.new_zeros(batch, self.count + 1)
        if self.per_sample:
            out.scatter_add_(1, labels, values.reshape(batch, -1))
        else:
            out.index_add_(1, labels[0], values.reshape(batch, -1))
        return out[:, : self.count]

    def present(self, batch: int, device: torch.device | str = "cpu") -> Tensor:
        """(batch, G) bool: whether each group has at least one element in each sample."""
        labels = self._labels(torch.device(device), self.labels.dim() - int(self.per_sample)).flatten(1)
        found = torch.zeros(labels.shape[0], self.count + 1, dtype=torch.bool, device=labels.device)
        found.scatter_(1, labels, True)
        return found[:, : self.count].expand(batch, -1)

    def element_mask(self, group_mask: Tensor, sample_shape: Sequence[int]) -> Tensor:
        """Group selection (B, K, G) bool -> element selection (B, K, *S) bool, S the labels' shape
        padded to the sample's rank: broadcastable to (B, K, *sample_shape) without copying
        along the dims the labels share (e.g. colour channels).  Elements in no group are never selected."""
        labels = self._labels(group_mask.device, len(sample_shape))
        padded = torch.cat([group_mask, group_mask.new_zeros(*group_mask.shape[:-1], 1)], -1)
        if not self.per_sample:
            return padded[..., labels[0]]
        batch, perturbations = group_mask.shape[:2]
        index = labels.reshape(batch, 1, -1).expand(batch, perturbations, -1)
        return padded.gather(2, index).view(batch, perturbations, *labels.shape[1:])

    def replace(self, inputs: Tensor, group_mask: Tensor, baseline: Tensor) -> Tensor:
        """Replace the selected groups by the baseline.

        inputs: (B, ...); group_mask: (B, K, G) bool (K perturbations per sample);
        baseline: broadcastable to (B, K, ...).  Returns (B, K, ...).
        """
        self.check(inputs)
        mask = self.element_mask(group_mask, inputs.shape[1:])
        return torch.where(mask, baseline, inputs.unsqueeze(1))


def square_patches(shape: Sequence[int], size: int) -> FeatureGroups:
    """Square ``size``×``size`` patches over the trailing two dims of a sample of ``shape``
    (e.g. (C, H, W) images or (1, F, T) spectrograms), shared by all leading dims.
    Edge patches are smaller when ``size`` does not divide H or W."""
    if len(shape) < 2:
        raise SpmmInputError(f"square patches need a sample with at least 2 dims, got shape {tuple(shape)}")
    if size < 1:
        raise SpmmInputError(f"patch size must be ≥ 1, got {size}")
    height, width = shape[-2], shape[-1]
    rows = torch.arange(height) // size
    cols = torch.arange(width) // size
    per_row = -(-width // size)
    labels = rows[:, None] * per_row + cols[None, :]
    count = -(-height // size) * per_row
    return FeatureGroups(labels.view(*([1] * (len(shape) - 2)), height, width), count)


def segments(shape: Sequence[int], size: int = 1, dim: int = 0) -> FeatureGroups:
    """Consecutive segments of ``size`` positions along ``dim`` of a sample of ``shape``
    (e.g. dim 0 of (L, D) token embeddings: one group per token for ``size`` 1)."""
    if size < 1:
        raise SpmmInputError(f"segment size must be ≥ 1, got {size}")
    length = shape[dim]
    view = [1] * len(shape)
    view[dim] = length
    return FeatureGroups((torch.arange(length) // size).view(view), -(-length // size))


def check_baseline(baseline: Baseline) -> Baseline:
    """``baseline`` if it is a finite number, ``"uniform"``, :class:`UniformNoise` or a finite
    floating-point tensor; otherwise :class:`SpmmInputError` naming what is accepted."""
    if isinstance(baseline, (str, UniformNoise)):
        noise_of(baseline)
        return baseline
    if isinstance(baseline, Tensor):
        if baseline.is_floating_point() and bool(torch.isfinite(baseline).all()):
            return baseline
        problem = f"a {baseline.dtype} tensor" + (" with NaN or inf values" if baseline.is_floating_point() else "")
    elif _finite_number(baseline):
        return baseline
    else:
        problem = repr(baseline)
    raise SpmmInputError(
        f"baseline must be a finite number, 'uniform', UniformNoise(low, high) or a finite floating-point tensor, got {problem}"
    )


def noise_of(baseline: Baseline) -> UniformNoise | None:
    """The noise a baseline draws afresh for every perturbation (``"uniform"`` is U(−1, 1)),
    or None for a constant or tensor baseline."""
    if isinstance(baseline, str):
        if baseline != "uniform":
            raise SpmmInputError(f"unknown baseline {baseline!r}; use a number, 'uniform', UniformNoise or a tensor")
        return UniformNoise()
    return baseline if isinstance(baseline, UniformNoise) else None


def baseline_values(baseline: Baseline, like: Tensor) -> Tensor:
    """A constant or tensor baseline at the shape of perturbed inputs ``like`` (B, K, ...).

    A number gives a constant; a tensor shaped like the inputs (B, ...), or like one sample, is
    broadcast over the K perturbations.  Noise baselines are drawn per sample instead
    (:mod:`spmm.metrics.draws`).
    """
    if noise_of(baseline) is not None:
        raise SpmmInputError("noise baselines are drawn per sample, not materialised here")
    if isinstance(baseline, Tensor):
        value = baseline.to(like)
        return (value.unsqueeze(1) if value.dim() == like.dim() - 1 else value).expand(like.shape)
    return torch.full((), float(baseline), dtype=like.dtype, device=like.device).expand(like.shape)
