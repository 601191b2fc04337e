"""SoftPullback and PullbackAscent (SPEC §3), and their plain-gradient twins."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spmm import progress
from spmm.errors import SpmmInputError
from spmm.methods import parameters as check
from spmm.methods.context import MethodContext
from spmm.methods.registry import register_method


@register_method("gradient", pullback=False, summary="plain input gradient of the target score")
@register_method("soft_pullback", pullback=True, summary="input gradient under the SP rules (one backward)")
def pullback(context: MethodContext, inputs: Tensor) -> tuple[Tensor, dict[str, Any]]:
    """attributions: (B, ...) = d score / d inputs, with the SP rules when ``context.pullback``."""
    grad, _ = context.gradient(inputs)
    return grad, {}


def _per_sample_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


_ASCENT_CHECKS = {
    "step_size": check.real(0.0, strict=True), "step_relative": check.flag, "steps": check.count(),
    "clip": check.choice("every", "last", "none"), "bounds": check.bounds,
}


@register_method(
    "gradient_ascent", pullback=False, summary="K normalised gradient steps towards the target",
    checks=_ASCENT_CHECKS, step_size=20.0, step_relative=False, steps=5, clip="every", bounds=(-1.0, 1.0),
)
@register_method(
    "pullback_ascent", pullback=True, summary="K normalised SoftPullback steps towards the target (counterfactual)",
    checks=_ASCENT_CHECKS, step_size=20.0, step_relative=False, steps=5, clip="every", bounds=(-1.0, 1.0),
)
def ascent(
    context: MethodContext,
    inputs: Tensor,
    step_size: float,
    step_relative: bool,
    steps: int,
    clip: str,
    bounds: tuple[float, float] | str | None,
) -> tuple[Tensor, dict[str, Any]]:
    """x_k = clip(x_{k-1} + α·g/‖g‖₂), g the (pullback) gradient at x_{k-1}; attribution x_K − x.

    α: ``step_size``, or with ``step_relative`` ``step_size`` × ‖x − mean(x)‖₂ of each sample.
    clip: "every" (after each step), "last" (only after the last; "ClipLast") or "none", to
    ``bounds`` (low, high) or, with ``"sample"``, to each sample's own value range [min, max].
    Per-sample scales keep a sample's result independent of its batch.
    extras: ``trajectory`` (K+1, B, ...) and ``step_scores`` (K+1, B).
    """
    if clip != "none" and bounds is None:
        raise SpmmInputError("clipping needs bounds=(low, high)")
    dtype = inputs.dtype
    x = inputs.detach().to(torch.promote_types(dtype, torch.float32))  # steps add up in float32 at least
    shape = (-1, *[1] * (x.dim() - 1))
    if step_relative:
        step_size = step_size * (x - x.flatten(1).mean(1).view(shape)).flatten(1).norm(dim=1).view(shape)
    if bounds == "sample":
        bounds = (x.flatten(1).amin(1).view(shape), x.flatten(1).amax(1).view(shape))
    trajectory, step_scores = [x], []
    for step in progress.steps(range(steps), "ascent steps", steps):
        grad, scores = context.gradient(x.to(dtype))
        step_scores.append(scores)
        grad = grad.to(x.dtype)
        x = x + step_size * grad / _per_sample_norm(grad)
        if clip == "every" or (clip == "last" and step == steps - 1):
            x = torch.clamp(x, *bounds)
        trajectory.append(x)
    with torch.no_grad():
        step_scores.append(context.score(x.to(dtype)).detach())
    extras = {"trajectory": torch.stack(trajectory).to(dtype), "step_scores": torch.stack(step_scores)}
    return (x - trajectory[0]).to(dtype), extras
