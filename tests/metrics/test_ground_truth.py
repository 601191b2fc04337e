"""Ground-truth mask metrics against closed forms and scikit-learn's ROC AUC."""

import pytest
import torch
from sklearn.metrics import roc_auc_score

from spmm.errors import SpmmInputError
from spmm.metrics import MaskAUROC, MassAccuracy, PointingHit, RankAccuracy, make_metric

TARGETS = torch.zeros(3, dtype=torch.long)


def _masks() -> torch.Tensor:
    """(3, 6, 5) masks with 6, 12 and 1 of 30 pixels."""
    mask = torch.zeros(3, 6, 5, dtype=torch.bool)
    mask[0, 1:3, 1:4] = True
    mask[1, :, 2:4] = True
    mask[2, 5, 4] = True
    return mask


def _score(metric, attributions, mask, inputs=None):
    inputs = torch.rand(attributions.shape) * 2 - 1 if inputs is None else inputs
    return metric(None, inputs, TARGETS, attributions, mask=mask).scores


@pytest.mark.parametrize("relevance", ["abs", "positive"])
def test_the_mask_itself_is_a_perfect_map(relevance):
    mask = _masks()
    attributions = mask[:, None].expand(3, 3, 6, 5).double()
    for metric in (MassAccuracy, RankAccuracy, MaskAUROC, PointingHit):
        torch.testing.assert_close(_score(metric(relevance), attributions, mask), torch.ones(3, dtype=torch.float64))


def test_a_uniform_map_scores_the_mask_share_and_chance_auroc():
    mask = _masks()
    share = mask.flatten(1).double().mean(1)
    attributions = torch.full((3, 3, 6, 5), -0.7)
    torch.testing.assert_close(_score(MassAccuracy(), attributions, mask), share)
    torch.testing.assert_close(_score(RankAccuracy(), attributions, mask), share)
    torch.testing.assert_close(_score(PointingHit(), attributions, mask), share)
    torch.testing.assert_close(_score(MaskAUROC(), attributions, mask), torch.full((3,), 0.5, dtype=torch.float64))


def test_the_inverted_mask_scores_zero():
    mask = _masks()
    attributions = (~mask)[:, None].expand(3, 3, 6, 5).double()
    for metric in (MassAccuracy, RankAccuracy, MaskAUROC, PointingHit):
        torch.testing.assert_close(_score(metric(), attributions, mask), torch.zeros(3, dtype=torch.float64))


def test_hand_made_maps_match_closed_forms_and_sklearn():
    torch.manual_seed(0)
    mask = _masks()
    attributions = torch.randn(3, 3, 6, 5, dtype=torch.float64)
    attributions[2, :, 5, 4] = 0.0  # the one-pixel mask of sample 2 holds no relevance at all
    attributions[:, :, 0, 0] = attributions[:, :, 0, 1]  # a tie
    pixel = attributions.abs().sum(1).flatten(1)
    flat = mask.flatten(1)
    mass = (pixel * flat).sum(1) / pixel.sum(1)
    torch.testing.assert_close(_score(MassAccuracy(), attributions, mask), mass)
    auroc = torch.tensor([roc_auc_score(flat[i].numpy(), pixel[i].numpy()) for i in range(3)], dtype=torch.float64)
    torch.testing.assert_close(_score(MaskAUROC(), attributions, mask), auroc)
    rank = torch.tensor([
        flat[i][pixel[i].argsort(descending=True)[: int(flat[i].sum())]].double().mean() for i in range(3)
    ], dtype=torch.float64)
    torch.testing.assert_close(_score(RankAccuracy(), attributions, mask), rank)
    hit = torch.tensor([float(flat[i][pixel[i].argmax()]) for i in range(3)], dtype=torch.float64)
    torch.testing.assert_close(_score(PointingHit(), attributions, mask), hit)
    assert hit[2] == 0 and rank[2] == 0


def test_positive_relevance_times_input():
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    mask[0, 0, 0] = True
    attributions = torch.tensor([[[[1.0, -4.0], [2.0, 0.0]], [[3.0, 1.0], [-5.0, 1.0]]]])
    inputs = torch.tensor([[[[1.0, 1.0], [0.5, 1.0]], [[-1.0, 1.0], [1.0, 0.5]]]])
    # per element attr·input, positive part, summed over the 2 channels: [[1, 1], [1, 0.5]]
    targets = torch.zeros(1, dtype=torch.long)
    score = MassAccuracy("positive", times_input=True)(None, inputs, targets, attributions, mask=mask).scores
    torch.testing.assert_close(score, torch.tensor([1 / 3.5], dtype=torch.float64))
    # the maximum 1 is tied on three pixels, one of them in the mask
    score = PointingHit("positive", times_input=True)(None, inputs, targets, attributions, mask=mask).scores
    torch.testing.assert_close(score, torch.tensor([1 / 3], dtype=torch.float64))


def test_a_zero_map_has_no_mass_and_a_nan_map_scores_nan():
    mask = _masks()
    attributions = torch.zeros(3, 3, 6, 5)
    torch.testing.assert_close(_score(MassAccuracy(), attributions, mask), torch.zeros(3, dtype=torch.float64))
    attributions[1, 0, 0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        scores = _score(MaskAUROC(), attributions, mask)
    assert scores.isnan().tolist() == [False, True, False]


def test_masks_of_the_full_sample_shape_are_accepted():
    mask = _masks()[:, None].expand(3, 3, 6, 5)
    attributions = mask.double()
    torch.testing.assert_close(_score(MaskAUROC(), attributions, mask), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("mask, message", [
    (torch.zeros(3, 6, 5), "must be a bool tensor"),
    (torch.ones(3, 5, 6, dtype=torch.bool), "does not fit attributions"),
    (torch.ones(2, 6, 5, dtype=torch.bool), "does not fit attributions"),
    (torch.zeros(3, 6, 5, dtype=torch.bool), "mask of sample 0 is empty"),
])
def test_bad_masks_are_one_line_errors(mask, message):
    with pytest.raises(SpmmInputError, match=message):
        _score(MassAccuracy(), torch.rand(3, 3, 6, 5), mask)


def test_auroc_needs_elements_outside_the_mask_and_settings_are_checked():
    with pytest.raises(SpmmInputError, match="covers the whole sample"):
        _score(MaskAUROC(), torch.rand(3, 3, 6, 5), torch.ones(3, 6, 5, dtype=torch.bool))
    with pytest.raises(SpmmInputError, match="relevance must be one of"):
        make_metric("mass_accuracy", relevance="signed")
    assert make_metric("pointing_hit", relevance="positive").settings() == {"relevance": "positive", "times_input": False}
