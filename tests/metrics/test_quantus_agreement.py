"""Our metrics against Quantus 0.6.0 on the same tiny model, inputs, labels, attributions and
perturbations.  Deterministic settings agree to 1e-4; where Quantus draws noise we hand it the
same torch noise through its ``perturb_func``.  Deliberate differences are documented per test."""

import numpy as np
import pytest
import torch

import spmm
from spmm.metrics import (
    DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Focus, Infidelity, MaxSensitivity,
    MonotonicityCorrelation, RandomLogit, explainer, square_patches,
)
from tests.metrics.conftest import content_ids, streams_for

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

quantus = pytest.importorskip("quantus", reason="Quantus (test-only dependency) is not installed")

PIXELS = square_patches((1, 8, 8), 1)
QUANTUS_COMMON = {"disable_warnings": True, "display_progressbar": False}


@pytest.fixture
def batch(cnn):
    generator = torch.Generator().manual_seed(7)
    x = torch.rand((4, 1, 8, 8), generator=generator) * 2 - 1
    y = torch.tensor([0, 1, 1, 0])
    a = torch.randn((4, 1, 8, 8), generator=generator)
    return cnn, x, y, a


def _quantus(metric, model, x, y, a, **kwargs):
    return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu", **kwargs), dtype=float)


def test_faithfulness_estimate_agrees(batch):
    model, x, y, a = batch
    ours = FaithfulnessEstimate(groups_per_step=4, baseline=0.0, abs=True)(model, x, y, a, groups=PIXELS).scores
    theirs = _quantus(quantus.FaithfulnessEstimate(features_in_step=4, perturb_baseline=0.0, abs=True, normalise=False, **QUANTUS_COMMON), model, x, y, a)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


def test_monotonicity_correlation_agrees_with_a_constant_baseline(batch):
    # With a constant baseline both are deterministic; with "uniform" both draw noise from their own RNG.
    model, x, y, a = batch
    # Quantus scores this metric on softmax probabilities by default; so does ours (probability=True).
    ours = MonotonicityCorrelation(groups_per_step=4, samples=2, baseline=0.0, eps=1e-12)(model, x, y, a, groups=PIXELS).scores
    theirs = [
        _quantus(quantus.MonotonicityCorrelation(features_in_step=4, nr_samples=2, perturb_baseline=0.0, eps=1e-12,
                                                 abs=True, normalise=False, **QUANTUS_COMMON), model, x[i:i + 1], y[i:i + 1], a[i:i + 1])[0]
        for i in range(4)
    ]  # one sample per call: Quantus' batched Spearman correlates rows across samples
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


def test_deletion_curve_agrees_with_pixel_flipping(batch):
    model, x, y, a = batch
    ours = DeletionAUC(groups_per_step=8, baseline=0.0, probability=True)(model, x, y, a, groups=PIXELS).extras["curve"]
    theirs = _quantus(quantus.PixelFlipping(features_in_step=8, perturb_baseline=0.0, normalise=False, **QUANTUS_COMMON), model, x, y, a)
    # both on softmax probabilities; our curve starts at the untouched input (step 0), Quantus' after the first step
    np.testing.assert_allclose(ours[:, 1:].numpy(), theirs, atol=1e-4)


def test_max_sensitivity_agrees_with_the_same_noise(batch):
    model, x, y, _ = batch
    grad = explainer("gradient")
    a = grad(model, x, y)
    ours = MaxSensitivity(samples=4, radius=0.05, seed=3)(model, x, y, a, explain_fn=grad).scores
    streams = streams_for(3, content_ids(x), "max_sensitivity")  # no sample ids: known by content

    def same_noise(arr, indices, **kwargs):
        noise = torch.stack([stream.next(x.shape[1:], -0.05, 0.05) for stream in streams])
        return arr + noise.reshape(arr.shape[0], -1).numpy()

    theirs = _quantus(quantus.MaxSensitivity(nr_samples=4, perturb_func=same_noise, normalise=False, abs=False, **QUANTUS_COMMON),
                      model, x, y, a, explain_func=spmm.quantus_explain_func, explain_func_kwargs={"method": "gradient"})
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


def test_random_logit_agrees_for_two_classes(batch):
    # With two classes the "random other class" is determined, so both pick the same one.
    model, x, y, _ = batch
    grad = explainer("gradient")
    a = grad(model, x, y)
    ours = RandomLogit()(model, x, y, a, explain_fn=grad).scores
    theirs = _quantus(quantus.RandomLogit(num_classes=2, similarity_func=quantus.similarity_func.correlation_pearson,
                                          normalise=False, **QUANTUS_COMMON),
                      model, x, y, a, explain_func=spmm.quantus_explain_func, explain_func_kwargs={"method": "gradient"})
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


def test_focus_agrees_on_attributions(batch):
    model, x, y, a = batch
    quadrants = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1], [0, 1, 1, 0]], dtype=torch.bool)
    ours = Focus(times_input=False)(model, x, y, a, groups=square_patches((1, 8, 8), 4), target_groups=quadrants).scores
    theirs = _quantus(quantus.Focus(normalise=False, **QUANTUS_COMMON), model, x, y, a,
                      custom_batch=[tuple(int(v) for v in row) for row in quadrants])
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


def test_faithfulness_correlation_differs_by_design_but_agrees_where_both_are_exact(linear_model, images):
    # Quantus correlates over random pixel subsets (nr_runs × subset_size); ours over every group
    # (SPEC §4: each 56×56 patch).  For a linear model with gradient×input and a zero baseline both
    # measure the drop exactly, so both are 1.
    targets = torch.tensor([0, 1, 2, 0])
    a = (linear_model.weight[:, targets].T.reshape(-1, 1, 8, 8) * images).detach().float()
    ours = FaithfulnessCorrelation(abs=False)(linear_model, images.float(), targets, a, groups=square_patches((1, 8, 8), 2)).scores
    theirs = _quantus(quantus.FaithfulnessCorrelation(nr_runs=20, subset_size=6, perturb_baseline=0.0, abs=False, normalise=False,
                                                      return_aggregate=False, **QUANTUS_COMMON),
                      linear_model.float(), images.float(), targets, a)
    np.testing.assert_allclose(ours.numpy(), 1.0, atol=1e-4)
    np.testing.assert_allclose(theirs, 1.0, atol=1e-4)


def test_infidelity_differs_by_design_optimal_scaling(linear_model, images):
    # Quantus' Infidelity compares a = ⟨attr, x − x̃⟩ with the logit drop b without rescaling (and
    # perturbs patches cumulatively); ours fits β* = Σab/Σa² first (SPEC §4).  The exact gradient
    # gives 0 for both; twice the gradient still gives 0 for ours but not for Quantus.
    targets = torch.tensor([0, 1, 2, 0])
    grad = linear_model.weight[:, targets].T.reshape(-1, 1, 8, 8).detach().float()
    model, x = linear_model.float(), images.float()
    patches = square_patches((1, 8, 8), 4)
    q_metric = quantus.Infidelity(perturb_patch_sizes=[4], n_perturb_samples=2, perturb_baseline="uniform", **QUANTUS_COMMON)
    for scale, quantus_zero in ((1.0, True), (2.0, False)):
        ours = Infidelity(draws=2)(model, x, targets, scale * grad, groups=patches).scores
        theirs = _quantus(q_metric, model, x, targets, scale * grad)
        np.testing.assert_allclose(ours.numpy(), 0.0, atol=1e-6)
        assert np.allclose(theirs, 0.0, atol=1e-6) == quantus_zero
