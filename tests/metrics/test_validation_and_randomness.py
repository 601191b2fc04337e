"""Non-finite attributions give NaN scores and one warning; random draws follow the sample's id
(or, without ids, its content), not its batch, its position or the chunk size."""

import warnings

import pytest
import torch

from spmm.errors import SpmmInputError
from spmm.metrics import (
    Comprehensiveness, DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Focus, Infidelity, InsertionAUC,
    MaxSensitivity, ModelParameterRandomisation, MonotonicityCorrelation, RandomLogit, Sufficiency, explainer,
    square_patches,
)
from spmm.metrics.registry import METRICS, metric_parameters
from tests.metrics.conftest import content_ids, tiny_cnn

PATCHES = square_patches((1, 8, 8), 2)
QUADRANTS = square_patches((1, 8, 8), 4)
GRADIENT = explainer("gradient")

ALL = [
    (Infidelity(draws=1), {"groups": QUADRANTS}),
    (FaithfulnessCorrelation(), {"groups": QUADRANTS}),
    (FaithfulnessEstimate(groups_per_step=4), {"groups": PATCHES}),
    (MonotonicityCorrelation(groups_per_step=4, samples=2), {"groups": PATCHES}),
    (DeletionAUC(groups_per_step=4), {"groups": PATCHES}),
    (InsertionAUC(groups_per_step=4), {"groups": PATCHES}),
    (Comprehensiveness(), {"groups": PATCHES}),
    (Sufficiency(), {"groups": PATCHES}),
    (MaxSensitivity(samples=2), {"explain_fn": GRADIENT}),
    (RandomLogit(), {"explain_fn": GRADIENT}),
    (ModelParameterRandomisation(), {"explain_fn": GRADIENT}),
    (Focus(), {"groups": QUADRANTS, "target_groups": torch.eye(4, dtype=torch.bool)[:3]}),
]


def _batch(count: int = 3):
    generator = torch.Generator().manual_seed(8)
    x = torch.rand((count, 1, 8, 8), generator=generator, dtype=torch.float64) * 2 - 1
    return x, torch.arange(count) % 2, torch.randn((count, 1, 8, 8), generator=generator, dtype=torch.float64)


def _ids(metric, ids):
    return {"sample_ids": ids} if not isinstance(metric, (Focus, ModelParameterRandomisation)) else {}


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("metric, kwargs", ALL, ids=[m.name for m, _ in ALL])
def test_non_finite_attributions_score_nan_with_one_warning(metric, kwargs, bad):
    model = tiny_cnn().double()
    x, targets, attributions = _batch()
    broken = attributions.clone()
    broken[1, 0, 3, 3] = bad
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = metric(model, x, targets, broken, **kwargs, **_ids(metric, ["a", "b", "c"])).scores
    assert len([w for w in caught if "NaN or inf" in str(w.message)]) == 1
    assert scores[1].isnan() and not scores[[0, 2]].isnan().any()
    if not isinstance(metric, (Focus, ModelParameterRandomisation)):  # the others depend only on their own sample
        kept = {**kwargs, "target_groups": kwargs["target_groups"][[0, 2]]} if "target_groups" in kwargs else kwargs
        alone = metric(model, x[[0, 2]], targets[[0, 2]], attributions[[0, 2]], **kept, **_ids(metric, ["a", "c"])).scores
        torch.testing.assert_close(scores[[0, 2]], alone, rtol=1e-9, atol=1e-12)


def test_attributions_of_another_shape_are_rejected():
    x, targets, attributions = _batch()
    with pytest.raises(SpmmInputError, match="do not match"):
        Comprehensiveness()(tiny_cnn().double(), x, targets, attributions[:, :, :4], groups=PATCHES)


