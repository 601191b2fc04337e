"""What every metric shares: metadata, results, target checks and chunked scoring of perturbations."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Hashable, Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.metrics.draws import SampleStream, sample_streams, uniform
from spmm.targets import output_logits

if TYPE_CHECKING:
    from spmm.metrics.groups import Baseline, FeatureGroups

ExplainFn = Callable[[Callable[[Tensor], Any], Tensor, Tensor], Tensor]
"""``explain_fn(model, inputs (B, ...), targets (B,)) -> attributions (B, ...)``."""


def explainer(method: str, **params: Any) -> ExplainFn:
    """An :data:`ExplainFn` running ``spmm.explain(model, inputs, targets, method, **params)``."""
    from spmm.explain import explain

    def explain_fn(model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor) -> Tensor:
        return explain(model, inputs, targets, method, **params).attributions

    explain_fn.method = method  # type: ignore[attr-defined]
    explain_fn.params = params  # type: ignore[attr-defined]
    return explain_fn


@dataclasses.dataclass
class MetricResult:
    """Per-sample ``scores`` (B,), the ``settings`` used, and optional ``extras`` (e.g. curves)."""

    scores: Tensor
    settings: dict[str, Any]
    extras: dict[str, Tensor] = dataclasses.field(default_factory=dict)


class Metric:
    """Base class: settings in ``__init__``, data in ``__call__``, metadata as class attributes."""

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    category: ClassVar[str]
    needs_explain_fn: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every metric's ``__call__(model, ...)`` scores a model in training mode in eval mode
        (one warning per call says so) and leaves the model as it was: train/eval flags and buffers."""
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__:
            cls.__call__ = _in_eval_mode(cls.__dict__["__call__"])

    def settings(self) -> dict[str, Any]:
        """The settings this metric was built with (JSON-friendly)."""
        return {k: _plain(v) for k, v in vars(self).items() if not k.startswith("_")}

    def _chunk(self, device: torch.device) -> int:
        """Samples per forward pass: ``chunk`` if set, else 64 on GPUs and 4 on CPUs (where large
        batches run slower per sample)."""
        chunk = getattr(self, "chunk", None)
        return chunk if chunk is not None else (64 if device.type == "cuda" else 4)

    def _perturbation_logits(
        self, model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor, groups: "FeatureGroups", masks: Tensor,
        sample_ids: Sequence[Hashable] | None, repeats: int = 1,
    ) -> tuple[Tensor, Tensor | None]:
        """:func:`group_perturbation_logits` with this metric's ``baseline``, fresh per-sample
        streams and its chunk size (for metrics that perturb once per call)."""
        return group_perturbation_logits(
            model, inputs, targets, groups, masks, self.baseline,  # type: ignore[attr-defined]
            self._sample_streams(inputs, sample_ids), self._chunk(inputs.device), repeats=repeats,
        )

    def _sample_streams(self, inputs: Tensor, sample_ids: Sequence[Hashable] | None) -> list[SampleStream]:
        """One random stream per sample of inputs (B, ...) from (``seed``, the sample's id, the
        metric's name); without ids a sample is known by its content, so it draws the same alone,
        in any batch and at any position.  See :mod:`spmm.metrics.draws`."""
        return sample_streams(int(getattr(self, "seed", 0)), self.name, inputs, sample_ids)


TRAINING_WARNING = (
    "the model is in training mode (dropout, batch statistics): {metric} scores it in eval mode and restores "
    "its mode afterwards; call model.eval() to silence this"
)


def _in_eval_mode(call: Callable[..., MetricResult]) -> Callable[..., MetricResult]:
    """``call`` with a model in training mode switched to eval mode for the call (one warning),
    its train/eval flags and buffers restored afterwards, also when the metric fails; a model
    whose weights are on the meta device (or, for metrics that re-explain, made under
    ``torch.inference_mode()``) is refused."""

    @functools.wraps(call)
    def scored(self: Metric, model: Any, *args: Any, **kwargs: Any) -> MetricResult:
        from spmm.explain import buffers_kept, is_training  # spmm.explain imports the methods, which import the draws
        from spmm.methods.context import check_model_tensors

        check_model_tensors(model, autograd=self.needs_explain_fn)  # others run forward passes only
        if not is_training(model):
            return call(self, model, *args, **kwargs)
        warnings.warn(TRAINING_WARNING.format(metric=self.name), UserWarning, stacklevel=2)
        flags = [(module, module.training) for module in model.modules()]
        try:
            with buffers_kept(model):
                model.eval()
                return call(self, model, *args, **kwargs)
        finally:
            for module, training in flags:
                module.training = training

    return scored


