"""Classic attribution methods and their pullback versions (SPEC §3): Integrated Gradients and
Guided Grad-CAM through Captum; SmoothGrad, FusionGrad and GradientShap here, because their draws
come from one stream per sample (seed, the sample's values; :mod:`spmm.metrics.draws`), so a
sample's attributions do not depend on its batch or its position in it.

Each method is registered twice: as the baseline (plain gradients) and as its
pullback version, which runs the very same algorithm with the SP rules active
during every forward pass.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator, Sequence

import torch
from captum.attr import GuidedGradCam, IntegratedGradients
from torch import Tensor, nn
from torch.func import functional_call

from spmm import progress
from spmm.errors import SpmmInputError
from spmm.methods import parameters as check
from spmm.methods.context import MethodContext
from spmm.methods.registry import register_method
from spmm.metrics.draws import SampleStream, normal, uniform


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


Rows = Callable[[int], "tuple[Tensor, Tensor | float]"]
"""``rows(count)``: the next ``count`` points of every sample and the weights of their gradients,
((B, count, ...), (B, count, ...) or a number)."""


def _mean_gradient(
    context: MethodContext, inputs: Tensor, samples: int, per_pass: int | None, rows: Rows,
    model: Callable[[Tensor], Any] | None = None, description: str | None = "samples",
) -> Tensor:
    """Mean over ``samples`` draws of gradient ⊙ weight (:data:`Rows`), summed in float32 at least:
    (B, ...).  ``per_pass`` draws of each sample go through the model at once (None: all);
    ``description`` names the progress steps (None: not reported)."""
    batch = inputs.shape[0]
    total = torch.zeros_like(inputs, dtype=torch.promote_types(inputs.dtype, torch.float32))
    step = per_pass or samples
    passes = range(0, samples, step)
    for start in passes if description is None else progress.steps(passes, description, len(passes)):
        count = min(step, samples - start)
        points, weight = rows(count)
        index = _sample_index(inputs).repeat_interleave(count)
        grad, _ = context.gradient(points.flatten(0, 1), model=model, sample_index=index)
        total += (grad.view(batch, count, *inputs.shape[1:]) * weight).to(total.dtype).sum(1)
    return total / samples


def _normal(streams: Sequence[SampleStream], count: int, inputs: Tensor, scale: float | Tensor) -> Tensor:
    """``count`` N(0, scale²) draws per sample (scale: a number or one per sample (B,)), drawn in
    float32 and cast to the inputs' dtype: (B, count, ...)."""
    if isinstance(scale, Tensor):
        scale = scale.view(-1, *[1] * inputs.dim())
    return (scale * normal(streams, count, inputs.shape[1:], inputs.device)).to(inputs.dtype)


def _noise_scale(inputs: Tensor, noise: float, relative: bool) -> float | Tensor:
    """σ: ``noise`` in input units, or with ``relative`` ``noise`` × each sample's value range
    max − min (SmoothGrad's definition), (B,) float32."""
    if not relative:
        return noise
    values = inputs.detach().flatten(1).float()
    return noise * (values.amax(1) - values.amin(1))


_SMOOTHGRAD_CHECKS = {
    "samples": check.count(), "noise": check.real(0.0), "noise_relative": check.flag, "batch_size": check.count(optional=True),
}


@register_method(
    "smoothgrad", pullback=False, summary="mean gradient over Gaussian input noise (SmoothGrad)",
    checks=_SMOOTHGRAD_CHECKS, samples=50, noise=0.15, noise_relative=False, batch_size=10,
)
@register_method(
    "smooth_pullback", pullback=True, summary="SmoothGrad with the SP rules",
    checks=_SMOOTHGRAD_CHECKS, samples=50, noise=0.15, noise_relative=False, batch_size=10,
)
def smoothgrad(context: MethodContext, inputs: Tensor, samples: int, noise: float, noise_relative: bool,
               batch_size: int | None):
    """Mean of ``samples`` gradients at x + N(0, σ²), σ = ``noise`` in input units ([−1, 1] images)
    or, with ``noise_relative``, ``noise`` × the sample's own value range; ``batch_size`` noisy
    copies of each sample per pass.  The noise of a sample comes from its own stream (seed, its
    content) and its own scale: it does not depend on the rest of the batch."""
    streams = context.sample_streams("smoothgrad", inputs)
    scale = _noise_scale(inputs, noise, noise_relative)

    def rows(count: int) -> tuple[Tensor, float]:
        return inputs.unsqueeze(1) + _normal(streams, count, inputs, scale), 1.0

    return _mean_gradient(context, inputs, samples, batch_size, rows).to(inputs.dtype), {}


