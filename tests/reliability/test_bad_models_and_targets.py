"""explain on models, targets and settings it cannot use: one line naming the problem and the fix
(or the correct answer), never a traceback from Captum, autograd or the meta device."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import spmm
from spmm import SpmmInputError
from spmm.errors import SpmmParameterError
from tests.reliability.tiny import TinyConvNet, fast_params

X = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1


@pytest.mark.parametrize("compile", ["typo", "", "Inductor", 1, None, 0.0])
def test_compile_must_name_a_torch_compile_backend(compile):
    with pytest.raises(SpmmParameterError, match=r"compile must be True, False or a torch.compile backend name \(.*inductor"):
        spmm.explain(TinyConvNet().eval(), X, 1, compile=compile)


def _linear() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).eval()


@pytest.mark.parametrize("method", ["integrated_gradients", "integrated_pullbacks"])
@pytest.mark.parametrize("shape", [(3, 1, 1), (1, 3, 8, 8), (3, 8, 8), (2, 3, 8, 8), (8,)])
def test_integrated_gradients_broadcasts_a_baseline_to_the_inputs(method, shape):
    """On a linear model IG is (x − b) ⊙ w exactly, for any baseline that broadcasts to the inputs."""
    model = _linear()
    baseline = torch.linspace(-0.5, 0.5, int(np.prod(shape))).view(shape)
    result = spmm.explain(model, X, 2, method, baseline=baseline, steps=4).attributions
    weight = model[1].weight.detach()[2].view(3, 8, 8)
    torch.testing.assert_close(result, (X - baseline.expand_as(X)) * weight)


@pytest.mark.parametrize("method", ["integrated_gradients", "integrated_pullbacks"])
@pytest.mark.parametrize("shape", [(3, 3, 8, 8), (3, 4, 4), (2, 3, 8, 8, 1), (5, 1, 1)])
def test_a_baseline_that_does_not_broadcast_is_refused(method, shape):
    with pytest.raises(SpmmInputError, match=re.escape(f"baseline of shape {tuple(shape)} does not broadcast to the inputs")):
        spmm.explain(TinyConvNet().eval(), X, 1, method, baseline=torch.zeros(shape), steps=2)


@pytest.mark.parametrize("method", ["gradient_shap", "pullback_shap"])
def test_gradient_shap_baselines_must_be_samples_like_the_inputs(method):
    with pytest.raises(SpmmInputError, match=r"baselines must have shape \(N, 3, 8, 8\) .* got \(4, 3, 4, 4\)"):
        spmm.explain(TinyConvNet().eval(), X, 1, method, baselines=torch.zeros(4, 3, 4, 4), samples=2)


class NoConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3 * 8 * 8, 6), nn.Linear(6, 5)
        self.spare = nn.Conv2d(3, 3, 1)  # a conv the forward never calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


@pytest.mark.parametrize("method", ["guided_gradcam", "guided_pb_cam"])
def test_a_grad_cam_layer_without_a_spatial_map_is_refused(method):
    model = NoConv().eval()
    with pytest.raises(SpmmInputError, match=r"Grad-CAM layer Linear gives \(2, 6\), not a map .* pass layer="):
        spmm.explain(model, X, 1, method, layer=model.fc1)
    with pytest.raises(SpmmInputError, match=r"Grad-CAM layer Conv2d is not called by the model's forward; pass layer="):
        spmm.explain(model, X, 1, method, layer=model.spare)
    with pytest.raises(SpmmInputError, match="knows no Grad-CAM layer.*pass layer="):
        spmm.explain(model, X, 1, method)


@pytest.mark.parametrize("method", spmm.list_methods())
def test_a_model_made_under_inference_mode_is_refused(method):
    with torch.inference_mode():
        model = TinyConvNet().eval()
    with pytest.raises(SpmmInputError, match=r"made under torch.inference_mode\(\) \(conv.weight, 4 in all\).*outside"):
        spmm.explain(model, X, 1, method, **fast_params(method, model))


def test_a_model_called_under_inference_mode_is_explained():
    model = TinyConvNet().eval()
    with torch.inference_mode():
        model(X)
    xg = X.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(xg)[:, 1].sum(), xg)
    torch.testing.assert_close(spmm.explain(model, X, 1, "gradient").attributions, expected)


def test_a_model_on_the_meta_device_is_refused():
    model = TinyConvNet().eval().to("meta")
    with pytest.raises(SpmmInputError, match=r"weights are on the meta device, without values \(conv.weight, 4 in all\)"):
        spmm.explain(model, X, 1)


BAD_TARGETS = [
    (3.0, "got 3.0"), (None, "got None"), (True, "got True"), (float("nan"), "got nan"), (b"1", "got b'1'"),
    ({"a": 1}, r"got \{'a': 1\}"), ([1.0, 2.0], "got 1.0"), ([1, None], "got None"),
    (np.array([1.0, 2.0]), "integer class indices, got dtype float64"), (torch.tensor([0.0, 1.0]), "got dtype torch.float32"),
    (7, "target index 7 is out of range"), ([0, 1, 2], "got 3 targets for a batch of 2"),
    ("cat", "'cat' is a label name, but the model has no labels"),
    (spmm.Contrast(None, 1), "got None"), (spmm.Contrast(0, 9), "target index 9 is out of range"),
    (lambda logits: logits[:, 9], r"the target .* failed on the model output \(2, 5\): IndexError"),
    (lambda logits: logits, r"one score per sample, shape \(2,\); got \(2, 5\)"),
]


@pytest.mark.parametrize("target, message", BAD_TARGETS, ids=[m for _, m in BAD_TARGETS])
def test_a_bad_target_is_refused_in_one_line(target, message):
    with pytest.raises(SpmmInputError, match=message):
        spmm.explain(TinyConvNet().eval(), X, target)


def test_a_contrast_of_a_class_with_itself_is_refused():
    with pytest.raises(SpmmInputError, match=r"Contrast target and foil are the same class \(2\)"):
        spmm.Contrast(2, 2)


@pytest.mark.parametrize("value", [3.0, None, True, float("nan"), b"tench", [1], "not a class"])
def test_class_index_refuses_what_is_not_an_index_or_a_label(value):
    from spmm.adapters.vision import class_index

    with pytest.raises(SpmmInputError, match="a class must be an integer index or a label name|not one of the model"):
        class_index(value)


def test_class_index_takes_integers_digit_strings_and_names():
    from spmm.adapters.vision import class_index, imagenet_class_names

    names = imagenet_class_names()
    assert [class_index(3), class_index(np.int64(3)), class_index(" 3 "), class_index(names[3].upper())] == [3, 3, 3, 3]
    with pytest.raises(SpmmInputError, match="outside 0..999"):
        class_index(1000)
