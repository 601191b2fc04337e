import numpy as np
import pytest
import scipy.stats
import torch

from spmm.errors import SpmmInputError
from spmm.metrics import FeatureGroups, baseline_values, paired_bootstrap_ci, pearson, segments, spearman, square_patches


def test_square_patches_cover_trailing_dims_row_major():
    groups = square_patches((3, 4, 6), 2)
    assert groups.count == 6
    values = torch.arange(3 * 4 * 6, dtype=torch.float64).view(1, 3, 4, 6)
    sums = groups.sum(values)
    expected = [values[0, :, r:r + 2, c:c + 2].sum() for r in (0, 2) for c in (0, 2, 4)]
    torch.testing.assert_close(sums[0], torch.stack(expected))


def test_uneven_patches_and_segments():
    assert square_patches((1, 5, 5), 2).count == 9
    tokens = segments((7, 4), size=3)
    assert tokens.count == 3
    sums = tokens.sum(torch.ones(2, 7, 4))
    torch.testing.assert_close(sums, torch.tensor([[12.0, 12.0, 4.0]] * 2))


def test_replace_uses_baseline_only_inside_selected_groups():
    groups = square_patches((1, 2, 2), 1)
    inputs = torch.arange(4.0).view(1, 1, 2, 2)
    masks = torch.tensor([[[True, False, False, True]]])
    out = groups.replace(inputs, masks, baseline_values(-5.0, inputs.new_empty(1, 1, 1, 2, 2)))
    torch.testing.assert_close(out, torch.tensor([[[[[-5.0, 1.0], [2.0, -5.0]]]]]))


def test_groups_reject_mismatched_shapes_and_labels():
    with pytest.raises(SpmmInputError, match="do not fit"):
        square_patches((1, 4, 4), 2).sum(torch.ones(2, 1, 4, 5))
    with pytest.raises(SpmmInputError, match="0..1"):
        FeatureGroups(torch.tensor([0, 2]), 2)
    with pytest.raises(SpmmInputError, match="unknown baseline"):
        baseline_values("blur", torch.zeros(1, 1, 2))


def test_correlations_match_scipy_including_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (5, 12)).astype(float)
    b = rng.normal(size=(5, 12))
    ours_p = pearson(torch.tensor(a), torch.tensor(b)).numpy()
    ours_s = spearman(torch.tensor(a), torch.tensor(b)).numpy()
    for row in range(5):
        np.testing.assert_allclose(ours_p[row], scipy.stats.pearsonr(a[row], b[row])[0], atol=1e-12)
        np.testing.assert_allclose(ours_s[row], scipy.stats.spearmanr(a[row], b[row])[0], atol=1e-12)


def test_constant_rows_correlate_zero_not_nan():
    a = torch.ones(2, 5)
    b = torch.randn(2, 5)
    assert torch.equal(pearson(a, b), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(spearman(b, a), torch.zeros(2, dtype=torch.float64))


def test_masked_correlations_match_scipy_on_the_kept_entries():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, (4, 10)).astype(float)
    b = rng.normal(size=(4, 10))
    mask = rng.random((4, 10)) < 0.7
    mask[:, :3] = True
    a[~mask] = np.nan  # masked entries never enter, whatever they hold
    ours_p = pearson(torch.tensor(a), torch.tensor(b), torch.tensor(mask)).numpy()
    ours_s = spearman(torch.tensor(a), torch.tensor(b), torch.tensor(mask)).numpy()
    for row in range(4):
        kept = mask[row]
        np.testing.assert_allclose(ours_p[row], scipy.stats.pearsonr(a[row, kept], b[row, kept])[0], atol=1e-12)
        np.testing.assert_allclose(ours_s[row], scipy.stats.spearmanr(a[row, kept], b[row, kept])[0], atol=1e-12)


