"""Every metric refuses what it cannot score in one line (non-finite inputs, an empty batch, a
non-finite or inverted baseline), and scores a model in training mode in eval mode with one
warning, leaving its flags and buffers as they were."""

from __future__ import annotations

import warnings

import pytest
import torch

from spmm.errors import SpmmInputError
from spmm.metrics import (
    Comprehensiveness, DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Focus, Infidelity, InsertionAUC,
    MaskAUROC, MassAccuracy, MaxSensitivity, ModelParameterRandomisation, MonotonicityCorrelation, OtherMass, PointingGame,
    PointingHit, RandomLogit, RankAccuracy, Sufficiency, UniformNoise, explainer, square_patches,
)
from spmm.metrics.registry import METRICS, metric_parameters
from tests.reliability.tiny import TinyConvNet

QUADRANTS = square_patches((3, 8, 8), 4)
PATCHES = square_patches((3, 8, 8), 2)
GRADIENT = explainer("gradient")
MASK = torch.zeros(8, 8, dtype=torch.bool).index_fill_(0, torch.tensor([1, 2]), True)


def _calls(batch: int) -> list[tuple]:
    """(metric, call arguments) for every registered metric, on a batch of ``batch`` samples of (3, 8, 8)."""
    target_groups = torch.eye(4, dtype=torch.bool)[torch.arange(batch) % 4]
    mask = MASK.expand(batch, 8, 8)
    return [
        (Infidelity(draws=1), {"groups": QUADRANTS}),
        (FaithfulnessCorrelation(), {"groups": QUADRANTS}),
        (FaithfulnessEstimate(groups_per_step=4), {"groups": PATCHES}),
        (MonotonicityCorrelation(groups_per_step=4, samples=2), {"groups": PATCHES}),
        (MaxSensitivity(samples=2), {"explain_fn": GRADIENT}),
        (RandomLogit(), {"explain_fn": GRADIENT}),
        (Focus(), {"groups": QUADRANTS, "target_groups": target_groups}),
        (DeletionAUC(groups_per_step=4), {"groups": PATCHES}),
        (InsertionAUC(groups_per_step=4), {"groups": PATCHES}),
        (ModelParameterRandomisation(), {"explain_fn": GRADIENT}),
        (Comprehensiveness(), {"groups": PATCHES}),
        (Sufficiency(), {"groups": PATCHES}),
        (PointingGame(sum_dims=()), {"groups": QUADRANTS, "target_groups": target_groups}),
        (MassAccuracy(), {"mask": mask}),
        (OtherMass(), {"other_mask": mask}),
        (RankAccuracy(), {"mask": mask}),
        (MaskAUROC(), {"mask": mask}),
        (PointingHit(), {"mask": mask}),
    ]


def _names(batch: int) -> list[str]:
    return [metric.name for metric, _ in _calls(batch)]


def test_the_catalogue_has_every_metric():
    assert sorted(_names(2)) == sorted(METRICS)


def _batch(count: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.rand((count, 3, 8, 8), generator=generator) * 2 - 1
    return x, torch.arange(count) % 5, torch.randn((count, 3, 8, 8), generator=generator)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("index", range(len(METRICS)), ids=_names(2))
def test_non_finite_inputs_are_refused(index, bad):
    metric, kwargs = _calls(2)[index]
    x, targets, attributions = _batch()
    x[1, 2, 3, 4] = bad
    with pytest.raises(SpmmInputError, match=r"inputs of sample\(s\) \[1\] hold NaN or inf values"):
        metric(TinyConvNet().eval(), x, targets, attributions, **kwargs)


@pytest.mark.parametrize("index", range(len(METRICS)), ids=_names(0))
def test_an_empty_batch_is_refused(index):
    metric, kwargs = _calls(0)[index]
    x, targets, attributions = _batch(0)
    with pytest.raises(SpmmInputError, match="empty batch"):
        metric(TinyConvNet().eval(), x, targets, attributions, **kwargs)


WITH_BASELINE = [name for name in METRICS if "baseline" in metric_parameters(name)]
BAD_BASELINES = [
    (float("nan"), "got nan"), (float("inf"), "got inf"), (None, "got None"), (True, "got True"),
    (torch.full((3, 8, 8), float("nan")), "tensor with NaN or inf"), (torch.zeros(3, 8, 8, dtype=torch.long), "torch.int64 tensor"),
    ("noise", "unknown baseline 'noise'"), (UniformNoise, "got <class"),
]


@pytest.mark.parametrize("baseline, message", BAD_BASELINES, ids=[m for _, m in BAD_BASELINES])
@pytest.mark.parametrize("name", WITH_BASELINE)
def test_a_baseline_that_is_not_a_finite_value_is_refused_when_the_metric_is_made(name, baseline, message):
    with pytest.raises(SpmmInputError, match=message):
        METRICS[name](baseline=baseline)


@pytest.mark.parametrize("low, high", [(1.0, -1.0), (0.5, 0.5), (float("nan"), 1.0), (-1.0, float("inf"))])
def test_noise_bounds_must_be_finite_and_ordered(low, high):
    with pytest.raises(SpmmInputError, match="finite low < high"):
        Infidelity(low=low, high=high)
    with pytest.raises(SpmmInputError, match="finite low < high"):
        FaithfulnessCorrelation(baseline=UniformNoise(low, high))


def _state(model: torch.nn.Module) -> tuple[dict, list[bool]]:
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()])


