"""Per-sample partitions (labels with a leading batch dim) against a loop over samples, each
scored alone with its own shared partition: empty groups must change nothing."""

import pytest
import torch

from spmm.errors import SpmmInputError
from spmm.metrics import (
    Comprehensiveness, DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, FeatureGroups, Focus, Infidelity,
    InsertionAUC, MonotonicityCorrelation, Sufficiency, square_patches,
)

IDS = ["first", "second", "third"]


def partitions(gaps: bool) -> list[FeatureGroups]:
    """Three partitions of a (1, 8, 8) sample: 16 patches; 4 quadrants (ids 0, 2, 5, 7 with
    ``gaps``, else 0..3); 3 stripes of two rows with the first two rows in no group (−1)."""
    quadrants = square_patches((1, 8, 8), 4).labels
    if gaps:
        quadrants = torch.tensor([0, 2, 5, 7])[quadrants]
    rows = torch.arange(8).view(1, 8, 1).expand(1, 8, 8) // 2 - 1
    return [square_patches((1, 8, 8), 2), FeatureGroups(quadrants, 8 if gaps else 4), FeatureGroups(rows.clone(), 3)]


def compact(groups: FeatureGroups) -> FeatureGroups:
    """The same partition with its used ids renumbered 0..n−1 (no empty group)."""
    used = groups.labels[groups.labels >= 0].unique()
    table = torch.full((groups.count + 1,), -1, dtype=torch.long)
    table[used] = torch.arange(used.numel())
    return FeatureGroups(table[groups.labels], used.numel())


def per_sample(groups: list[FeatureGroups]) -> FeatureGroups:
    return FeatureGroups(torch.stack([g.labels for g in groups]), max(g.count for g in groups), per_sample=True)


CASES = [
    (FaithfulnessCorrelation(), True),
    (FaithfulnessCorrelation(baseline="uniform"), False),  # noise drawn group by group: empty groups last
    (FaithfulnessEstimate(groups_per_step=2), True),
    (MonotonicityCorrelation(groups_per_step=2, samples=2), True),
    (MonotonicityCorrelation(groups_per_step=3, samples=1, baseline=0.0, probability=False), True),
    (DeletionAUC(groups_per_step=2), True),
    (InsertionAUC(groups_per_step=2, probability=False), True),
    (Infidelity(draws=1), False),
    (Comprehensiveness(), True),
    (Sufficiency(baseline=0.3, times_input=True), True),
]


@pytest.mark.parametrize("metric, gaps", CASES, ids=[f"{m.name}-{i}" for i, (m, _) in enumerate(CASES)])
def test_per_sample_groups_equal_a_loop_with_shared_partitions(cnn, metric, gaps):
    generator = torch.Generator().manual_seed(11)
    x = torch.rand((3, 1, 8, 8), generator=generator) * 2 - 1
    targets = torch.tensor([0, 1, 1])
    attributions = torch.randn((3, 1, 8, 8), generator=generator)
    groups = partitions(gaps)
    batched = metric(cnn, x, targets, attributions, groups=per_sample(groups), sample_ids=IDS).scores
    looped = torch.cat([
        metric(cnn, x[i:i + 1], targets[i:i + 1], attributions[i:i + 1], groups=compact(groups[i]), sample_ids=IDS[i:i + 1]).scores
        for i in range(3)
    ])
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)


def test_focus_with_per_sample_groups_equals_a_loop(cnn):
    generator = torch.Generator().manual_seed(12)
    x = torch.rand((3, 1, 8, 8), generator=generator) * 2 - 1
    attributions = torch.randn((3, 1, 8, 8), generator=generator)
    groups = partitions(gaps=True)
    target = torch.zeros(3, 16, dtype=torch.bool)
    target[0, [1, 4]] = target[1, 5] = target[2, 2] = True
    batched = Focus()(cnn, x, torch.zeros(3, dtype=torch.long), attributions, groups=per_sample(groups), target_groups=target).scores
    for i in range(3):
        positive = (attributions[i] * x[i]).clamp_min(0)
        labels = groups[i].labels.expand(1, 8, 8)
        inside = sum(positive[labels == g].sum() for g in target[i].nonzero().flatten().tolist())
        expected = inside / (positive[labels >= 0].sum() + 1e-9)
        torch.testing.assert_close(batched[i], expected.double(), rtol=1e-6, atol=1e-9)


def test_per_sample_sums_replacement_and_presence_against_loops():
    groups = partitions(gaps=True)
    batched = per_sample(groups)
    values = torch.randn(3, 2, 8, 8, dtype=torch.float64)  # two channels share each pixel's group
    sums = batched.sum(values)
    for i, g in enumerate(groups):
        labels = g.labels.expand(2, 8, 8)
        expected = torch.stack([values[i][labels == k].sum() for k in range(16)])
        torch.testing.assert_close(sums[i], expected)
    assert batched.present(3).tolist() == [[True] * 16, [k in (0, 2, 5, 7) for k in range(16)], [k < 3 for k in range(16)]]
    chosen = torch.zeros(3, 1, 16, dtype=torch.bool)
    chosen[:, 0, 0] = True  # group 0 of every sample
    replaced = batched.replace(values, chosen, torch.tensor(9.0, dtype=torch.float64))
    for i, g in enumerate(groups):
        hit = (g.labels == 0).expand(2, 8, 8)
        assert (replaced[i, 0][hit] == 9).all() and torch.equal(replaced[i, 0][~hit], values[i][~hit])


def test_label_minus_one_is_in_no_group_for_shared_partitions():
    groups = FeatureGroups(torch.tensor([[-1, 0, 1, 1]]), 3)
    values = torch.tensor([[[5.0, 1.0, 2.0, 3.0]]])
    torch.testing.assert_close(groups.sum(values), torch.tensor([[1.0, 5.0, 0.0]]))
    assert groups.present(2).tolist() == [[True, True, False]] * 2
    everything = torch.ones(1, 1, 3, dtype=torch.bool)
    assert groups.replace(values, everything, torch.tensor(0.0)).flatten().tolist() == [5.0, 0.0, 0.0, 0.0]


def test_per_sample_groups_must_match_the_batch():
    groups = per_sample(partitions(gaps=False))
    with pytest.raises(SpmmInputError, match="for 3 samples do not fit a batch of 2"):
        groups.sum(torch.zeros(2, 1, 8, 8))
    with pytest.raises(SpmmInputError, match="0..2"):
        FeatureGroups(torch.tensor([[-2, 0]]), 3, per_sample=True)