def test_paired_bootstrap_ci_agrees_with_scipy_and_the_normal_approximation():
    rng = np.random.default_rng(2)
    a = rng.normal(1.0, 1.0, 60)
    b = a - 0.3 + rng.normal(0, 0.5, 60)
    low, high = paired_bootstrap_ci(a, b, resamples=4000, seed=3)
    theirs = scipy.stats.bootstrap((a - b,), np.mean, n_resamples=4000, method="percentile", random_state=3).confidence_interval
    diff = a - b
    half = 1.96 * diff.std(ddof=1) / np.sqrt(60)
    for ours, reference in ((low, theirs.low), (high, theirs.high)):
        assert ours == pytest.approx(reference, abs=0.1 * half)
    assert low == pytest.approx(diff.mean() - half, abs=0.15 * half) and high == pytest.approx(diff.mean() + half, abs=0.15 * half)
    assert (low, high) == paired_bootstrap_ci(a, b, resamples=4000, seed=3)  # seeded
    wider = paired_bootstrap_ci(a, b, resamples=4000, level=0.99, seed=3)
    assert wider[0] < low and wider[1] > high
    assert all(np.isnan(paired_bootstrap_ci(a[:1], b[:1])))
    with pytest.raises(SpmmInputError, match="two vectors"):
        paired_bootstrap_ci(a.reshape(6, 10), b.reshape(6, 10))


def test_stream_draws_follow_the_documented_formula_and_look_uniform():
    from spmm.metrics import SampleStream
    from spmm.metrics.draws import uniform
    from tests.metrics.conftest import ReferenceStream

    streams = [SampleStream(4, "img", "infidelity"), SampleStream(4, 7, "infidelity")]
    first = uniform(streams, 2, (3, 5), "cpu", -1.0, 1.0)
    second = uniform(streams, 1, (3, 5), "cpu", -1.0, 1.0)  # the counter moves on
    for b, sample in enumerate(["img", 7]):
        reference = ReferenceStream(4, sample, "infidelity")
        expected = torch.stack([reference.next((3, 5), -1.0, 1.0) for _ in range(3)])
        torch.testing.assert_close(torch.cat([first[b], second[b]]), expected, rtol=0, atol=0)
    many = uniform([SampleStream(0, "x", "m")], 40, (5000,), "cpu").flatten().double().numpy()
    assert scipy.stats.kstest(many, "uniform").pvalue > 1e-3
    pairs = many.reshape(40, 5000)
    assert abs(np.corrcoef(pairs[:-1].ravel(), pairs[1:].ravel())[0, 1]) < 0.01  # draw p vs p + 1
    assert abs(np.corrcoef(pairs[:, :-1].ravel(), pairs[:, 1:].ravel())[0, 1]) < 0.01  # element e vs e + 1


def test_normal_draws_are_box_muller_on_the_stream_and_look_normal():
    from spmm.metrics import SampleStream
    from spmm.metrics.draws import normal
    from tests.metrics.conftest import ReferenceStream

    drawn = normal([SampleStream(2, "img", "smoothgrad")], 3, (3, 5), "cpu")  # 15 elements: 8 pairs
    reference = ReferenceStream(2, "img", "smoothgrad")
    for p in range(3):
        u = reference.next((16,)).double()  # pairs (element 2k, element 2k + 1)
        radius, angle = torch.sqrt(-2 * torch.log(1 - u[0::2])), 2 * np.pi * u[1::2]
        expected = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1).flatten()[:15].view(3, 5)
        torch.testing.assert_close(drawn[0, p].double(), expected, rtol=1e-5, atol=1e-5)
    many = normal([SampleStream(0, "x", "m")], 20, (5000,), "cpu")[0].double().numpy()
    assert scipy.stats.kstest(many.ravel(), "norm").pvalue > 1e-3
    assert abs(np.corrcoef(many[:, 0::2].ravel(), many[:, 1::2].ravel())[0, 1]) < 0.01  # cos and sin of a pair
    wider = normal([SampleStream(0, "x", "m")], 20, (5003,), "cpu")[0]
    torch.testing.assert_close(wider[:, :5000], torch.from_numpy(many).float(), rtol=0, atol=0)  # a prefix keeps its values
    many = many.ravel()
    assert np.isfinite(many).all() and np.abs(many).max() < 5.8
