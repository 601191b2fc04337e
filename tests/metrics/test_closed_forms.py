"""Metrics on a linear model, where every quantity has a closed form."""

import pytest
import torch

from spmm.errors import SpmmInputError
from tests.metrics.conftest import content_ids, streams_for
from spmm.metrics import (
    DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Focus, Infidelity, InsertionAUC, MaxSensitivity,
    ModelParameterRandomisation, MonotonicityCorrelation, RandomLogit, explainer, square_patches,
)

TARGETS = torch.tensor([0, 1, 2, 0])


def gradient(model, targets):
    return model.weight[:, targets].T.reshape(-1, 1, 8, 8)


def test_infidelity_is_zero_for_any_positive_multiple_of_the_gradient(linear_model, images):
    groups = [square_patches((1, 8, 8), 4), square_patches((1, 8, 8), 2)]
    for scale in (1.0, 3.0):
        result = Infidelity(draws=2)(linear_model, images, TARGETS, scale * gradient(linear_model, TARGETS), groups=groups)
        torch.testing.assert_close(result.scores, torch.zeros(4, dtype=torch.float64), atol=1e-18, rtol=0)
        torch.testing.assert_close(result.extras["beta"], torch.full((4,), 1 / scale, dtype=torch.float64))
    noise = torch.randn_like(images)
    assert (Infidelity(draws=2)(linear_model, images, TARGETS, noise, groups=groups).scores > 1e-3).all()


def test_infidelity_matches_a_hand_written_loop(cnn):
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    targets = torch.tensor([0, 1])
    attributions = torch.randn_like(x)
    groups = square_patches((1, 8, 8), 4)
    ours = Infidelity(draws=3, seed=5)(cnn, x, targets, attributions, groups=groups, sample_ids=["a", "b"]).scores
    streams = streams_for(5, ["a", "b"], "infidelity")
    with torch.no_grad():
        f = cnn(x)[[0, 1], targets]
        a, b = [], []
        for _ in range(3):
            for g in range(4):
                noise = torch.stack([stream.next((1, 8, 8), -1.0, 1.0) for stream in streams])
                mask = groups.labels.expand(1, 8, 8) == g
                perturbed = torch.where(mask, noise, x)
                a.append(((x - perturbed) * attributions).flatten(1).sum(1))
                b.append(f - cnn(perturbed)[[0, 1], targets])
    a, b = torch.stack(a, 1).double(), torch.stack(b, 1).double()
    beta = (a * b).sum(1) / (a * a).sum(1)
    torch.testing.assert_close(ours, ((beta[:, None] * a - b) ** 2).mean(1), rtol=1e-5, atol=1e-7)


def test_gradient_times_input_is_perfectly_correlated_under_zero_baseline(linear_model, images):
    attributions = gradient(linear_model, TARGETS) * images
    patches = square_patches((1, 8, 8), 2)
    corr = FaithfulnessCorrelation(abs=False)(linear_model, images, TARGETS, attributions, groups=patches).scores
    torch.testing.assert_close(corr, torch.ones(4, dtype=torch.float64))
    pixels = square_patches((1, 8, 8), 1)
    estimate = FaithfulnessEstimate(groups_per_step=4, abs=False)(linear_model, images, TARGETS, attributions, groups=pixels)
    torch.testing.assert_close(estimate.scores, torch.ones(4, dtype=torch.float64))


def test_constant_attributions_score_zero_without_nan(linear_model, images):
    flat = torch.ones_like(images)
    pixels = square_patches((1, 8, 8), 1)
    for metric in (FaithfulnessCorrelation(), FaithfulnessEstimate(groups_per_step=4), MonotonicityCorrelation(groups_per_step=4, samples=2)):
        groups = square_patches((1, 8, 8), 2) if isinstance(metric, FaithfulnessCorrelation) else pixels
        scores = metric(linear_model, images, TARGETS, flat, groups=groups).scores
        assert torch.equal(scores, torch.zeros(4, dtype=torch.float64)), metric.name


