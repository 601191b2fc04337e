"""Every method on a bfloat16 / float16 model (CPU): no dtype errors, attributions in the model's
dtype, and as close to the float32 model's result on the same input values with the same seed as
the format's rounding allows (random draws are made in float32 from (seed, the sample's values) and
cast, sums of many gradients kept in float32); the bounds are derived in
:mod:`tests.reliability.low_precision`."""

from __future__ import annotations

import pytest
import torch

import spmm
from tests.reliability.low_precision import assert_close_to_float32
from tests.reliability.tiny import TinyConvNet, fast_params


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
    params = fast_params(method, reference)
    result = spmm.explain(low, x, 1, method, seed=0, **fast_params(method, low)).attributions
    assert result.dtype == dtype and torch.isfinite(result).all()
    full = spmm.explain(reference, x.float(), 1, method, seed=0, **params).attributions
    conv = reference.conv
    assert_close_to_float32(
        result, full, dtype, steps=params.get("steps", 1) if method.endswith("ascent") else 1,
        hard_gates=not spmm.methods.registry.get_method(method).pullback,
        receptive_field=conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1],
    )