_FUSIONGRAD_CHECKS = {
    "model_samples": check.count(), "input_samples": check.count(), "weight_noise": check.real(0.0),
    "noise": check.real(0.0), "noise_relative": check.flag,
}


@register_method(
    "fusiongrad", pullback=False, summary="mean gradient over weight and input noise (FusionGrad)",
    checks=_FUSIONGRAD_CHECKS, model_samples=10, input_samples=10, weight_noise=0.1, noise=0.15, noise_relative=False,
)
@register_method(
    "fusion_pullback", pullback=True, summary="FusionGrad with the SP rules",
    checks=_FUSIONGRAD_CHECKS, model_samples=10, input_samples=10, weight_noise=0.1, noise=0.15, noise_relative=False,
)
def fusiongrad(
    context: MethodContext, inputs: Tensor, model_samples: int, input_samples: int, weight_noise: float, noise: float,
    noise_relative: bool,
):
    """Mean gradient over ``model_samples`` copies of the model with weights w·N(1, weight_noise²)
    and ``input_samples`` inputs x + N(0, σ²) each (σ as for :func:`smoothgrad`).  The model itself is never modified.  The
    weight noise comes from one stream of the seed, shared by every sample; the input noise of a
    sample from its own stream (seed, its content): neither depends on the rest of the batch."""
    model = context.model
    if not isinstance(model, nn.Module):
        raise SpmmInputError("fusiongrad perturbs model weights, so the model must be an nn.Module")
    _check_single_paths(model)
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    weights_stream = [SampleStream(context.call_seed(), "model weights", "fusiongrad")]
    streams = context.sample_streams("fusiongrad", inputs)
    scale = _noise_scale(inputs, noise, noise_relative)
    total = torch.zeros_like(inputs, dtype=torch.promote_types(inputs.dtype, torch.float32))

    def rows(count: int) -> tuple[Tensor, float]:
        return inputs.unsqueeze(1) + _normal(streams, count, inputs, scale), 1.0

    for _ in progress.steps(range(model_samples), "model samples", model_samples):
        with torch.no_grad():
            noisy = {
                name: p * (1.0 + weight_noise * normal(weights_stream, 1, p.shape, p.device)[0, 0].to(p.dtype))
                for name, p in params.items()
            }

        def perturbed(x: Tensor, weights: dict = noisy) -> Any:
            return functional_call(model, {**weights, **buffers}, (x,))

        total += _mean_gradient(context, inputs, input_samples, 1, rows, perturbed, description=None)
    return (total / model_samples).to(inputs.dtype), {}


def _check_single_paths(model: nn.Module) -> None:
    """Refuse a model holding one submodule under two names: ``torch.func.functional_call``, which
    runs the perturbed copies, leaves such a module with perturbed weights (torch 2.9)."""
    seen: dict[int, str] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        first = seen.setdefault(id(module), name)
        if first != name and any(True for _ in module.parameters()):
            raise SpmmInputError(f"fusiongrad cannot perturb a model that holds one {type(module).__name__} twice "
                                 f"({first or 'the model'} and {name}); register it once (keep a plain reference)")


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
    """(x − x₀) ⊙ ∫ gradient along the straight path from the baseline x₀ (Gauss–Legendre, ``steps`` points).

    baseline: a number, or a tensor that broadcasts to the inputs (B, ...), e.g. (1, ...) or (...)."""
    if isinstance(baseline, Tensor):
        baseline = _broadcast_baseline(baseline, inputs)
    with _quiet_captum():
        attributions = IntegratedGradients(_score_in_dtype(context, inputs.dtype)).attribute(
            inputs, baselines=baseline, n_steps=steps, internal_batch_size=batch_size,
            additional_forward_args=(_sample_index(inputs),),
        )
    return attributions.to(inputs.dtype), {}


def _broadcast_baseline(baseline: Tensor, inputs: Tensor) -> Tensor:
    """``baseline`` expanded to the shape of ``inputs`` (B, ...), in their dtype and on their device."""
    try:
        shape = torch.broadcast_shapes(baseline.shape, inputs.shape)
    except RuntimeError:
        shape = None
    if shape != inputs.shape:
        raise SpmmInputError(
            f"baseline of shape {tuple(baseline.shape)} does not broadcast to the inputs of shape {tuple(inputs.shape)}; "
            f"give a number, one baseline {tuple(inputs.shape[1:])} or one per sample {tuple(inputs.shape)}"
        )
    return baseline.to(inputs).expand_as(inputs)


