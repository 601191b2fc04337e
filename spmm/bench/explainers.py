"""The explainers a benchmark scores: method names -> explain functions bound to the model's rule set."""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable, Mapping, Sequence

from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.methods.registry import METHODS, check_installed, check_parameters, get_method, list_methods
from spmm.metrics.base import ExplainFn, explainer
from spmm.ruleset import RuleSet, resolve_rules

DEFAULT_EXPLAINERS = [
    "soft_pullback", "pullback_ascent", "smooth_pullback", "integrated_pullbacks",
    "gradient", "gradient_ascent", "smoothgrad", "fusiongrad", "gradient_shap", "integrated_gradients",
    "deeplift", "guided_gradcam",
]
"""The 12 explainers of SPEC §3: four SP variants and eight baselines."""


ExplainerFactory = Callable[..., ExplainFn]
"""``factory(seed=..., **params) -> ExplainFn``: another library's implementation, registered as a
method by an outer package (:func:`spmm.methods.registry.register_explainer`, e.g. ``spmm.adapters.peers``).
The function it returns carries ``method`` (its name) and ``params`` (everything its results depend
on, library versions included), which key the runner's checkpoints."""


def list_explainers() -> list[str]:
    """Every name :func:`bench_explainers` takes: spmm's methods, then the peers registered as methods."""
    return list_methods(peers=True)


def peer_factory(name: str) -> ExplainerFactory | None:
    """The factory of the peer method ``name``; None for spmm's own methods."""
    return METHODS[name].factory if name in METHODS else None


def per_name(params: Mapping[str, Any] | None, known: Sequence[str], kind: str) -> dict[str, dict[str, Any]]:
    """Check that per-name parameters map known ``kind`` names to objects of settings."""
    params = dict(params or {})
    for name, value in params.items():
        if name not in known:
            raise SpmmInputError(f"parameters given for unknown {kind} {name!r}; available: {', '.join(sorted(known))}")
        if not isinstance(value, Mapping):
            raise SpmmInputError(f"parameters of {kind} {name!r} must be an object of settings, got {value!r}")
    return params


def rules_checked(name: str, explain_fn: ExplainFn, rules: RuleSet | None) -> ExplainFn:
    """``explain_fn`` refusing (:class:`SpmmInputError`) a model whose :func:`spmm.audit` under
    ``rules`` (resolved for that model) lists ops that keep their exact gradient: a pullback
    explainer with rules missing is not the method, and is not scored.  Each model is audited
    once, on the first inputs it is explained on; ``method`` and ``params`` are kept."""
    from spmm.audit import audit

    audited: weakref.WeakSet = weakref.WeakSet()

    def checked_fn(model: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor) -> Tensor:
        if model not in audited:
            resolved = resolve_rules(rules, model)
            report = audit(model, inputs, temperatures=resolved.temperatures, module_rules=resolved.module_rules)
            if report.unhandled:
                raise SpmmInputError(
                    f"explainer {name!r} is not scored: under rule set {resolved.name!r} the model keeps the exact "
                    f"gradient of {', '.join(report.unhandled)} (spmm.audit lists them; give the rule set module "
                    "rules for them, or pass the nn.Module rather than a function)"
                )
            try:
                audited.add(model)
            except TypeError:  # not weak-referenceable: audited again next time
                pass
        return explain_fn(model, inputs, targets)

    checked_fn.method = explain_fn.method  # type: ignore[attr-defined]
    checked_fn.params = explain_fn.params  # type: ignore[attr-defined]
    return checked_fn


def bench_explainers(
    names: Sequence[str],
    rules: RuleSet | None,
    seed: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    method_defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, ExplainFn]:
    """Explain functions for method ``names``, all under ``rules`` (the model's rule set, so the
    bench scores the backward rules ``spmm explain`` draws; Grad-CAM methods read its layer).
    Pullback methods refuse a model whose audit under ``rules`` lists unhandled ops (:func:`rules_checked`).

    ``params``: per-method parameters given by the user; ``method_defaults``: per-method defaults of
    the modality (e.g. audio step sizes), overridden by ``params``.
    """
    known = list_explainers()
    params = per_name(params, known, "explainer")
    for name, extra in params.items():
        if peer_factory(name) is None:
            check_parameters(get_method(name), extra)
    explainers = {}
    for name in names:
        if name not in known:
            raise SpmmInputError(f"unknown explainer {name!r}; available: {', '.join(sorted(known))}")
        settings = {**(method_defaults or {}).get(name, {}), **params.get(name, {})}
        factory = peer_factory(name)
        if factory is not None:
            accepted = set(inspect.signature(factory).parameters) - {"seed"}
            if set(settings) - accepted:
                raise SpmmInputError(f"explainer {name!r} takes no parameters {sorted(set(settings) - accepted)}; "
                                     f"it takes {sorted(accepted) or 'none'}")
            check_installed(METHODS[name])
            explainers[name] = factory(seed=seed, **settings)
        elif get_method(name).pullback:
            explainers[name] = rules_checked(name, explainer(name, seed=seed, rules=rules, **settings), rules)
        else:
            explainers[name] = explainer(name, seed=seed, rules=rules, **settings)
    return explainers
