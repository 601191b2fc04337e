"""explain and audit never change a model in training mode: buffers, parameters and flags stay
bit-identical, and one warning per call says why the result is random."""

from __future__ import annotations

import warnings

import pytest
import torch

import spmm
from tests.reliability.tiny import TinyConvNet, fast_params


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in [*model.named_parameters(), *model.named_buffers()]}


def _assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = dict([*model.named_parameters(), *model.named_buffers()])
    assert after.keys() == before.keys()
    changed = [name for name, value in before.items() if not torch.equal(after[name], value)]
    assert changed == [], f"changed: {changed}"


def _training_warnings(caught: list) -> list:
    return [w for w in caught if "training mode" in str(w.message)]


@pytest.mark.parametrize("method", spmm.list_methods())
def test_explain_in_train_mode_leaves_the_model_bit_identical(method):
    model = TinyConvNet(norm=True, dropout=0.3).train()
    model.norm.momentum = 0.5  # large updates, so that any leak shows
    before = _snapshot(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spmm.explain(model, torch.rand(4, 3, 8, 8) * 2 - 1, 1, method, **fast_params(method, model))
    _assert_unchanged(model, before)
    assert all(module.training for module in model.modules()), "train/eval flags must not be flipped"
    assert len(_training_warnings(caught)) == 1


def test_audit_in_train_mode_leaves_the_model_bit_identical():
    model = TinyConvNet(norm=True, dropout=0.3).train()
    before = _snapshot(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = spmm.audit(model, torch.randn(4, 3, 8, 8))
    _assert_unchanged(model, before)
    assert model.training and len(_training_warnings(caught)) == 1
    assert "batch_norm (training statistics)" in report.unhandled


def test_a_submodule_in_train_mode_counts_as_training():
    model = TinyConvNet(norm=True).eval()
    model.norm.train()
    before = _snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        spmm.explain(model, torch.randn(2, 3, 8, 8), 0, "smoothgrad", samples=3)
    _assert_unchanged(model, before)
    assert model.norm.training and not model.training


def test_buffers_are_restored_when_the_method_fails():
    model = TinyConvNet(norm=True).train()
    before = _snapshot(model)
    with pytest.warns(UserWarning, match="training mode"), pytest.raises(spmm.SpmmInputError, match="one score per"):
        spmm.explain(model, torch.randn(2, 3, 8, 8), lambda output: output, "gradient")  # fails after a forward
    _assert_unchanged(model, before)


def test_the_result_uses_the_training_forward_pass():
    """Explained as it is: in train mode batch norm normalises with the batch statistics."""
    model = TinyConvNet(norm=True).train()
    x = torch.randn(4, 3, 8, 8)
    with pytest.warns(UserWarning, match="training mode"):
        explanation = spmm.explain(model, x, 2, "gradient")
    xg = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(xg)[:, 2].sum(), xg)
    torch.testing.assert_close(explanation.attributions, expected)


def test_eval_mode_gives_no_warning():
    model = TinyConvNet(norm=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spmm.explain(model, torch.randn(2, 3, 8, 8), 0, "gradient")


def test_metrics_leave_a_model_in_train_mode_as_it_was():
    from spmm.metrics import DeletionAUC, MaxSensitivity, explainer, square_patches

    model = TinyConvNet(norm=True).train()
    before = _snapshot(model)
    x, targets = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    attributions = torch.randn_like(x)
    with pytest.warns(UserWarning, match="training mode"):
        MaxSensitivity(samples=2)(model, x, targets, attributions, explain_fn=explainer("gradient"))
    with pytest.warns(UserWarning, match="training mode"):
        DeletionAUC(groups_per_step=16)(model, x, targets, attributions, groups=square_patches((3, 8, 8), 1))
    _assert_unchanged(model, before)
