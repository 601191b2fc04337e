"""Torch-native faithfulness metrics on feature groups (SPEC §4).

Every metric: settings in ``__init__``, data in ``__call__(model, inputs, targets,
attributions, ...)``, per-sample scores in the returned :class:`MetricResult`, and
``name`` / ``higher_is_better`` / ``category`` as class attributes.
"""

from spmm.metrics.base import ExplainFn, Metric, MetricResult, explainer
from spmm.metrics.draws import SampleStream
from spmm.metrics.faithfulness import (
    Comprehensiveness, DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Infidelity, InsertionAUC,
    MonotonicityCorrelation, Sufficiency,
)
from spmm.metrics.ground_truth import MaskAUROC, MassAccuracy, OtherMass, PointingHit, RankAccuracy
from spmm.metrics.groups import Baseline, FeatureGroups, UniformNoise, baseline_values, segments, square_patches
from spmm.metrics.localisation import Focus, PointingGame
from spmm.metrics.randomisation import ModelParameterRandomisation, RandomLogit
from spmm.metrics.registry import METRICS, list_metrics, make_metric
from spmm.metrics.robustness import MaxSensitivity
from spmm.metrics.statistics import paired_bootstrap_ci, pearson, spearman

__all__ = [
    "Baseline", "Comprehensiveness", "DeletionAUC", "ExplainFn", "FaithfulnessCorrelation", "FaithfulnessEstimate",
    "FeatureGroups", "Focus", "Infidelity", "InsertionAUC", "METRICS", "MaskAUROC", "MassAccuracy", "MaxSensitivity",
    "Metric", "MetricResult", "ModelParameterRandomisation", "MonotonicityCorrelation", "OtherMass", "PointingGame",
    "PointingHit",
    "RandomLogit", "RankAccuracy", "SampleStream", "Sufficiency", "UniformNoise", "baseline_values", "explainer",
    "list_metrics", "make_metric", "paired_bootstrap_ci", "pearson", "segments", "spearman", "square_patches",
]
