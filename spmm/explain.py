"""``spmm.explain``: one call shape for every method."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

import spmm.methods.classic  # noqa: F401  (registers the classic methods)
import spmm.methods.deeplift  # noqa: F401  (registers DeepLift)
import spmm.methods.pullback  # noqa: F401  (registers the pullback methods)
from spmm.errors import SpmmInputError
from spmm.explanation import Explanation
from spmm.methods.context import MethodContext
from spmm.methods.registry import get_method, run_method
from spmm.ruleset import RuleSet, resolve_rules
from spmm.targets import Target, resolve_target, target_scores
from spmm.temperatures import Temperatures


def check_inputs(inputs: Any) -> None:
    """Reject what cannot be explained: non-tensors, non-float dtypes, no batch dim, NaN/Inf."""
    if not isinstance(inputs, Tensor):
        raise SpmmInputError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise SpmmInputError(
            f"inputs must be floating point, got dtype {inputs.dtype}; token ids are explained through their "
            "embeddings (spmm.adapters.text), images as float tensors"
        )
    if inputs.dim() < 2:
        raise SpmmInputError(f"inputs must be batched, shape (batch, ...); got shape {tuple(inputs.shape)}")
    if inputs.shape[0] == 0:
        raise SpmmInputError("inputs hold an empty batch")
    if not torch.isfinite(inputs).all():
        bad = "NaN" if torch.isnan(inputs).any() else "Inf"
        raise SpmmInputError(f"inputs contain {bad} values")


def _forward(model: Callable[[Tensor], Any], inputs: Tensor) -> Any:
    try:
        return model(inputs)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        raise SpmmInputError(
            f"the model failed on inputs of shape {tuple(inputs.shape)} and dtype {inputs.dtype} "
            f"(wrong shape or rank?): {error}"
        ) from error


def _detach_output(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach()
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits.detach()
    if isinstance(output, (tuple, list)):
        return type(output)(_detach_output(o) for o in output)
    return output


def explain(
    model: Callable[[Tensor], Any],
    inputs: Tensor,
    target: Target,
    method: str = "soft_pullback",
    *,
    rules: RuleSet | str | None = None,
    temperatures: Temperatures | Mapping[str, float] | None = None,
    module_rules: Mapping | None = None,
    seed: int | None = None,
    **params: Any,
) -> Explanation:
    """Explain ``model``'s ``target`` score on ``inputs`` with ``method``.

    Parameters
    ----------
    model: a module or callable mapping inputs (B, ...) to an output (logits (B, C), a Hugging
        Face output with ``.logits``, or anything a callable target understands).
    inputs: (B, ...) float tensor; images in [−1, 1] by convention (SPEC §3).
    target: class index, one index per sample, or a callable output -> (B,) scores.
    method: see :func:`spmm.list_methods`; pullback methods use the SP rules.
    rules: the :class:`spmm.RuleSet` (or its name) the model is explained with; default: the op
        rules alone.  ``spmm.load(...)`` models carry theirs.  Methods that read a Grad-CAM layer
        get it from ``rules.cam_layer`` unless ``layer=`` is given.
    temperatures: per-rule temperature overrides on top of ``rules``, e.g. ``{"relu": 0.3}``.
    module_rules: extra module rules for this call, on top of ``rules``.
    seed: seeds the random draws of stochastic methods.
    params: method parameters, e.g. ``steps=5`` for ``pullback_ascent``.

    Returns
    -------
    Explanation with ``attributions`` of the same shape as ``inputs``.
    """
    spec = get_method(method)
    check_inputs(inputs)
    ruleset = resolve_rules(rules, model, temperatures, module_rules)
    if isinstance(model, nn.Module) and model.training:
        warnings.warn("the model is in training mode; call model.eval() for deterministic explanations", stacklevel=2)
    inputs = inputs.detach()
    with torch.no_grad():
        output = _forward(model, inputs)
    target_fn = resolve_target(target, output)
    scores = target_scores(target_fn, output, inputs.shape[0])
    context = MethodContext(
        model, target_fn, pullback=spec.pullback, temperatures=ruleset.temperatures, module_rules=ruleset.module_rules
    )
    needs_layer = "layer" in spec.defaults and params.get("layer") is None and isinstance(model, nn.Module)
    layer = ruleset.gradcam_layer(model) if needs_layer else contextlib.nullcontext()
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng, layer as found:
        if seed is not None:
            torch.manual_seed(seed)
        if needs_layer:
            params = {**params, "layer": found}
        attributions, extras, used = run_method(spec, context, inputs, params)
    used = {k: v for k, v in used.items() if k != "layer" or not needs_layer}
    attributions = attributions.detach()
    if attributions.shape != inputs.shape:
        raise RuntimeError(f"{method} returned shape {tuple(attributions.shape)} for inputs {tuple(inputs.shape)}")
    if not torch.isfinite(attributions).all():
        warnings.warn(f"{method} produced non-finite attributions", stacklevel=2)
    return Explanation(
        attributions, inputs, target_fn, method, used, _detach_output(output), scores.detach(), extras, rules=ruleset
    )


def quantus_explain_func(
    model: nn.Module,
    inputs: np.ndarray | Tensor,
    targets: np.ndarray | Tensor | int,
    method: str = "soft_pullback",
    device: str | torch.device | None = None,
    **params: Any,
) -> np.ndarray:
    """Quantus ``explain_func``: ``quantus.X(...)(..., explain_func=spmm.quantus_explain_func,
    explain_func_kwargs={"method": "soft_pullback"})``.  Returns attributions like ``inputs`` (NumPy)."""
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, Tensor) else inputs, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(targets) if not isinstance(targets, Tensor) else targets).long().flatten()
    explanation = explain(model, x.to(device), y.to(device), method, **params)
    return explanation.numpy()