@pytest.mark.parametrize("index", range(len(METRICS)), ids=_names(4))
def test_a_model_in_training_mode_is_scored_in_eval_mode_with_one_warning(index):
    """Dropout and batch statistics would make the score random: the metric scores the eval model
    (the same score as for model.eval()), says so once, and restores flags and buffers."""
    metric, kwargs = _calls(4)[index]
    torch.manual_seed(0)
    model = TinyConvNet(norm=True, dropout=0.5)
    model.norm.running_mean.normal_(0, 0.3)
    model.train()
    model.norm.train(False)  # a mix of flags, which must come back as they were
    x, targets, attributions = _batch(4)
    before = _state(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = metric(model, x, targets, attributions, **kwargs).scores
    notes = [str(w.message) for w in caught if "training mode" in str(w.message)]
    assert notes == [f"the model is in training mode (dropout, batch statistics): {metric.name} scores it in eval mode "
                     "and restores its mode afterwards; call model.eval() to silence this"]
    after = _state(model)
    assert after[1] == before[1]
    assert all(torch.equal(after[0][k], v) for k, v in before[0].items())
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = metric(model, x, targets, attributions, **kwargs).scores
    torch.testing.assert_close(scores, expected, equal_nan=True)


def test_flags_are_restored_when_the_metric_fails():
    model = TinyConvNet(dropout=0.5).train()
    x, _, attributions = _batch()
    with pytest.warns(UserWarning, match="training mode"), pytest.raises(SpmmInputError, match="target index out of range"):
        DeletionAUC(groups_per_step=4)(model, x, torch.tensor([0, 9]), attributions, groups=PATCHES)
    assert all(module.training for module in model.modules())


@pytest.mark.parametrize("radius", [0.0, -0.1, float("inf"), float("nan"), True])
def test_max_sensitivity_needs_a_finite_positive_radius(radius):
    with pytest.raises(SpmmInputError, match="radius must be > 0 and finite"):
        MaxSensitivity(radius=radius)


@pytest.mark.parametrize("index", range(len(METRICS)), ids=_names(2))
def test_a_model_on_the_meta_device_is_refused(index):
    metric, kwargs = _calls(2)[index]
    x, targets, attributions = _batch()
    with pytest.raises(SpmmInputError, match=r"weights are on the meta device, without values \(conv.weight, 4 in all\)"):
        metric(TinyConvNet().to("meta"), x, targets, attributions, **kwargs)


@pytest.mark.parametrize("index", range(len(METRICS)), ids=_names(2))
def test_a_model_made_under_inference_mode_is_scored_unless_the_metric_re_explains(index):
    """Forward passes work on inference tensors; re-explaining needs autograd, so those metrics refuse first."""
    metric, kwargs = _calls(2)[index]
    x, targets, attributions = _batch()
    torch.manual_seed(0)
    model = TinyConvNet().eval()
    with torch.inference_mode():
        frozen = TinyConvNet().eval()
        frozen.load_state_dict(model.state_dict())
    if "explain_fn" in kwargs:
        with pytest.raises(SpmmInputError, match=r"made under torch.inference_mode\(\)"):
            metric(frozen, x, targets, attributions, **kwargs)
    else:
        torch.testing.assert_close(metric(frozen, x, targets, attributions, **kwargs).scores,
                                   metric(model, x, targets, attributions, **kwargs).scores, equal_nan=True)
