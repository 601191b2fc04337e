"""torch.compile'd models: explained with the eager result; audited only as eager modules."""

from __future__ import annotations

import pytest
import torch

import spmm
from spmm import SpmmInputError
from tests.reliability.tiny import TinyConvNet

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')


@pytest.fixture(autouse=True)
def _fresh_compile_caches():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compiled_module(model):
    return torch.compile(model, backend="aot_eager")


def _compiled_function(model):
    return torch.compile(lambda x: model(x), backend="aot_eager")


def _compiled_in_place(model):
    model.compile(backend="aot_eager")
    return model


COMPILED = [_compiled_module, _compiled_function, _compiled_in_place]
IDS = ["torch.compile(module)", "torch.compile(function)", "module.compile()"]


@pytest.mark.parametrize("make", COMPILED, ids=IDS)
def test_compiled_models_give_the_eager_pullback(make):
    torch.manual_seed(0)
    model = TinyConvNet().eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    xg = x.clone().requires_grad_(True)
    with spmm.pullback_mode():
        score = model(xg)[:, 3].sum()
    (expected,) = torch.autograd.grad(score, xg)
    torch.testing.assert_close(spmm.explain(make(model), x, 3).attributions, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("make", COMPILED, ids=IDS)
def test_compiled_models_are_not_audited(make):
    with pytest.raises(SpmmInputError, match="compiled models are not supported here; pass the eager module"):
        spmm.audit(make(TinyConvNet().eval()), torch.randn(1, 3, 8, 8))
