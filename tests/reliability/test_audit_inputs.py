"""audit validates its inputs like explain and refuses when it cannot see the graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spmm
from spmm import SpmmInputError
from tests.reliability.tiny import TinyConvNet

BAD_INPUTS = [
    (torch.full((1, 3, 8, 8), float("nan")), "contain NaN"),
    (torch.full((1, 3, 8, 8), float("inf")), "contain Inf"),
    (np.zeros((1, 3, 8, 8), np.float32), "must be a torch.Tensor, got ndarray"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.int64), "floating point, got dtype torch.int64"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.float64), r"model failed on inputs .* dtype torch.float64"),
    (torch.zeros(3, 8, 8), r"model failed on inputs of shape \(3, 8, 8\)"),
    (torch.zeros(0, 3, 8, 8), "empty batch"),
    (torch.zeros(1, 3, 8, 8, device="meta"), "inputs are on the meta device"),
]


@pytest.mark.parametrize("inputs,message", BAD_INPUTS, ids=[m.split(",")[0] for _, m in BAD_INPUTS])
def test_bad_inputs_are_refused_like_explain_refuses_them(inputs, message):
    model = TinyConvNet().eval()
    with pytest.raises(SpmmInputError, match=message):
        spmm.audit(model, inputs)
    with pytest.raises(SpmmInputError, match=message):
        spmm.explain(model, inputs, 0)


def test_audit_inside_inference_mode_is_refused():
    model = TinyConvNet().eval()
    with torch.inference_mode():
        x = torch.randn(1, 3, 8, 8)
        with pytest.raises(SpmmInputError, match=r"inference_mode\(\)"):
            spmm.audit(model, x)
        with pytest.raises(SpmmInputError, match=r"inference_mode\(\)"):
            spmm.explain(model, x, 0)


def test_audit_under_no_grad_sees_the_same_graph():
    model = TinyConvNet().eval()
    x = torch.randn(1, 3, 8, 8)
    expected = spmm.audit(model, x)
    with torch.no_grad():
        report = spmm.audit(model, x)
    assert report.rows == expected.rows
    assert report.handled == {"relu": "relu", "max_pool2d": "max_pool2d"}


def test_inference_tensors_made_earlier_are_explained_and_audited():
    model = TinyConvNet().eval()
    with torch.inference_mode():
        x = torch.randn(2, 3, 8, 8)
    assert spmm.audit(model, x).handled == {"relu": "relu", "max_pool2d": "max_pool2d"}
    xg = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(xg)[:, 1].sum(), xg)
    torch.testing.assert_close(spmm.explain(model, x, 1, "gradient").attributions, expected)


def test_a_model_that_detaches_its_input_is_refused():
    model = TinyConvNet().eval()
    with pytest.raises(SpmmInputError, match="audit could not see the graph"):
        spmm.audit(lambda x: model(x.detach()), torch.randn(1, 3, 8, 8))