def check_counts(**counts: int | None) -> None:
    """Raise :class:`SpmmInputError` unless every given count (steps, samples, draws, chunk) is
    an integer ≥ 1; ``None`` means "the default"."""
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SpmmInputError(f"{name} must be an integer ≥ 1, got {value!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def check_attributions(attributions: Tensor) -> tuple[Tensor, Tensor]:
    """Attributions (B, ...) with every sample that holds NaN or inf set to 0, and which samples
    are finite (B,) bool; one warning when some are not.  Metrics score the zeroed samples, then
    give them NaN (:func:`nan_unless`): never a plausible number."""
    finite = attributions.detach().flatten(1).isfinite().all(1)
    if bool(finite.all()):
        return attributions, finite
    warnings.warn(
        f"{int((~finite).sum())} of {finite.numel()} attributions hold NaN or inf: their scores are NaN",
        RuntimeWarning, stacklevel=3,
    )
    return attributions.where(finite.view(-1, *[1] * (attributions.dim() - 1)), 0.0), finite


def nan_unless(scores: Tensor, finite: Tensor) -> Tensor:
    """Scores (B,) with NaN where ``finite`` (B,) is False."""
    return scores.where(finite.to(scores.device), float("nan"))


def checked(inputs: Tensor, targets: Tensor, attributions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`check_batch` then :func:`check_attributions`: targets (B,) long, attributions (B, ...)
    with non-finite samples zeroed, and which samples are finite (B,) bool."""
    targets = check_batch(inputs, targets, attributions)
    return (targets, *check_attributions(attributions))


def check_batch(inputs: Tensor, targets: Tensor, attributions: Tensor | None = None) -> Tensor:
    """Validate inputs (B, ...), targets (B,) and attributions (B, ...); return targets as long (B,).
    Inputs must be a non-empty batch of finite values."""
    if not isinstance(inputs, Tensor) or inputs.dim() < 2:
        raise SpmmInputError("inputs must be a batched tensor (B, ...)")
    if inputs.shape[0] == 0:
        raise SpmmInputError("inputs hold an empty batch; metrics need at least one sample")
    if inputs.is_floating_point() or inputs.is_complex():
        finite = inputs.detach().flatten(1).isfinite().all(1)
        if not bool(finite.all()):
            bad = (~finite).nonzero().flatten().tolist()
            raise SpmmInputError(f"inputs of sample(s) {bad[:10]} hold NaN or inf values; metrics need finite inputs")
    if attributions is not None and attributions.shape != inputs.shape:
        raise SpmmInputError(
            f"attributions of shape {tuple(attributions.shape)} do not match inputs of shape {tuple(inputs.shape)}"
        )
    targets = torch.as_tensor(targets, device=inputs.device)
    if targets.is_floating_point():
        raise SpmmInputError(f"targets must be integer class indices, got dtype {targets.dtype}")
    targets = targets.long().flatten()
    if targets.numel() == 1:
        targets = targets.expand(inputs.shape[0])
    if targets.numel() != inputs.shape[0]:
        raise SpmmInputError(f"got {targets.numel()} targets for a batch of {inputs.shape[0]} samples")
    return targets


@torch.no_grad()
def target_logits(model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor, chunk: int = 64, check: bool = True) -> Tensor:
    """Logit of ``targets`` for inputs (N, ...) with targets (N,) -> (N,), in chunks of ``chunk`` samples.
    ``check`` validates the logits' shape and the targets' range once (one device sync)."""
    out = []
    for start in range(0, inputs.shape[0], chunk):
        logits = output_logits(model(inputs[start : start + chunk]))
        if check and start == 0:
            _check_targets(logits, targets)
        out.append(logits.gather(1, targets[start : start + chunk].view(-1, 1)).squeeze(1))
    return torch.cat(out)


def _check_targets(logits: Tensor, targets: Tensor) -> None:
    if logits.dim() != 2:
        raise SpmmInputError(f"metrics need logits of shape (batch, classes), got {tuple(logits.shape)}")
    if bool((targets < 0).any()) or bool((targets >= logits.shape[1]).any()):
        raise SpmmInputError(f"target index out of range for a model with {logits.shape[1]} outputs")


@torch.no_grad()
def group_perturbation_logits(
    model: Callable[[Tensor], Any],
    inputs: Tensor,
    targets: Tensor,
    groups: "FeatureGroups",
    masks: Tensor,
    baseline: "Baseline",
    streams: Sequence[SampleStream] | None = None,
    chunk: int = 64,
    attributions: Tensor | None = None,
    repeats: int = 1,
) -> tuple[Tensor, Tensor | None]:
    """Target logits after replacing masked groups by the baseline, one perturbation at a time in chunks.

    inputs: (B, ...); masks: (B, M, G) bool, each used for ``repeats`` consecutive perturbations
    (K = M·repeats, e.g. fresh noise draws of one step); returns logits (B, K) and, when
    ``attributions`` (B, ...) are given, ⟨attributions, inputs − perturbed⟩ (B, K).  Noise
    baselines are drawn from ``streams`` (one per sample, :mod:`spmm.metrics.draws`), so the
    draws depend neither on ``chunk`` nor on the other samples of the batch; other baselines
    are broadcast, never copied per perturbation.
    """
    from spmm.metrics.groups import baseline_values, noise_of

    batch, count = masks.shape[0], masks.shape[1] * repeats
    step = max(1, chunk // batch)
    noise = noise_of(baseline)
    if noise is not None and (streams is None or len(streams) != batch):
        raise SpmmInputError("a noise baseline needs one random stream per sample")
    fixed = None if noise is not None else baseline_values(baseline, inputs.new_empty(batch, 1, *inputs.shape[1:]))
    logits, dots = [], []
    for start in range(0, count, step):
        stop = min(count, start + step)
        selected = masks.index_select(1, torch.arange(start, stop, device=masks.device) // repeats)
        fill = fixed if fixed is not None else uniform(
            streams, stop - start, inputs.shape[1:], inputs.device, noise.low, noise.high
        ).to(inputs.dtype)
        perturbed = groups.replace(inputs, selected, fill)
        flat = perturbed.flatten(0, 1)
        values = target_logits(model, flat, targets.repeat_interleave(stop - start), chunk, check=start == 0)
        logits.append(values.view(batch, stop - start))
        if attributions is not None:
            change = (inputs.unsqueeze(1) - perturbed).flatten(2)
            dots.append((change * attributions.flatten(1).unsqueeze(1)).sum(-1))
    return torch.cat(logits, 1), (torch.cat(dots, 1) if attributions is not None else None)
