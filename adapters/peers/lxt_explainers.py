"""LXT AttnLRP / CP-LRP as bench explainers of models built on ``transformers`` modules."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from spmm.metrics.base import ExplainFn
from spmm.targets import output_logits

from .lxt_rules import VARIANTS, lxt_rules
from .versions import peer_version


def lxt_explainer(variant: str, seed: int = 0) -> ExplainFn:
    """``explain_fn(model, embeddings (B, L, D), targets (B,)) -> (B, L, D)``: the gradient of the
    target logit under LXT's ``variant`` rules (:func:`~.lxt_rules.lxt_rules`), as LXT's efficient mode
    computes it; its product with the embeddings, summed over D, is LXT's token relevance (the
    signed word score of the text bench).  Deterministic: ``seed`` is unused."""
    version = peer_version("lxt")

    def explain_fn(model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor) -> Tensor:
        with torch.enable_grad(), lxt_rules(model, variant):
            x = inputs.detach().clone().requires_grad_(True)
            logits = output_logits(model(x))
            score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
            (grad,) = torch.autograd.grad(score, x)
        return grad

    explain_fn.method = f"lxt:{variant}"  # type: ignore[attr-defined]
    explain_fn.params = {"variant": variant, "lxt": version}  # type: ignore[attr-defined]
    return explain_fn


LXT_EXPLAINERS = {f"lxt:{variant}": variant for variant in VARIANTS}
