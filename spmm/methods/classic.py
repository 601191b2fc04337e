"""Classic attribution methods (Captum where it has them) and their pullback versions (SPEC §3).

Each method is registered twice: as the baseline (plain gradients) and as its
pullback version, which runs the very same algorithm with the SP rules active
during every forward pass.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator

import torch
from captum.attr import GradientShap, GuidedGradCam, IntegratedGradients, NoiseTunnel, Saliency
from torch import Tensor, nn
from torch.func import functional_call

from spmm import progress
from spmm.errors import SpmmInputError
from spmm.methods import parameters as check
from spmm.methods.context import MethodContext
from spmm.methods.registry import register_method


@contextlib.contextmanager
def _quiet_captum() -> Iterator[None]:
    """Silence Captum's notices about setting requires_grad and hooks, which spmm handles."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Input Tensor \d+ did not already require gradients")
        warnings.filterwarnings("ignore", message=r"Setting (forward, )?backward hooks")
        yield


def _sample_index(inputs: Tensor) -> Tensor:
    """(B,) row numbers; Captum expands them with the inputs so each row knows its sample."""
    return torch.arange(inputs.shape[0], device=inputs.device)


def _score_in_dtype(context: MethodContext, dtype: torch.dtype) -> Callable[[Tensor, Tensor], Tensor]:
    """``context.score`` on rows cast to ``dtype``: Captum's noise and path points are float32,
    which would promote float16/bfloat16 inputs away from the model's dtype."""

    def score(x: Tensor, sample_index: Tensor) -> Tensor:
        return context.score(x.to(dtype), sample_index)

    return score


_SMOOTHGRAD_CHECKS = {"samples": check.count(), "noise": check.real(0.0), "batch_size": check.count(optional=True)}


@register_method(
    "smoothgrad", pullback=False, summary="mean gradient over Gaussian input noise (Captum NoiseTunnel)",
    checks=_SMOOTHGRAD_CHECKS, samples=50, noise=0.15, batch_size=10,
)
@register_method(
    "smooth_pullback", pullback=True, summary="SmoothGrad with the SP rules",
    checks=_SMOOTHGRAD_CHECKS, samples=50, noise=0.15, batch_size=10,
)
def smoothgrad(context: MethodContext, inputs: Tensor, samples: int, noise: float, batch_size: int):
    """Mean of ``samples`` gradients at x + N(0, noise²) (noise in input units; [−1, 1] images)."""
    tunnel = NoiseTunnel(Saliency(_score_in_dtype(context, inputs.dtype)))
    with _quiet_captum():
        attributions = tunnel.attribute(
            inputs, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=batch_size, stdevs=noise,
            abs=False, additional_forward_args=(_sample_index(inputs),),
        )
    return attributions.to(inputs.dtype), {}


_FUSIONGRAD_CHECKS = {
    "model_samples": check.count(), "input_samples": check.count(), "weight_noise": check.real(0.0),
    "noise": check.real(0.0),
}


@register_method(
    "fusiongrad", pullback=False, summary="mean gradient over weight and input noise (FusionGrad)",
    checks=_FUSIONGRAD_CHECKS, model_samples=10, input_samples=10, weight_noise=0.1, noise=0.15,
)
@register_method(
    "fusion_pullback", pullback=True, summary="FusionGrad with the SP rules",
    checks=_FUSIONGRAD_CHECKS, model_samples=10, input_samples=10, weight_noise=0.1, noise=0.15,
)
def fusiongrad(
    context: MethodContext, inputs: Tensor, model_samples: int, input_samples: int, weight_noise: float, noise: float
):
    """Mean gradient over ``model_samples`` copies of the model with weights w·N(1, weight_noise²)
    and ``input_samples`` inputs x + N(0, noise²) each.  The model itself is never modified."""
    model = context.model
    if not isinstance(model, nn.Module):
        raise SpmmInputError("fusiongrad perturbs model weights, so the model must be an nn.Module")
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    total = torch.zeros_like(inputs, dtype=torch.float32)  # a sum of many terms: float32 for low-precision models
    for _ in progress.steps(range(model_samples), "model samples", model_samples):
        with torch.no_grad():
            noisy = {name: p * (1.0 + weight_noise * _normal_like(p)) for name, p in params.items()}

        def perturbed(x: Tensor, weights: dict = noisy) -> Any:
            return functional_call(model, {**weights, **buffers}, (x,))

        for _ in range(input_samples):
            grad, _ = context.gradient(inputs + noise * _normal_like(inputs), model=perturbed)
            total += grad
    return (total / (model_samples * input_samples)).to(inputs.dtype), {}