def test_monotonicity_with_a_constant_baseline_is_spearman_of_squared_relative_drops(linear_model, images):
    attributions = (gradient(linear_model, TARGETS) * images).abs()
    pixels = square_patches((1, 8, 8), 1)
    scores = MonotonicityCorrelation(groups_per_step=1, samples=2, baseline=0.0, probability=False)(
        linear_model, images, TARGETS, attributions, groups=pixels).scores
    # removing pixel i changes the logit by exactly its gradient×input term, so v_i = attr_i² / f² (monotone in attr_i)
    torch.testing.assert_close(scores, torch.ones(4, dtype=torch.float64))


def test_deletion_and_insertion_curves_have_closed_forms(linear_model, images):
    attributions = gradient(linear_model, TARGETS) * images
    pixels = square_patches((1, 8, 8), 1)
    deletion = DeletionAUC(groups_per_step=16, probability=False)(linear_model, images, TARGETS, attributions, groups=pixels)
    insertion = InsertionAUC(groups_per_step=16, probability=False)(linear_model, images, TARGETS, attributions, groups=pixels)
    contributions = attributions.flatten(1).double()
    ordered = contributions.sort(1, descending=True).values
    kept = [contributions.sum(1)] + [contributions.sum(1) - ordered[:, : 16 * k].sum(1) for k in range(1, 5)]
    inserted = [torch.zeros(4, dtype=torch.float64)] + [ordered[:, : 16 * k].sum(1) for k in range(1, 5)]
    torch.testing.assert_close(deletion.extras["curve"], torch.stack(kept, 1))
    torch.testing.assert_close(insertion.extras["curve"], torch.stack(inserted, 1))
    trapezoid = lambda c: (c[:, :-1] + c[:, 1:]).sum(1) / 2 / (c.shape[1] - 1)  # noqa: E731
    torch.testing.assert_close(deletion.scores, trapezoid(torch.stack(kept, 1)))
    assert (deletion.scores < insertion.scores).all()


def test_max_sensitivity_is_zero_for_the_gradient_of_a_linear_model(linear_model, images):
    result = MaxSensitivity(samples=3)(linear_model, images, TARGETS, gradient(linear_model, TARGETS),
                                       explain_fn=explainer("gradient"))
    torch.testing.assert_close(result.scores, torch.zeros(4, dtype=torch.float64), atol=1e-6, rtol=0)
    x_times = MaxSensitivity(samples=3, radius=0.1)(linear_model, images, TARGETS, gradient(linear_model, TARGETS) * images,
                                                     explain_fn=lambda m, x, t: gradient(m, t) * x)
    expected_bound = (0.1 * gradient(linear_model, TARGETS).flatten(1).norm(dim=1)) / (gradient(linear_model, TARGETS) * images).flatten(1).norm(dim=1)
    assert (x_times.scores > 0).all() and (x_times.scores <= expected_bound.double() + 1e-9).all()


def test_random_logit_uses_another_class_and_pearson(linear_model, images):
    result = RandomLogit(seed=1)(linear_model, images, TARGETS, gradient(linear_model, TARGETS), explain_fn=explainer("gradient"))
    others = result.extras["other_targets"]
    assert (others != TARGETS).all() and ((others >= 0) & (others < 3)).all()
    w = linear_model.weight.detach()
    expected = torch.stack([torch.corrcoef(torch.stack([w[:, t], w[:, o]]))[0, 1] for t, o in zip(TARGETS, others)])
    torch.testing.assert_close(result.scores, expected)