_SHAP_CHECKS = {
    "samples": check.count(), "baselines": check.optional_tensor, "baseline_draws": check.count(0),
    "noise": check.real(0.0),
}


@register_method(
    "gradient_shap", pullback=False, summary="expected gradients over random baselines (GradientShap)",
    checks=_SHAP_CHECKS, samples=50, baselines=None, baseline_draws=10, noise=0.0,
)
@register_method(
    "pullback_shap", pullback=True, summary="GradientShap with the SP rules",
    checks=_SHAP_CHECKS, samples=50, baselines=None, baseline_draws=10, noise=0.0,
)
def gradient_shap(context: MethodContext, inputs: Tensor, samples: int, baselines, baseline_draws: int, noise: float):
    """GradientShap (Lundberg & Lee 2017; Captum's definition): mean over ``samples`` draws of
    ∇f(b + α(x̃ − b)) ⊙ (x̃ − b), with b drawn uniformly from the baselines, α ~ U(0, 1) and
    x̃ = x + N(0, noise²).

    baselines: (N, ...) shared by every sample; default: the zero input and ``baseline_draws``
    U(−1, 1) inputs of the sample's own.  Every draw of a sample comes from its own stream (seed,
    its content), so it does not depend on the rest of the batch."""
    batch, shape = inputs.shape[0], inputs.shape[1:]
    if baselines is not None and tuple(baselines.shape[1:]) != tuple(shape):
        raise SpmmInputError(
            f"gradient_shap baselines must have shape (N, {', '.join(map(str, shape))}) like the inputs' samples, "
            f"got {tuple(baselines.shape)}"
        )
    streams = context.sample_streams("gradient_shap", inputs)
    if baselines is None:
        drawn = uniform(streams, baseline_draws, shape, inputs.device, -1.0, 1.0).to(inputs.dtype)
        pool = torch.cat([torch.zeros_like(inputs).unsqueeze(1), drawn], 1)  # (B, N, ...)
    else:
        pool = baselines.to(inputs).unsqueeze(0).expand(batch, *baselines.shape)

    def rows(count: int) -> tuple[Tensor, Tensor]:
        which = (uniform(streams, count, (), inputs.device) * pool.shape[1]).long().clamp_max(pool.shape[1] - 1)
        chosen = pool[torch.arange(batch, device=inputs.device).unsqueeze(1), which]  # (B, count, ...)
        alpha = uniform(streams, count, (), inputs.device).to(inputs.dtype).view(batch, count, *[1] * len(shape))
        noisy = inputs.unsqueeze(1) + (_normal(streams, count, inputs, noise) if noise > 0 else 0.0)
        return chosen + alpha * (noisy - chosen), noisy - chosen

    return _mean_gradient(context, inputs, samples, None, rows).to(inputs.dtype), {}


def _check_cam_layer(context: MethodContext, inputs: Tensor, layer: nn.Module) -> None:
    """Refuse a Grad-CAM ``layer`` that the model does not call, or whose output is not a map
    (B, channels, ...) with as many dims as the inputs (B, C, H, W): a Linear layer, a token sequence."""
    outputs: list[Any] = []
    handle = layer.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        with torch.no_grad():
            context.model(inputs)
    finally:
        handle.remove()
    fix = "pass layer=<a module of the model with a spatial output map>, e.g. its last conv block"
    if not outputs:
        raise SpmmInputError(f"the Grad-CAM layer {type(layer).__name__} is not called by the model's forward; {fix}")
    shape = tuple(outputs[0].shape) if isinstance(outputs[0], Tensor) else type(outputs[0]).__name__
    if not isinstance(outputs[0], Tensor) or outputs[0].dim() != inputs.dim():
        raise SpmmInputError(
            f"the Grad-CAM layer {type(layer).__name__} gives {shape}, not a map (batch, channels, ...) with "
            f"{inputs.dim() - 2} spatial dims like the inputs {tuple(inputs.shape)}; {fix}"
        )


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
    _check_cam_layer(context, inputs, layer)
    method = GuidedGradCam(context.score_module(), layer)
    with _quiet_captum():
        return method.attribute(inputs, interpolate_mode=interpolate_mode), {}
