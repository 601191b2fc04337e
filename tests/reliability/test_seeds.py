"""seed= makes every method reproducible and leaves the global generators as they were."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

import spmm
from spmm.errors import SpmmParameterError
from spmm.bench.explainers import bench_explainers
from spmm.bench.runner import Batch, MetricSpec, run_benchmark
from spmm.metrics import Infidelity, MaxSensitivity, RandomLogit, square_patches
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


def test_the_stochastic_list_names_every_method_that_draws():
    """Every method outside STOCHASTIC gives the same attributions for any seed, so the batching tests
    below cover every method that draws."""
    explainers = {method: seeded_explainer(method) for method in spmm.list_methods()}
    drawing = [method for method, attributions in explainers.items() if not torch.equal(attributions(0), attributions(1))]
    assert sorted(drawing) == sorted(STOCHASTIC)


@pytest.mark.parametrize("method", spmm.list_methods())
def test_a_sample_gets_the_same_attributions_alone_in_a_batch_and_in_any_order(method):
    """Draws come from (seed, the sample's values): never from its batch or its position in it."""
    model = TinyConvNet().eval()
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1
    targets = torch.tensor([1, 3, 0, 4])
    params = fast_params(method, model)

    def explain(rows: list[int]) -> torch.Tensor:
        return spmm.explain(model, x[rows], targets[rows], method, seed=11, **params).attributions

    batch = explain([0, 1, 2, 3])
    torch.testing.assert_close(explain([2, 0, 3, 1]), batch[[2, 0, 3, 1]])
    torch.testing.assert_close(explain([3, 3]), batch[[3, 3]])
    for row in range(4):
        torch.testing.assert_close(explain([row]), batch[[row]])


@pytest.mark.parametrize("method", STOCHASTIC)
def test_without_a_seed_torch_manual_seed_reproduces_a_call(method):
    attributions = seeded_explainer(method)
    torch.manual_seed(5)
    first = attributions(None)
    torch.manual_seed(5)
    assert torch.equal(first, attributions(None))
    assert not torch.equal(first, attributions(None))


def test_bench_scores_of_every_stochastic_method_do_not_depend_on_batch_size_or_order(tmp_path):
    """The runner behind ``spmm bench``: the same samples in batches of 4, 1 and 2, in three orders,
    give the same table (explainers as ``spmm bench`` builds them, with its seed)."""
    model = TinyConvNet().eval()
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(6)) * 2 - 1
    targets, ids = torch.tensor([0, 2, 4, 1]), ["cat", "dog", "owl", "fox"]
    explainers = bench_explainers(STOCHASTIC, None, seed=3, params={m: fast_params(m, model) for m in STOCHASTIC})
    metrics = {
        "infidelity": MetricSpec(Infidelity(draws=1, seed=3), {"groups": square_patches((3, 8, 8), 4)}),
        "max_sensitivity": MetricSpec(MaxSensitivity(samples=2, seed=3)),
        "random_logit": MetricSpec(RandomLogit(seed=3)),
    }

    def table(order: list[int], size: int) -> pd.DataFrame:
        batches = [Batch([ids[i] for i in order[s : s + size]], x[order[s : s + size]], targets[order[s : s + size]])
                   for s in range(0, len(order), size)]
        scores = run_benchmark(model, batches, explainers, metrics, tmp_path / f"{order}-{size}", progress=False)
        return scores.sort_values(["sample", "explainer", "metric"]).reset_index(drop=True)

    reference = table([0, 1, 2, 3], 4)
    assert len(reference) == 4 * len(STOCHASTIC) * len(metrics) and reference["score"].notna().all()
    for order, size in (([0, 1, 2, 3], 1), ([3, 1, 0, 2], 2), ([2, 0, 3, 1], 4)):
        pd.testing.assert_frame_equal(table(order, size), reference, rtol=1e-5, atol=1e-6)