def _normal_like(t: Tensor) -> Tensor:
    """N(0, 1) draws shaped like ``t`` in its dtype, drawn in float32 (at least) so that a seed gives
    the same draws to a float16/bfloat16 model as to its float32 original."""
    dtype = torch.promote_types(t.dtype, torch.float32)
    return torch.randn(t.shape, dtype=dtype, device=t.device).to(t.dtype)


_INTEGRATED_CHECKS = {"baseline": check.real_or_tensor, "steps": check.count(), "batch_size": check.count(optional=True)}


@register_method(
    "integrated_gradients", pullback=False, summary="path integral of gradients from a baseline (Captum)",
    checks=_INTEGRATED_CHECKS, baseline=0.0, steps=50, batch_size=None,
)
@register_method(
    "integrated_pullbacks", pullback=True, summary="IntegratedGradients with the SP rules",
    checks=_INTEGRATED_CHECKS, baseline=0.0, steps=50, batch_size=None,
)
def integrated_gradients(context: MethodContext, inputs: Tensor, baseline: float | Tensor, steps: int, batch_size):
    """(x − x₀) ⊙ ∫ gradient along the straight path from the baseline x₀ (Gauss–Legendre, ``steps`` points)."""
    with _quiet_captum():
        attributions = IntegratedGradients(_score_in_dtype(context, inputs.dtype)).attribute(
            inputs, baselines=baseline, n_steps=steps, internal_batch_size=batch_size,
            additional_forward_args=(_sample_index(inputs),),
        )
    return attributions.to(inputs.dtype), {}


def _uniform_baselines(inputs: Tensor, draws: int, low: float, high: float) -> Tensor:
    """The zero image and ``draws`` U(low, high) images: (draws + 1, ...)."""
    shape = (draws, *inputs.shape[1:])
    dtype = torch.promote_types(inputs.dtype, torch.float32)  # the same draws for every input dtype
    noise = (torch.rand(shape, dtype=dtype, device=inputs.device) * (high - low) + low).to(inputs.dtype)
    return torch.cat([torch.zeros_like(inputs[:1]), noise])


_SHAP_CHECKS = {
    "samples": check.count(), "baselines": check.optional_tensor, "baseline_draws": check.count(0),
    "noise": check.real(0.0),
}


@register_method(
    "gradient_shap", pullback=False, summary="expected gradients over random baselines (Captum GradientShap)",
    checks=_SHAP_CHECKS, samples=50, baselines=None, baseline_draws=10, noise=0.0,
)
@register_method(
    "pullback_shap", pullback=True, summary="GradientShap with the SP rules",
    checks=_SHAP_CHECKS, samples=50, baselines=None, baseline_draws=10, noise=0.0,
)
def gradient_shap(context: MethodContext, inputs: Tensor, samples: int, baselines, baseline_draws: int, noise: float):
    """GradientShap; default baselines: the zero input and ``baseline_draws`` U(−1, 1) inputs."""
    if baselines is None:
        baselines = _uniform_baselines(inputs, baseline_draws, -1.0, 1.0)
    with _quiet_captum():
        attributions = GradientShap(_score_in_dtype(context, inputs.dtype)).attribute(
            inputs, baselines=baselines, n_samples=samples, stdevs=noise,
            additional_forward_args=(_sample_index(inputs),),
        )
    return attributions.to(inputs.dtype), {}


_GRADCAM_CHECKS = {"layer": check.optional_module, "interpolate_mode": check.choice(*check.INTERPOLATE_MODES)}


@register_method("guided_gradcam", pullback=False, summary="Guided Backprop ⊙ Grad-CAM (Captum)",
                 checks=_GRADCAM_CHECKS, layer=None, interpolate_mode="nearest")
@register_method("guided_pb_cam", pullback=True, summary="GuidedGradCAM with the SP rules",
                 checks=_GRADCAM_CHECKS, layer=None, interpolate_mode="nearest")
def guided_gradcam(context: MethodContext, inputs: Tensor, layer: nn.Module | None, interpolate_mode: str):
    """Captum GuidedGradCam on ``layer`` (a module of the model with a spatial output map)."""
    if layer is None:
        raise SpmmInputError(
            "guided_gradcam needs layer=<module> (e.g. the last conv block); "
            "spmm.adapters.vision picks it per architecture"
        )
    method = GuidedGradCam(context.score_module(), layer)
    with _quiet_captum():
        return method.attribute(inputs, interpolate_mode=interpolate_mode), {}
