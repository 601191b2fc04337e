"""Time-frequency feature groups (patches, frame runs, band runs) and baselines.

Time-frequency (TF) tensors are (T, F) or (B, T, F): frames first, bins second,
as produced by the front-ends of :mod:`spmm.modalities.audio.frontends`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.metrics.groups import FeatureGroups

def _grid_groups(shape: tuple[int, int], frames: int, bins: int) -> Tensor:
    t_index = torch.arange(shape[0]) // frames
    f_index = torch.arange(shape[1]) // bins
    columns = (shape[1] + bins - 1) // bins
    return t_index[:, None] * columns + f_index[None, :]


def tf_patches(shape: tuple[int, int], frames: int, bins: int) -> Tensor:
    """Group ids (T, F) of rectangular patches of ``frames`` × ``bins`` (edge patches may be smaller)."""
    if frames < 1 or bins < 1:
        raise SpmmInputError(f"patch size must be positive, got {frames}×{bins}")
    return _grid_groups(shape, frames, bins)


def tf_frames(shape: tuple[int, int], frames: int = 1) -> Tensor:
    """Group ids (T, F): runs of ``frames`` whole frames (all bins)."""
    return tf_patches(shape, frames, shape[1])


def tf_bands(shape: tuple[int, int], bins: int = 1) -> Tensor:
    """Group ids (T, F): runs of ``bins`` whole bands (all frames)."""
    return tf_patches(shape, shape[0], bins)


def as_feature_groups(groups: Tensor) -> FeatureGroups:
    """Group ids (T, F) -> :class:`spmm.metrics.FeatureGroups` for the metrics."""
    return FeatureGroups(groups.long(), int(groups.max()) + 1)


def group_scores(attributions: Tensor, groups: Tensor) -> Tensor:
    """Sum of attributions per group: (B, T, F), (T, F) ids -> (B, G)."""
    count = int(groups.max()) + 1
    flat = attributions.flatten(1)
    index = groups.flatten().to(flat.device).expand_as(flat)
    return torch.zeros(flat.shape[0], count, dtype=flat.dtype, device=flat.device).scatter_add_(1, index, flat)


def silence_baseline(inputs: Tensor, front_end: torch.nn.Module, samples: int) -> Tensor:
    """The TF representation of digital silence, shaped like ``inputs`` (B, T, F)."""
    with torch.no_grad():
        silent = front_end(torch.zeros(1, samples, device=inputs.device))
    if silent.shape[1:] != inputs.shape[1:]:
        raise SpmmInputError(f"silence of {samples} samples gives {tuple(silent.shape[1:])}, inputs are "
                             f"{tuple(inputs.shape[1:])}")
    return silent.expand_as(inputs).clone()


def mean_spectrum_baseline(inputs: Tensor) -> Tensor:
    """Each clip's mean spectrum over time, repeated in every frame: (B, T, F)."""
    return inputs.mean(dim=1, keepdim=True).expand_as(inputs).clone()


def noise_floor_baseline(inputs: Tensor, quantile: float = 0.1) -> Tensor:
    """Each clip's per-bin ``quantile`` over time (a stationary noise-floor estimate): (B, T, F)."""
    return inputs.quantile(quantile, dim=1, keepdim=True).expand_as(inputs).clone()
