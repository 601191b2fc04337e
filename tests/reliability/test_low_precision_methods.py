"""Every method on a bfloat16 / float16 model (CPU): no dtype errors, attributions in the model's
dtype, and close to the float32 model's result on the same input values with the same seed
(random draws are made in float32 from (seed, the sample's values) and cast, sums of many
gradients kept in float32)."""

from __future__ import annotations

import pytest
import torch

import spmm
from tests.reliability.tiny import TinyConvNet, fast_params

PULLBACK_TOLERANCE = 0.03
"""Relative L2 error allowed for SP methods; low precision only perturbs the soft gates."""
GRADIENT_TOLERANCE = 0.15
"""Baselines use hard gates: bfloat16 rounding flips a few ReLUs (0.08 seen for FusionGrad).
Draws that differ between dtypes give 0.2–0.9."""


@pytest.fixture(scope="module")
def reference() -> TinyConvNet:
    torch.manual_seed(0)
    model = TinyConvNet(norm=True).eval()
    model.norm.running_mean.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("method", spmm.list_methods())
def test_every_method_on_a_low_precision_model(reference, method, dtype):
    low = TinyConvNet(norm=True).eval()
    low.load_state_dict(reference.state_dict())
    low.to(dtype)
    x = (torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(dtype)
    result = spmm.explain(low, x, 1, method, seed=0, **fast_params(method, low)).attributions
    assert result.dtype == dtype and torch.isfinite(result).all()
    full = spmm.explain(reference, x.float(), 1, method, seed=0, **fast_params(method, reference)).attributions
    error = ((result.float() - full).norm() / full.norm()).item()
    tolerance = PULLBACK_TOLERANCE if spmm.methods.registry.get_method(method).pullback else GRADIENT_TOLERANCE
    assert error <= tolerance, f"{method} in {dtype}: relative error {error:.3f}"