def test_focus_is_the_positive_share_in_target_quadrants():
    x = torch.ones(1, 1, 4, 4)
    attributions = torch.tensor([[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [-3.0, -3.0, 0.0, 0.0], [-3.0, -3.0, 0.0, 4.0]]).view(1, 1, 4, 4)
    quadrants = square_patches((1, 4, 4), 2)
    result = Focus()(None, x, torch.tensor([0]), attributions, groups=quadrants, target_groups=torch.tensor([[True, False, False, True]]))
    torch.testing.assert_close(result.scores, torch.tensor([8.0 / 16.0], dtype=torch.float64), atol=1e-8, rtol=0)


def test_parameter_randomisation_lowers_rank_correlation(cnn):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    targets = torch.tensor([0, 1, 0])
    grad = explainer("gradient")
    metric = ModelParameterRandomisation(seed=0)
    result = metric(cnn, x, targets, grad(cnn, x, targets), explain_fn=grad)
    assert result.settings["layers"] == ["3", "0"]
    assert result.extras["correlations"].shape == (2, 3)
    assert (result.scores < 0.9).all()
    assert all(p.abs().sum() > 0 for p in cnn.parameters())  # the original model is untouched


def test_mismatched_shapes_and_targets_are_rejected(linear_model, images):
    pixels = square_patches((1, 8, 8), 1)
    with pytest.raises(SpmmInputError, match="do not match"):
        FaithfulnessEstimate()(linear_model, images, TARGETS, images[:, :, :4], groups=pixels)
    with pytest.raises(SpmmInputError, match="3 targets for a batch of 4"):
        FaithfulnessEstimate()(linear_model, images, TARGETS[:3], images, groups=pixels)
    with pytest.raises(SpmmInputError, match="out of range"):
        FaithfulnessEstimate()(linear_model, images, torch.tensor([0, 1, 2, 7]), images, groups=pixels)
    with pytest.raises(SpmmInputError, match="do not fit"):
        FaithfulnessCorrelation()(linear_model, images, TARGETS, images, groups=square_patches((1, 9, 8), 2))
    with pytest.raises(SpmmInputError, match="target_groups"):
        Focus()(None, images, TARGETS, images, groups=square_patches((1, 8, 8), 4), target_groups=torch.ones(4, 3, dtype=torch.bool))


def test_fixed_seed_gives_identical_noisy_scores(cnn):
    x = torch.rand(2, 1, 8, 8)
    targets = torch.tensor([0, 1])
    a = torch.randn_like(x)
    pixels = square_patches((1, 8, 8), 1)
    first = MonotonicityCorrelation(groups_per_step=8, samples=3, seed=4)(cnn, x, targets, a, groups=pixels).scores
    again = MonotonicityCorrelation(groups_per_step=8, samples=3, seed=4, chunk=5)(cnn, x, targets, a, groups=pixels).scores
    other = Infidelity(seed=4)(cnn, x, targets, a, groups=pixels).scores
    assert torch.equal(first, again)
    assert torch.equal(other, Infidelity(seed=4)(cnn, x, targets, a, groups=pixels).scores)
    assert not torch.equal(other, Infidelity(seed=5)(cnn, x, targets, a, groups=pixels).scores)


def test_monotonicity_with_noise_matches_a_hand_written_loop_on_colour_patches():
    """Patches shared by 3 channels, fresh U(−1, 1) noise for every sample of every step."""
    from scipy.stats import spearmanr

    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3)).eval()
    x, targets = torch.rand(2, 3, 8, 8), torch.tensor([2, 0])
    attributions = torch.randn_like(x)
    patches = square_patches((3, 8, 8), 2)  # 16 patches, labels (1, 8, 8)
    ours = MonotonicityCorrelation(groups_per_step=3, samples=4, seed=9, chunk=7)(model, x, targets, attributions, groups=patches)
    streams = streams_for(9, content_ids(x), "monotonicity_correlation")  # no sample ids: known by content
    labels = patches.labels.expand(3, 8, 8)
    sums = torch.stack([attributions.abs()[:, labels == g].sum(1) for g in range(16)], 1).double()
    order = torch.sort(sums, dim=1, stable=True).indices
    with torch.no_grad():
        p = torch.softmax(model(x).double(), 1)[[0, 1], targets]
        steps = [order[:, k:k + 3] for k in range(0, 16, 3)]
        drops = torch.zeros(2, len(steps), dtype=torch.float64)
        for k, chosen in enumerate(steps):
            for _ in range(4):
                noise = torch.stack([stream.next((3, 8, 8), -1.0, 1.0) for stream in streams])
                mask = torch.stack([torch.isin(labels, chosen[i]) for i in range(2)])
                q = torch.softmax(model(torch.where(mask, noise, x)).double(), 1)[[0, 1], targets]
                drops[:, k] += (q - p) ** 2 / 4
    block = torch.stack([sums[i, chosen[i]].sum(-1) for i in range(2) for chosen in steps]).view(2, -1)
    expected = [spearmanr(block[i], drops[i] / p[i] ** 2).statistic for i in range(2)]
    torch.testing.assert_close(ours.scores, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)
