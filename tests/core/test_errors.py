"""Bad input gets a clear SpmmInputError naming the problem."""

import pytest
import torch
from torch import nn

import spmm
from spmm import SpmmInputError


@pytest.fixture
def cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).eval()


def test_target_out_of_range(cnn):
    with pytest.raises(SpmmInputError, match=r"target index 7 is out of range .* 5 outputs"):
        spmm.explain(cnn, torch.randn(2, 3, 8, 8), 7)
    with pytest.raises(SpmmInputError, match="target index -1"):
        spmm.explain(cnn, torch.randn(2, 3, 8, 8), [0, -1])


def test_wrong_number_of_targets(cnn):
    with pytest.raises(SpmmInputError, match="got 3 targets for a batch of 2"):
        spmm.explain(cnn, torch.randn(2, 3, 8, 8), [0, 1, 2])


def test_wrong_rank(cnn):
    with pytest.raises(SpmmInputError, match=r"shape \(2, 8, 8\).*wrong shape or rank"):
        spmm.explain(cnn, torch.randn(2, 8, 8), 0)
    with pytest.raises(SpmmInputError, match="must be batched"):
        spmm.explain(cnn, torch.randn(8), 0)


@pytest.mark.parametrize("value,name", [(float("nan"), "NaN"), (float("inf"), "Inf")])
def test_non_finite_input(cnn, value, name):
    x = torch.randn(1, 3, 8, 8)
    x[0, 1, 2, 3] = value
    with pytest.raises(SpmmInputError, match=f"contain {name}"):
        spmm.explain(cnn, x, 0)


def test_integer_input(cnn):
    with pytest.raises(SpmmInputError, match="floating point, got dtype torch.int64"):
        spmm.explain(cnn, torch.ones(1, 3, 8, 8, dtype=torch.long), 0)


class IgnoresInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(5))

    def forward(self, x):
        return self.bias.expand(x.shape[0], 5) * 1.0


class DetachesInput(nn.Module):
    def forward(self, x):
        return x.detach().flatten(1)[:, :5]


@pytest.mark.parametrize("model", [IgnoresInput().eval(), DetachesInput().eval()], ids=["parameters only", "detached"])
@pytest.mark.parametrize("method", ["gradient", "soft_pullback"])
def test_model_without_differentiable_path(model, method):
    with pytest.raises(SpmmInputError, match="does not depend on the input"):
        spmm.explain(model, torch.randn(2, 3, 4, 4), 1, method)


def test_model_ending_in_softmax_is_explained_by_its_logits_hint(cnn):
    probabilities = nn.Sequential(cnn, nn.Softmax(dim=1)).eval()
    with pytest.raises(SpmmInputError, match="explain its logits"):
        spmm.explain(probabilities, torch.randn(1, 3, 8, 8), 0, "soft_pullback")


def test_unknown_method_and_parameter(cnn):
    with pytest.raises(ValueError, match="unknown method 'soft_pulback'; available: .*soft_pullback"):
        spmm.explain(cnn, torch.randn(1, 3, 8, 8), 0, "soft_pulback")
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['step'\]"):
        spmm.explain(cnn, torch.randn(1, 3, 8, 8), 0, "pullback_ascent", step=3)


def test_callable_target_must_return_one_score_per_sample(cnn):
    with pytest.raises(SpmmInputError, match=r"one score per sample, shape \(2,\); got \(\)"):
        spmm.explain(cnn, torch.randn(2, 3, 8, 8), lambda out: out.sum())


def test_float_target_tensor(cnn):
    with pytest.raises(SpmmInputError, match="integer class indices"):
        spmm.explain(cnn, torch.randn(2, 3, 8, 8), torch.tensor([0.0, 1.0]))
