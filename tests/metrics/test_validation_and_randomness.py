"""Non-finite attributions give NaN scores and one warning; random draws follow the sample's id,
not its batch, its position or the chunk size."""

import warnings

import pytest
import torch

from spmm.errors import SpmmInputError
from spmm.metrics import (
    Comprehensiveness, DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Focus, Infidelity, InsertionAUC,
    MaxSensitivity, ModelParameterRandomisation, MonotonicityCorrelation, RandomLogit, Sufficiency, explainer,
    square_patches,
)
from tests.metrics.conftest import tiny_cnn

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


RANDOM = [
    (Infidelity(draws=2), {"groups": QUADRANTS}),
    (MonotonicityCorrelation(groups_per_step=4, samples=3), {"groups": PATCHES}),
    (FaithfulnessCorrelation(baseline="uniform"), {"groups": PATCHES}),
    (Comprehensiveness(baseline="uniform"), {"groups": PATCHES}),
    (MaxSensitivity(samples=3, radius=0.1), {"explain_fn": GRADIENT}),
    (RandomLogit(), {"explain_fn": GRADIENT}),
]


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


def test_without_ids_the_positions_are_the_ids():
    model = tiny_cnn().double()
    x, targets, attributions = _batch()
    metric = Infidelity(draws=1)
    positions = metric(model, x, targets, attributions, groups=QUADRANTS).scores
    torch.testing.assert_close(positions, metric(model, x, targets, attributions, groups=QUADRANTS, sample_ids=["0", "1", "2"]).scores)
    with pytest.raises(SpmmInputError, match="2 sample ids for a batch of 3"):
        metric(model, x, targets, attributions, groups=QUADRANTS, sample_ids=["0", "1"])
