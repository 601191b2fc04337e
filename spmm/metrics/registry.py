"""Metric names -> classes."""

from __future__ import annotations

from typing import Any

from spmm.metrics.base import Metric
from spmm.metrics.faithfulness import (
    DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Infidelity, InsertionAUC, MonotonicityCorrelation,
)
from spmm.metrics.localisation import Focus
from spmm.metrics.randomisation import ModelParameterRandomisation, RandomLogit
from spmm.metrics.robustness import MaxSensitivity

METRICS: dict[str, type[Metric]] = {
    cls.name: cls
    for cls in (
        Infidelity, FaithfulnessCorrelation, FaithfulnessEstimate, MonotonicityCorrelation, MaxSensitivity,
        RandomLogit, Focus, DeletionAUC, InsertionAUC, ModelParameterRandomisation,
    )
}


def list_metrics() -> list[str]:
    """All metric names."""
    return list(METRICS)


def make_metric(name: str, **settings: Any) -> Metric:
    """Build the metric called ``name`` with ``settings``; unknown names raise ValueError."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(METRICS)}")
    return METRICS[name](**settings)
