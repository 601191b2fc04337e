"""Randomisation checks: random logit (Sixt et al. 2020) and cascading model-parameter
randomisation (Adebayo et al. 2018)."""

from __future__ import annotations

import copy
from typing import Any, Callable, Hashable, Sequence

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.metrics.base import ExplainFn, Metric, MetricResult, checked, nan_unless
from spmm.metrics.draws import uniform
from spmm.metrics.statistics import pearson, spearman
from spmm.targets import output_logits


class RandomLogit(Metric):
    """Pearson correlation between the explanation of the target and that of a random
    other class (uniform over the ``classes − 1`` others, drawn from the sample's own
    stream: ``seed``, its id in ``sample_ids``, the metric's name).  A class-sensitive
    method scores low.  Lower is better.
    """

    name = "random_logit"
    higher_is_better = False
    category = "randomisation"
    needs_explain_fn = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(
        self, model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor, attributions: Tensor, *,
        explain_fn: ExplainFn, sample_ids: Sequence[Hashable] | None = None,
    ) -> MetricResult:
        targets, attributions, finite = checked(inputs, targets, attributions)
        with torch.no_grad():
            classes = output_logits(model(inputs[:1])).shape[-1]
        if classes < 2:
            raise SpmmInputError("random logit needs a model with at least 2 classes")
        draw = uniform(self._sample_streams(inputs, sample_ids), 1, (), inputs.device).view(-1)
        shift = 1 + (draw * (classes - 1)).long()  # uniform over 1..classes−1
        others = (targets + shift) % classes
        explained = explain_fn(model, inputs, others).detach()
        scores = pearson(attributions.flatten(1), explained.flatten(1))
        return MetricResult(nan_unless(scores, finite), self.settings(), {"other_targets": others})


class ModelParameterRandomisation(Metric):
    """Cascading model-parameter randomisation: re-initialise the parameterised layers from
    the output towards the input, one more at a time, re-explain after each, and take the
    Spearman rank correlation of |attr| with the original explanation.

    ``layers``: module names to randomise in this order (default: every module that owns
    parameters, last first).  Parameters are replaced by N(0, std²)·(their original std, or
    1 for scalars).  Score = correlation after the last layer (fully randomised); the
    per-layer curve is in ``extras["correlations"]`` (L, B).  Lower is better.
    """

    name = "model_parameter_randomisation"
    higher_is_better = False
    category = "randomisation"
    needs_explain_fn = True

    def __init__(self, layers: Sequence[str] | None = None, abs: bool = True, seed: int = 0) -> None:
        self.layers, self.abs, self.seed = (list(layers) if layers is not None else None), abs, seed

    def __call__(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, attributions: Tensor, *, explain_fn: ExplainFn,
    ) -> MetricResult:
        targets, attributions, finite = checked(inputs, targets, attributions)
        randomised = copy.deepcopy(model).eval()
        modules = dict(randomised.named_modules())
        names = self.layers if self.layers is not None else [
            n for n, m in reversed(list(modules.items())) if any(True for _ in m.parameters(recurse=False))
        ]
        missing = [n for n in names if n not in modules]
        if missing:
            raise SpmmInputError(f"model has no module(s) named {missing}")
        generator = torch.Generator().manual_seed(self.seed)
        original = attributions.flatten(1)
        original = original.abs() if self.abs else original
        correlations = []
        for name in names:
            with torch.no_grad():
                for parameter in modules[name].parameters(recurse=False):
                    scale = parameter.std() if parameter.numel() > 1 else torch.ones(())
                    draw = torch.randn(parameter.shape, generator=generator) * scale.cpu()
                    parameter.copy_(draw.to(parameter))
            explained = explain_fn(randomised, inputs, targets).detach().flatten(1)
            correlations.append(spearman(original, explained.abs() if self.abs else explained))
        curve = torch.stack(correlations)
        return MetricResult(nan_unless(curve[-1], finite), {**self.settings(), "layers": names}, {"correlations": curve})
