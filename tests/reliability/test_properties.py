"""Property-based: on tiny models with random shapes, dtypes, targets, temperatures and method
parameters, ``spmm.explain`` either returns finite attributions shaped like the inputs or raises
an SpmmInputError — nothing else (no NaN, no error from deep inside, no wrong shape)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import spmm
from spmm import SpmmInputError
from spmm.temperatures import MIN_TEMPERATURE, Temperatures


class ConvNet(nn.Module):
    """(B, C, S, S) -> (B, K): conv, eval batch norm, ReLU, max-pool, linear."""

    def __init__(self, channels: int, size: int, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * (size // 2) ** 2, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(F.max_pool2d(F.relu(self.norm(self.conv(x))), 2).flatten(1))


class GatedMlp(nn.Module):
    """(B, C, S, S) -> (B, K): the other gated activations."""

    def __init__(self, channels: int, size: int, classes: int) -> None:
        super().__init__()
        self.a = nn.Linear(channels * size * size, 16)
        self.b = nn.Linear(16, 16)
        self.c = nn.Linear(16, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = F.gelu(self.a(x.flatten(1))) + F.silu(self.a(x.flatten(1)))
        h = F.hardswish(self.b(h)) + F.leaky_relu(h, 0.1) + F.relu6(h)
        return self.c(h)


class Attention(nn.Module):
    """(B, C, S, S) -> (B, K): the S·S pixels as tokens of width C, one attention block."""

    def __init__(self, channels: int, size: int, classes: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(channels, 3 * 8)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        return self.fc(self.norm(F.scaled_dot_product_attention(q, k, v)).mean(1))


ARCHITECTURES = [ConvNet, GatedMlp, Attention]

counts = st.sampled_from([1, 2, 3, 1, 2, 3, 0, -1])  # mostly valid, so that most examples run a method
amounts = st.one_of(st.floats(0.0, 0.5), st.floats(0.0, 0.5), st.sampled_from([-0.1, math.nan, math.inf, 0.0]))
PARAMETERS: dict[str, dict[str, st.SearchStrategy]] = {
    "smoothgrad": {"samples": counts, "noise": amounts, "batch_size": st.one_of(st.none(), counts)},
    "fusiongrad": {"model_samples": counts, "input_samples": counts, "weight_noise": amounts, "noise": amounts},
    "integrated_gradients": {"steps": counts, "baseline": amounts, "batch_size": st.one_of(st.none(), counts)},
    "gradient_shap": {"samples": counts, "baseline_draws": counts, "noise": amounts},
    "gradient_ascent": {"steps": counts, "step_size": st.one_of(st.floats(-1, 5), st.just(math.inf)),
                        "clip": st.sampled_from(["every", "last", "none", "sometimes"])},
    "deeplift": {"baseline": amounts},
}
FAMILY = {
    "smooth_pullback": "smoothgrad", "fusion_pullback": "fusiongrad", "integrated_pullbacks": "integrated_gradients",
    "pullback_shap": "gradient_shap", "pullback_ascent": "gradient_ascent", "pb_deeplift": "deeplift",
}
temperature_values = st.one_of(
    st.just(0.0), st.floats(MIN_TEMPERATURE, 10.0), st.floats(MIN_TEMPERATURE, 10.0),
    st.sampled_from([1e-300, -1.0, math.nan, MIN_TEMPERATURE]),
)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    channels, size = draw(st.integers(1, 3)), draw(st.integers(2, 6))
    batch, classes = draw(st.integers(1, 3)), draw(st.integers(2, 5))
    method = draw(st.sampled_from(spmm.list_methods()))
    family = PARAMETERS.get(FAMILY.get(method, method), {})  # all drawn: sample counts stay small
    return {
        "architecture": draw(st.sampled_from(ARCHITECTURES)),
        "dtype": draw(st.sampled_from([torch.float32, torch.float64, torch.bfloat16])),
        "shape": (batch, channels, size, size),
        "classes": classes,
        "seed": draw(st.integers(0, 2**16)),
        "nan": draw(st.integers(0, 7)) == 0,
        "target": draw(st.one_of(
            st.integers(0, classes - 1), st.integers(0, classes - 1), st.sampled_from([-1, classes, [0] * (batch + 1)]),
            st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch),
        )),
        "method": method,
        "params": {name: draw(strategy) for name, strategy in family.items()},
        "temperatures": draw(st.dictionaries(st.sampled_from(Temperatures.names()), temperature_values, max_size=3)),
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_explain_gives_a_finite_result_of_the_input_shape_or_an_input_error(case):
    torch.manual_seed(case["seed"])
    channels, size = case["shape"][1], case["shape"][2]
    model = case["architecture"](channels, size, case["classes"]).to(case["dtype"]).eval()
    x = (torch.rand(case["shape"]) * 2 - 1).to(case["dtype"])
    if case["nan"]:
        x.view(-1)[0] = math.nan
    params = dict(case["params"])
    if case["method"] in ("guided_gradcam", "guided_pb_cam") and isinstance(model, ConvNet):
        params["layer"] = model.conv
    try:
        explanation = spmm.explain(
            model, x, case["target"], case["method"], temperatures=case["temperatures"], seed=case["seed"], **params
        )
    except SpmmInputError as error:
        event(f"refused: {type(error).__name__}")
        return
    event("explained")
    assert explanation.attributions.shape == x.shape
    assert explanation.attributions.dtype == x.dtype
    assert torch.isfinite(explanation.attributions).all()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_tiny_models_are_explained_without_error(architecture):
    """The property above must not pass by refusing everything: valid settings give results."""
    model = architecture(3, 4, 5).eval()
    x = torch.rand(2, 3, 4, 4) * 2 - 1
    attributions = spmm.explain(model, x, [0, 4], "soft_pullback").attributions
    assert attributions.shape == x.shape and torch.isfinite(attributions).all() and attributions.abs().sum() > 0
