"""torch.compile'd models are refused clearly (the rules intercept eager ops only)."""

from __future__ import annotations

import pytest
import torch

import spmm
from spmm import SpmmInputError
from tests.reliability.tiny import TinyConvNet


def _compiled_module():
    return torch.compile(TinyConvNet().eval())


def _compiled_function():
    model = TinyConvNet().eval()
    return torch.compile(lambda x: model(x))


def _compiled_in_place():
    model = TinyConvNet().eval()
    model.compile()
    return model


COMPILED = [_compiled_module, _compiled_function, _compiled_in_place]


@pytest.mark.parametrize("make", COMPILED, ids=["torch.compile(module)", "torch.compile(function)", "module.compile()"])
@pytest.mark.parametrize("entry", ["explain", "audit"])
def test_compiled_models_are_refused(make, entry):
    model = make()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(SpmmInputError, match="compiled models are not supported yet; pass the eager module"):
        spmm.explain(model, x, 0) if entry == "explain" else spmm.audit(model, x)


def test_the_eager_module_behind_a_compiled_one_is_explained():
    compiled = _compiled_module()
    x = torch.randn(2, 3, 8, 8)
    eager = compiled._orig_mod
    xg = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(eager(xg)[:, 3].sum(), xg)
    torch.testing.assert_close(spmm.explain(eager, x, 3, "gradient").attributions, expected)
