"""seed= makes every method reproducible and leaves the global generators as they were."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import spmm
from spmm.errors import SpmmParameterError
from tests.reliability.tiny import TinyConvNet, fast_params, seeded_explainer

STOCHASTIC = ["smoothgrad", "smooth_pullback", "fusiongrad", "fusion_pullback", "gradient_shap", "pullback_shap"]


def _global_states() -> tuple:
    numpy_state = np.random.get_state()
    return torch.get_rng_state(), numpy_state[1].copy(), numpy_state[2:], random.getstate()


def _assert_same_states(before: tuple, after: tuple) -> None:
    assert torch.equal(before[0], after[0]), "torch's CPU generator was changed"
    assert np.array_equal(before[1], after[1]) and before[2] == after[2], "NumPy's global generator was changed"
    assert before[3] == after[3], "Python's random generator was changed"


@pytest.mark.parametrize("method", spmm.list_methods())
def test_same_seed_gives_identical_attributions_and_restores_global_generators(method):
    attributions = seeded_explainer(method)
    before = _global_states()
    first, second = attributions(7), attributions(7)
    _assert_same_states(before, _global_states())
    assert torch.equal(first, second)


@pytest.mark.parametrize("method", STOCHASTIC)
def test_different_seeds_give_different_draws(method):
    attributions = seeded_explainer(method)
    assert not torch.equal(attributions(0), attributions(1))


def test_seed_does_not_depend_on_the_global_generators():
    """Captum's GradientShap draws from NumPy's global generator: the seed must cover it."""
    model = TinyConvNet().eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    np.random.seed(1)
    random.seed(1)
    first = spmm.explain(model, x, 1, "gradient_shap", seed=3, **fast_params("gradient_shap", model)).attributions
    np.random.seed(2)
    random.seed(2)
    torch.manual_seed(2)
    second = spmm.explain(model, x, 1, "gradient_shap", seed=3, **fast_params("gradient_shap", model)).attributions
    assert torch.equal(first, second)


def test_generators_are_restored_when_the_method_fails():
    model = TinyConvNet().eval()
    x = torch.randn(1, 3, 8, 8)
    before = _global_states()
    with pytest.raises(spmm.SpmmInputError, match="pass layer="):
        spmm.explain(model, x, 0, "guided_gradcam", seed=0)
    _assert_same_states(before, _global_states())


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_invalid_seed(seed):
    with pytest.raises(SpmmParameterError, match=r"seed must be None or an integer in \[0, 2\*\*32\)"):
        spmm.explain(TinyConvNet().eval(), torch.randn(1, 3, 8, 8), 0, seed=seed)


def test_numpy_integer_seed_is_an_integer_seed():
    model = TinyConvNet().eval()
    x = torch.randn(1, 3, 8, 8)
    params = fast_params("smoothgrad", model)
    a = spmm.explain(model, x, 0, "smoothgrad", seed=np.int64(5), **params).attributions
    b = spmm.explain(model, x, 0, "smoothgrad", seed=5, **params).attributions
    assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", STOCHASTIC)
def test_same_seed_on_cuda_gives_identical_attributions_and_restores_the_cuda_generator(method):
    model = TinyConvNet().eval().cuda()
    x = (torch.rand(2, 3, 8, 8) * 2 - 1).cuda()
    params = fast_params(method, model)
    before = torch.cuda.get_rng_state()
    first = spmm.explain(model, x, 1, method, seed=7, **params).attributions
    second = spmm.explain(model, x, 1, method, seed=7, **params).attributions
    assert torch.equal(torch.cuda.get_rng_state(), before), "the CUDA generator was changed"
    assert torch.equal(first, second)
