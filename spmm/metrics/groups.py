"""Feature groups: the only view of an input that metrics have.

A modality partitions one sample into ``count`` groups (image patches, tokens,
time-frequency patches) by giving every input element a group label.  Metrics then
sum attributions per group, and perturb whole groups by replacing them with a
baseline.  Modalities build their own partitions on :class:`FeatureGroups`; the two
generic ones here cover square patches over the trailing two dims and 1-d segments.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import torch
from torch import Tensor

from spmm.errors import SpmmInputError



@dataclasses.dataclass(frozen=True)
class UniformNoise:
    """Baseline drawn afresh for every element and perturbation: U(low, high)."""

    low: float = -1.0
    high: float = 1.0


Baseline = Union[float, str, UniformNoise, Tensor]
"""What a removed group is replaced by: a constant, :class:`UniformNoise` (``"uniform"`` is
U(−1, 1)) or a tensor shaped like the inputs (B, ...) or like one sample."""


@dataclasses.dataclass(frozen=True)
class FeatureGroups:
    """A partition of one sample's elements into ``count`` groups.

    labels: long tensor broadcastable to one sample's shape (e.g. (1, H, W) for
        images (C, H, W): all channels of a pixel share its group), values 0..count−1.
    count: number of groups G.
    """

    labels: Tensor
    count: int

    def __post_init__(self) -> None:
        if self.labels.dtype != torch.long:
            raise SpmmInputError(f"group labels must be a long tensor, got {self.labels.dtype}")
        if self.labels.numel() and (self.labels.min() < 0 or self.labels.max() >= self.count):
            raise SpmmInputError(f"group labels must lie in 0..{self.count - 1}")

    def check(self, inputs: Tensor) -> None:
        """Raise :class:`SpmmInputError` unless the labels broadcast to one sample of ``inputs`` (B, ...)."""
        sample = inputs.shape[1:]
        try:
            shape = torch.broadcast_shapes(self.labels.shape, sample)
        except RuntimeError:
            shape = None
        if shape != sample:
            raise SpmmInputError(
                f"feature groups of shape {tuple(self.labels.shape)} do not fit inputs of sample shape {tuple(sample)}"
            )

    def _flat_labels(self, sample_shape: torch.Size, device: torch.device) -> Tensor:
        return self.labels.to(device).expand(sample_shape).reshape(-1)

    def sum(self, values: Tensor) -> Tensor:
        """Per-group sums: values (B, ...) -> (B, G)."""
        self.check(values)
        labels = self._flat_labels(values.shape[1:], values.device)
        out = values.new_zeros(values.shape[0], self.count)
        return out.index_add_(1, labels, values.reshape(values.shape[0], -1))

    def element_mask(self, group_mask: Tensor, sample_shape: Sequence[int]) -> Tensor:
        """Group selection (..., G) bool -> element selection (..., *S) bool, S the labels' shape
        padded to the sample's rank: broadcastable to (..., *sample_shape) without copying
        along the dims the labels share (e.g. colour channels)."""
        labels = self.labels.to(group_mask.device)
        return group_mask[..., labels.view(*([1] * (len(sample_shape) - labels.dim())), *labels.shape)]

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


def is_random(baseline: Baseline) -> bool:
    """Whether ``baseline`` is noise drawn afresh for every perturbation."""
    return isinstance(baseline, (str, UniformNoise))


def baseline_values(baseline: Baseline, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Materialise a baseline of the shape of perturbed inputs ``like`` (B, K, ...).

    A number gives a constant; noise is drawn for every element with ``generator``; a tensor shaped like the inputs (B, ...), or like one sample, is broadcast
    over the K perturbations.
    """
    if isinstance(baseline, Tensor):
        value = baseline.to(like)
        return (value.unsqueeze(1) if value.dim() == like.dim() - 1 else value).expand(like.shape)
    if isinstance(baseline, str):
        if baseline != "uniform":
            raise SpmmInputError(f"unknown baseline {baseline!r}; use a number, 'uniform', UniformNoise or a tensor")
        baseline = UniformNoise()
    if isinstance(baseline, UniformNoise):
        noise = torch.rand(like.shape, generator=generator, device=generator.device if generator else "cpu")
        return (baseline.low + (baseline.high - baseline.low) * noise).to(like)
    return torch.full((), float(baseline), dtype=like.dtype, device=like.device).expand(like.shape)
