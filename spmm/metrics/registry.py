"""Metric names -> classes."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from spmm.errors import SpmmInputError, SpmmParameterError
from spmm.metrics.base import Metric
from spmm.metrics.faithfulness import (
    Comprehensiveness, DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Infidelity, InsertionAUC,
    MonotonicityCorrelation, Sufficiency,
)
from spmm.metrics.ground_truth import MaskAUROC, MassAccuracy, OtherMass, PointingHit, RankAccuracy
from spmm.metrics.localisation import Focus, PointingGame
from spmm.metrics.randomisation import ModelParameterRandomisation, RandomLogit
from spmm.metrics.robustness import MaxSensitivity

METRICS: dict[str, type[Metric]] = {
    cls.name: cls
    for cls in (
        Infidelity, FaithfulnessCorrelation, FaithfulnessEstimate, MonotonicityCorrelation, MaxSensitivity,
        RandomLogit, Focus, DeletionAUC, InsertionAUC, ModelParameterRandomisation, Comprehensiveness, Sufficiency,
        PointingGame, MassAccuracy, OtherMass, RankAccuracy, MaskAUROC, PointingHit,
    )
}


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Register a :class:`~spmm.metrics.base.Metric` subclass under its ``name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Metric)) or not isinstance(getattr(cls, "name", None), str):
        raise TypeError(f"register_metric takes a Metric subclass with a name, got {cls!r}")
    METRICS[cls.name] = cls
    return cls


def list_metrics() -> list[str]:
    """All metric names."""
    return list(METRICS)


def metric_parameters(name: str) -> list[str]:
    """The settings the metric called ``name`` takes."""
    if name not in METRICS:
        raise SpmmInputError(f"unknown metric {name!r}; available: {', '.join(METRICS)}")
    return [p for p in inspect.signature(METRICS[name].__init__).parameters if p != "self"]


def check_settings(name: str, settings: Mapping[str, Any]) -> None:
    """Raise :class:`SpmmInputError` for an unknown metric ``name`` or a setting it does not take."""
    accepted = metric_parameters(name)
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise SpmmParameterError(f"metric {name!r} got unknown setting(s) {unknown}; its settings: {accepted}")


def make_metric(name: str, **settings: Any) -> Metric:
    """Build the metric called ``name`` with ``settings`` (checked by :func:`check_settings`)."""
    check_settings(name, settings)
    return METRICS[name](**settings)