SMOOTHGRAD = explainer("smoothgrad", samples=3, seed=2)  # an explainer that draws too
RANDOM = [
    (Infidelity(draws=2), {"groups": QUADRANTS}),
    (MonotonicityCorrelation(groups_per_step=4, samples=3), {"groups": PATCHES}),
    (FaithfulnessCorrelation(baseline="uniform"), {"groups": PATCHES}),
    (FaithfulnessEstimate(groups_per_step=4, baseline="uniform"), {"groups": PATCHES}),
    (DeletionAUC(groups_per_step=4, baseline="uniform"), {"groups": PATCHES}),
    (InsertionAUC(groups_per_step=4, baseline="uniform"), {"groups": PATCHES}),
    (Comprehensiveness(baseline="uniform"), {"groups": PATCHES}),
    (Sufficiency(baseline="uniform"), {"groups": PATCHES}),
    (MaxSensitivity(samples=3, radius=0.1), {"explain_fn": GRADIENT}),
    (MaxSensitivity(samples=2, radius=0.1), {"explain_fn": SMOOTHGRAD}),
    (RandomLogit(), {"explain_fn": GRADIENT}),
    (RandomLogit(), {"explain_fn": SMOOTHGRAD}),
]
SEEDED = [*RANDOM, (ModelParameterRandomisation(), {"explain_fn": SMOOTHGRAD})]
"""Every metric that takes a seed (ModelParameterRandomisation draws weights, not per sample: no ids)."""


def test_every_metric_with_a_seed_is_checked_for_batching():
    seeded = {name for name in METRICS if "seed" in metric_parameters(name)}
    assert seeded == {metric.name for metric, _ in SEEDED}


@pytest.mark.parametrize("metric, kwargs", RANDOM, ids=[m.name for m, _ in RANDOM])
def test_a_sample_scores_the_same_alone_in_any_batch_and_any_chunk(metric, kwargs):
    model = tiny_cnn(classes=5).double()
    x, _, attributions = _batch(4)
    targets = torch.tensor([3, 0, 4, 1])
    ids = ["c", "img", "b", "d"]

    def score(rows, chunk):
        metric.chunk = chunk
        result = metric(model, x[rows], targets[rows], attributions[rows], **kwargs, sample_ids=[ids[r] for r in rows])
        return result.scores[rows.index(1)]

    alone = score([1], 1)
    for rows in ([1, 2], [0, 1, 2, 3], [3, 2, 1]):
        for chunk in (1, 4):
            torch.testing.assert_close(score(rows, chunk), alone, rtol=1e-9, atol=1e-12)
    # the draws follow the id: another id draws otherwise
    moved = metric(model, x[[1]], targets[[1]], attributions[[1]], **kwargs, sample_ids=["other"]).scores[0]
    assert not torch.equal(moved, alone)


@pytest.mark.parametrize("metric, kwargs", SEEDED, ids=[m.name for m, _ in SEEDED])
def test_without_ids_a_sample_is_known_by_its_content(metric, kwargs):
    """No ids: the same draws alone, in a batch of 4 and in another order, and the documented
    content id (sha256 of shape and float32 values) is the id."""
    model = tiny_cnn(classes=5).double()
    x, _, attributions = _batch(4)
    targets = torch.tensor([3, 0, 4, 1])
    batch = metric(model, x, targets, attributions, **kwargs).scores
    permuted = [2, 0, 3, 1]
    torch.testing.assert_close(metric(model, x[permuted], targets[permuted], attributions[permuted], **kwargs).scores,
                               batch[permuted], rtol=1e-9, atol=1e-12)
    alone = metric(model, x[[1]], targets[[1]], attributions[[1]], **kwargs).scores
    torch.testing.assert_close(alone, batch[[1]], rtol=1e-9, atol=1e-12)
    if not isinstance(metric, ModelParameterRandomisation):
        named = metric(model, x, targets, attributions, **kwargs, sample_ids=content_ids(x)).scores
        torch.testing.assert_close(named, batch, rtol=0, atol=0)


def test_sample_ids_must_match_the_batch():
    x, targets, attributions = _batch()
    with pytest.raises(SpmmInputError, match="2 sample ids for a batch of 3"):
        Infidelity(draws=1)(tiny_cnn().double(), x, targets, attributions, groups=QUADRANTS, sample_ids=["0", "1"])
