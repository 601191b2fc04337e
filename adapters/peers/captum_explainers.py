"""Captum's attribution classes with Captum's default settings, as bench explainers.

On the bench, inputs are what the model's explained layer sees (text: token embeddings), so
``captum:integrated_gradients`` is Captum's ``IntegratedGradients`` with its defaults (50 steps,
Gauss-Legendre, zero baseline) — for a text model the same attribution as ``LayerIntegratedGradients``
on the embedding layer that Captum's LLM tutorials use.  (spmm's own ``integrated_gradients`` and
``gradient`` rows also call Captum, with the bench's settings.)
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from spmm.metrics.base import ExplainFn
from spmm.targets import output_logits

from .versions import peer_version

CAPTUM_METHODS = {"captum:integrated_gradients": "IntegratedGradients", "captum:saliency": "Saliency"}


def captum_explainer(name: str, seed: int = 0) -> ExplainFn:
    """``explain_fn(model, inputs (B, ...), targets (B,)) -> (B, ...)`` with the Captum class of ``name``
    (a key of :data:`CAPTUM_METHODS`) and its default settings; Saliency unsigned as Captum's default."""
    version = peer_version("captum")
    method = CAPTUM_METHODS[name]

    def explain_fn(model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor) -> Tensor:
        import captum.attr

        def logits(x: Tensor) -> Tensor:
            return output_logits(model(x))

        with torch.enable_grad():
            return getattr(captum.attr, method)(logits).attribute(inputs.detach(), target=targets).detach()

    explain_fn.method = name  # type: ignore[attr-defined]
    explain_fn.params = {"captum": version}  # type: ignore[attr-defined]
    return explain_fn
