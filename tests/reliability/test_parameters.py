"""Every method parameter is checked before any work; the error states the valid range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spmm
from spmm.errors import SpmmParameterError
from spmm.temperatures import MIN_TEMPERATURE, Temperatures
from tests.reliability.tiny import TinyConvNet

INVALID = [
    ("integrated_gradients", {"steps": 0}, r"integrated_gradients steps must be an integer >= 1, got 0"),
    ("integrated_pullbacks", {"steps": 2.5}, r"steps must be an integer >= 1, got 2\.5"),
    ("integrated_gradients", {"batch_size": 0}, r"batch_size must be an integer >= 1 or None"),
    ("integrated_gradients", {"baseline": float("nan")}, r"baseline must be a finite number"),
    ("integrated_gradients", {"baseline": torch.full((1, 3, 8, 8), float("inf"))}, r"baseline must be a finite"),
    ("smoothgrad", {"samples": 0}, r"smoothgrad samples must be an integer >= 1, got 0"),
    ("smooth_pullback", {"noise": -1}, r"noise must be a finite number >= 0, got -1"),
    ("smoothgrad", {"noise": float("inf")}, r"noise must be a finite number >= 0, got inf"),
    ("smoothgrad", {"samples": True}, r"samples must be an integer >= 1, got True"),
    ("fusiongrad", {"model_samples": 0}, r"fusiongrad model_samples must be an integer >= 1, got 0"),
    ("fusion_pullback", {"input_samples": -3}, r"input_samples must be an integer >= 1"),
    ("fusiongrad", {"weight_noise": float("nan")}, r"weight_noise must be a finite number >= 0"),
    ("gradient_shap", {"samples": 0}, r"gradient_shap samples must be an integer >= 1"),
    ("pullback_shap", {"baseline_draws": -1}, r"baseline_draws must be an integer >= 0"),
    ("gradient_shap", {"baselines": np.zeros((2, 3, 8, 8))}, r"baselines must be None or a tensor"),
    ("pullback_ascent", {"step_size": float("inf")}, r"step_size must be a finite number > 0, got inf"),
    ("gradient_ascent", {"step_size": 0.0}, r"step_size must be a finite number > 0, got 0\.0"),
    ("pullback_ascent", {"steps": 0}, r"steps must be an integer >= 1, got 0"),
    ("pullback_ascent", {"clip": "sometimes"}, r"clip must be one of \['every', 'last', 'none'\]"),
    ("pullback_ascent", {"bounds": (1.0, -1.0)}, r"bounds must be None or \(low, high\) with finite low < high"),
    ("deeplift", {"baseline": float("-inf")}, r"deeplift baseline must be a finite number"),
    ("guided_gradcam", {"layer": "conv"}, r"layer must be an nn.Module"),
    ("guided_pb_cam", {"interpolate_mode": "cubic"}, r"interpolate_mode must be one of"),
]


class CountingNet(TinyConvNet):
    """Counts forward passes, to show that a bad parameter stops the call before any work."""

    calls = 0

    def forward(self, x):
        CountingNet.calls += 1
        return super().forward(x)


@pytest.mark.parametrize("method,params,message", INVALID, ids=[f"{m} {sorted(p)[0]}" for m, p, _ in INVALID])
def test_invalid_parameter_is_refused_before_any_forward_pass(method, params, message):
    model = CountingNet().eval()
    CountingNet.calls = 0
    with pytest.raises(SpmmParameterError, match=message):
        spmm.explain(model, torch.randn(1, 3, 8, 8), 0, method, **params)
    assert CountingNet.calls == 0


@pytest.mark.parametrize(
    "method,numpy_params",
    [
        ("integrated_gradients", {"steps": np.int64(4), "baseline": np.float32(0.25)}),
        ("smoothgrad", {"samples": np.int32(3), "noise": np.float64(0.1), "batch_size": np.uint8(2)}),
        ("fusiongrad", {"model_samples": np.int16(2), "input_samples": np.int64(2), "weight_noise": np.float32(0.1)}),
        ("pullback_ascent", {"steps": np.int64(2), "step_size": np.float32(3.0), "bounds": (np.float32(-1), np.int8(1))}),
    ],
)
def test_numpy_scalars_act_like_python_numbers(method, numpy_params):
    model = TinyConvNet().eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    python_params = {
        k: tuple(v.item() for v in value) if isinstance(value, tuple) else value.item()
        for k, value in numpy_params.items()
    }
    from_numpy = spmm.explain(model, x, 1, method, seed=0, **numpy_params)
    from_python = spmm.explain(model, x, 1, method, seed=0, **python_params)
    assert torch.equal(from_numpy.attributions, from_python.attributions)
    assert all(type(from_numpy.params[k]) is type(from_python.params[k]) for k in numpy_params)


@pytest.mark.parametrize("name", Temperatures.names())
@pytest.mark.parametrize("value", [1e-300, MIN_TEMPERATURE / 2, -0.5, float("nan"), float("inf"), "0.6"])
def test_invalid_temperature_is_refused(name, value):
    with pytest.raises(SpmmParameterError, match=rf"temperature '{name}' must be .*least {MIN_TEMPERATURE:g}"):
        spmm.explain(TinyConvNet().eval(), torch.randn(1, 3, 8, 8), 0, temperatures={name: value})
    with pytest.raises(SpmmParameterError, match=f"temperature '{name}'"):
        spmm.pullback_mode(**{name: value})


@pytest.mark.parametrize("name", [n for n in Temperatures.names() if n != "attention"])
def test_zero_is_the_hard_gate_and_the_floor_gives_finite_gradients(name):
    model = TinyConvNet().eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    for value in (0, MIN_TEMPERATURE, np.float32(MIN_TEMPERATURE)):
        attributions = spmm.explain(model, x, 1, temperatures={name: value}).attributions
        assert torch.isfinite(attributions).all()


def test_relu_and_max_pool_at_the_floor_give_the_plain_gradient():
    """At T = MIN_TEMPERATURE the softened gates are steps: SoftPullback is the gradient."""
    model = TinyConvNet().double().eval()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64) * 2 - 1
    tiny = {"relu": MIN_TEMPERATURE, "max_pool": MIN_TEMPERATURE}
    soft = spmm.explain(model, x, 3, "soft_pullback", temperatures=tiny).attributions
    xg = x.clone().requires_grad_(True)
    (exact,) = torch.autograd.grad(model(xg)[:, 3].sum(), xg)
    torch.testing.assert_close(soft, exact)


def test_unknown_temperature_names_the_valid_ones():
    with pytest.raises(SpmmParameterError, match=r"unknown temperature\(s\) \['reul'\]; valid names"):
        spmm.explain(TinyConvNet().eval(), torch.randn(1, 3, 8, 8), 0, temperatures={"reul": 0.5})



@pytest.mark.parametrize(
    "numpy_target,python_target",
    [(np.int64(3), 3), ([np.int32(1), np.int64(4)], [1, 4]), (np.array([2, 0]), [2, 0]), (np.uint8(1), 1)],
)
def test_numpy_integer_targets_act_like_python_ints(numpy_target, python_target):
    model = TinyConvNet().eval()
    x = torch.randn(2, 3, 8, 8)
    expected = spmm.explain(model, x, python_target, "gradient").attributions
    torch.testing.assert_close(spmm.explain(model, x, numpy_target, "gradient").attributions, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "target,message",
    [(np.array([0.5, 1.0]), "target array must hold integer class indices, got dtype float64"),
     (np.float64(1.0), "target must be an int"), (torch.tensor([True, False]), "integer class indices, got dtype torch.bool")],
)
def test_non_integer_targets_are_refused(target, message):
    with pytest.raises(spmm.SpmmInputError, match=message):
        spmm.explain(TinyConvNet().eval(), torch.randn(2, 3, 8, 8), target)
