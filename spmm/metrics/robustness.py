"""Robustness of explanations: max-sensitivity (Yeh et al. 2019; Quantus MaxSensitivity)."""

from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.metrics.base import ExplainFn, Metric, MetricResult, check_counts, checked, nan_unless
from spmm.metrics.draws import uniform
from spmm.targets import output_logits


class MaxSensitivity(Metric):
    """Largest relative change of the explanation under small input noise.

    ``samples`` times, every element of x gets U(−radius, radius) noise added (drawn from the
    sample's own stream: ``seed``, its id in ``sample_ids``, the metric's name) and the
    sample is re-explained; score = max over draws of ‖a(x̃) − a(x)‖ / ‖a(x)‖ (Frobenius
    norms over the whole sample).  With ``skip_changed_predictions``, draws that change
    the predicted class are left out (NaN when none is left).  Lower is better.
    """

    name = "max_sensitivity"
    higher_is_better = False
    category = "robustness"
    needs_explain_fn = True

    def __init__(self, samples: int = 10, radius: float = 0.02, skip_changed_predictions: bool = False, seed: int = 0, chunk: int | None = None) -> None:
        check_counts(samples=samples, chunk=chunk)
        if not (isinstance(radius, (int, float)) and not isinstance(radius, bool) and math.isfinite(radius) and radius > 0):
            raise SpmmInputError(f"radius must be > 0 and finite, got {radius!r}")
        self.samples, self.radius, self.skip_changed_predictions, self.seed, self.chunk = (
            samples, radius, skip_changed_predictions, seed, chunk,
        )

    def __call__(
        self, model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        explain_fn: ExplainFn, sample_ids: Sequence[Hashable] | None = None,
    ) -> MetricResult:
        targets, attributions, finite = checked(inputs, targets, attributions)
        # re-explain at most as many inputs at once as the batch holds: explainers that expand each
        # input (50 SmoothGrad samples, 50 IG steps) then need no more memory than the original explanation
        batch = inputs.shape[0]
        chunk = self.chunk if self.chunk is not None else min(batch, self._chunk(inputs.device))
        streams = self._sample_streams(inputs, sample_ids)
        noise = torch.cat([  # one draw at a time: the same values as all at once, in less memory
            uniform(streams, 1, inputs.shape[1:], inputs.device, -self.radius, self.radius) for _ in range(self.samples)
        ], 1).to(inputs.dtype)
        noisy = (inputs.unsqueeze(1) + noise).reshape(batch * self.samples, *inputs.shape[1:])
        repeated = targets.repeat_interleave(self.samples)
        explained = torch.cat([
            explain_fn(model, noisy[s : s + chunk], repeated[s : s + chunk]).detach()
            for s in range(0, noisy.shape[0], chunk)
        ]).view(batch, self.samples, -1)
        original = attributions.reshape(batch, 1, -1)
        ratios = (explained - original).double().norm(dim=-1) / original.double().norm(dim=-1).clamp_min(1e-30)
        if self.skip_changed_predictions:
            with torch.no_grad():
                before = output_logits(model(inputs)).argmax(-1).repeat_interleave(self.samples)
                after = torch.cat([output_logits(model(noisy[s : s + chunk])).argmax(-1) for s in range(0, noisy.shape[0], chunk)])
            ratios = ratios.masked_fill((before != after).view(batch, self.samples), float("nan"))
            scores = torch.where(ratios.isnan().all(1), torch.full_like(ratios[:, 0], float("nan")), ratios.nan_to_num(-1.0).max(1).values)
        else:
            scores = ratios.max(1).values
        return MetricResult(nan_unless(scores, finite), self.settings(), {"ratios": ratios})
