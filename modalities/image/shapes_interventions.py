"""Checking the ground truth of the synthetic-shapes benchmark by intervention (FunnyBirds-style).

A model's explanation can be judged against the evidence masks only if the model really uses the
class object: deleting it (rendering the same scenes with the background in its place) must change
the prediction almost always, and deleting the distractors must almost never change it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .shapes import make_shapes

OBJECT_CHANGE_MIN = 0.90
DISTRACTOR_CHANGE_MAX = 0.05
"""Thresholds (issue 17) for trusting a model's ground truth."""


@dataclasses.dataclass(frozen=True)
class InterventionResult:
    """accuracy: on the full scenes; object_change / distractor_change: share of scenes whose
    top-1 prediction changes when the class object / the distractors are deleted."""

    n: int
    seed: int
    accuracy: float
    object_change: float
    distractor_change: float

    @property
    def trusted(self) -> bool:
        return self.object_change >= OBJECT_CHANGE_MIN and self.distractor_change <= DISTRACTOR_CHANGE_MAX


@torch.no_grad()
def predict_shapes(model: Callable[[Tensor], Tensor], images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Top-1 classes (N,) of ``images`` (N, 3, H, W) in [0, 1], fed to ``model`` in [−1, 1]."""
    parameters = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    device = parameters[0].device if parameters else torch.device("cpu")
    predictions = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start:start + batch_size]).to(device) * 2 - 1
        predictions.append(model(x).argmax(1).cpu().numpy())
    return np.concatenate(predictions) if predictions else np.empty(0, dtype=np.int64)


def check_interventions(model: Callable[[Tensor], Tensor], n: int, seed: int, size: int = 96,
                        batch_size: int = 256) -> InterventionResult:
    """Accuracy and prediction-change rates of ``model`` (eval mode, [−1, 1] input) on
    ``make_shapes(n, seed, size)`` and its renders without the class object / the distractors."""
    full = make_shapes(n, seed, size)
    predicted = predict_shapes(model, full.images, batch_size)
    without_object = predict_shapes(model, make_shapes(n, seed, size, drop="object").images, batch_size)
    without_distractors = predict_shapes(model, make_shapes(n, seed, size, drop="distractors").images, batch_size)
    return InterventionResult(
        n=n, seed=seed,
        accuracy=float((predicted == full.labels).mean()),
        object_change=float((without_object != predicted).mean()),
        distractor_change=float((without_distractors != predicted).mean()),
    )
