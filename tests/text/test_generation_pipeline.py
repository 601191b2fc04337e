"""Generation goes through ``Explainable.explain`` (the hooks of ``LanguageModality``) and keeps its
cost: with a method whose attribution is one input gradient, every row of a continuation shares one
forward pass of the language model; other methods run ``rows_per_pass`` rows per pass."""

from __future__ import annotations

import pytest
import torch

import spmm
from spmm.rows import RowPlan


@pytest.fixture(scope="module")
def lm():
    return spmm.load("tiny-lm")


def _forwards(lm, call):
    count = [0]
    handle = lm.lm.register_forward_pre_hook(lambda module, args, kwargs: count.__setitem__(0, count[0] + 1),
                                             with_kwargs=True)
    try:
        result = call()
    finally:
        handle.remove()
    return count[0], result


CONTINUATION = " very good indeed"


def _rows(lm) -> int:
    return len(lm.tokenizer(CONTINUATION, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("method", ["gradient", "soft_pullback"])
def test_rows_share_one_forward(lm, method):
    forwards, ex = _forwards(lm, lambda: lm.explain("the movie was", spmm.Continuation(CONTINUATION), method))
    assert len(ex.row_tokens) == _rows(lm) > 2 and forwards == 1


def test_batched_rows_run_rows_per_pass_at_a_time(lm):
    target = spmm.Continuation(CONTINUATION)
    forwards, batched = _forwards(lm, lambda: lm.explain("the movie was", target, "gradient", strategy="batched",
                                                         rows_per_pass=2))
    passes = -(-_rows(lm) // 2)
    assert forwards == 2 * passes  # each pass of ≤ 2 rows: the output, then the method's forward and backward
    shared = lm.explain("the movie was", target, "gradient")
    torch.testing.assert_close(batched.matrix, shared.matrix, equal_nan=True, rtol=1e-4, atol=1e-6)


def test_the_modality_plans_rows_only_for_continuations(lm):
    prepared = lm.prepare("the movie was")
    assert lm.modality.plan_rows(prepared, 42, "gradient", {}) is None
    plan = lm.modality.plan_rows(prepared, spmm.Continuation(" good"), "integrated_pullbacks", {"steps": 2})
    assert isinstance(plan, RowPlan) and plan.rows == 1 and not plan.shared and plan.params["steps"] == 2
    assert plan.prepared.inputs.shape[:2] == (1, len(prepared.context["batch"].input_ids[0]) + 1)
    with pytest.raises(spmm.SpmmInputError, match="rows_per_pass and strategy apply"):
        lm.explain("the movie was", " good", strategy="shared")
