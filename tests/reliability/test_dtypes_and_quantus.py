"""quantus_explain_func refuses what it would silently mangle; low-precision models work with the
smoothing methods (noise in the input's dtype)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spmm
from spmm import SpmmInputError
from tests.reliability.low_precision import assert_close_to_float32
from tests.reliability.tiny import TinyConvNet


@pytest.fixture
def model():
    return TinyConvNet().eval()


@pytest.mark.parametrize("targets", [np.array([1.5, 2.0]), np.array([0.0, np.nan]), torch.tensor([0.2, 1.0])])
def test_non_integral_targets_are_refused(model, targets):
    with pytest.raises(SpmmInputError, match="targets must be integral class indices"):
        spmm.quantus_explain_func(model, np.zeros((2, 3, 8, 8), np.float32), targets, method="gradient")


def test_whole_number_float_targets_are_indices(model):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    from_floats = spmm.quantus_explain_func(model, x, np.array([3.0, 1.0]), method="gradient")
    from_ints = spmm.quantus_explain_func(model, x, np.array([3, 1]), method="gradient")
    np.testing.assert_array_equal(from_floats, from_ints)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.bool_])
def test_integer_images_are_refused(model, dtype):
    with pytest.raises(SpmmInputError, match="needs float inputs .* uint8 0–255"):
        spmm.quantus_explain_func(model, np.full((1, 3, 8, 8), 200).astype(dtype), np.array([0]), method="gradient")


def test_float64_images_are_cast_to_the_model_dtype(model):
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 8, 8))
    result = spmm.quantus_explain_func(model, x, np.array([0, 4]), method="gradient")
    xt = torch.from_numpy(x).float().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(xt)[torch.arange(2), torch.tensor([0, 4])].sum(), xt)
    np.testing.assert_allclose(result, expected.numpy(), rtol=1e-6, atol=1e-7)


LOW_PRECISION_CASES = [
    # method, parameters with noise, parameters whose draws are the same in every dtype
    ("smoothgrad", {"samples": 4}, {"samples": 4}),
    ("smooth_pullback", {"samples": 4}, {"samples": 4}),
    ("fusiongrad", {"model_samples": 2, "input_samples": 2}, {"model_samples": 2, "input_samples": 1, "weight_noise": 0.0, "noise": 0.0}),
    ("fusion_pullback", {"model_samples": 2, "input_samples": 2}, {"model_samples": 2, "input_samples": 1, "weight_noise": 0.0, "noise": 0.0}),
    ("gradient_shap", {"samples": 4}, {"samples": 4, "baselines": torch.zeros(1, 3, 8, 8)}),
    ("integrated_gradients", {"steps": 4}, {"steps": 4}),
]


@pytest.mark.parametrize("method,noisy,comparable", LOW_PRECISION_CASES, ids=[c[0] for c in LOW_PRECISION_CASES])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_models_with_noise_and_path_methods(method, noisy, comparable, dtype):
    """A bfloat16/float16 conv net: no dtype errors, same dtype out, finite, and (with draws that do
    not depend on the dtype) as close to the float32 result as the format's rounding allows."""
    torch.manual_seed(0)
    reference = TinyConvNet().eval()
    low = TinyConvNet().eval()
    low.load_state_dict(reference.state_dict())
    low.to(dtype)
    x = (torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(dtype)
    result = spmm.explain(low, x, 1, method, seed=0, **noisy).attributions
    assert result.dtype == dtype and torch.isfinite(result).all()
    low_params = {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in comparable.items()}
    result = spmm.explain(low, x, 1, method, seed=0, **low_params).attributions
    full = spmm.explain(reference, x.float(), 1, method, seed=0, **comparable).attributions
    conv = reference.conv
    assert_close_to_float32(result, full, dtype, hard_gates=not spmm.methods.registry.get_method(method).pullback,
                            receptive_field=conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
