"""Rule sets: which Semantic Pullback rules a model is explained with, as one value.

A :class:`RuleSet` bundles the per-rule temperatures, the module rules a family needs
beyond the op rules (squeeze-excitation gates, arithmetic GELUs, RMS norms…) and the
per-family facts methods read (the Grad-CAM layer).  It travels with the model
(``spmm.load(...).rules``), so no path — CLI, bench, demo, page — passes rules by hand.
Named sets live in :data:`RULESETS` (like zennit's composites); families register theirs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from typing import Any, Callable, ContextManager, Iterator, Mapping

from torch import nn

from spmm.errors import SpmmInputError
from spmm.mode import PullbackMode, Recorder
from spmm.plugins import load_plugins
from spmm.rules.registry import ModuleRule
from spmm.temperatures import Temperatures

CamLayerFn = Callable[[nn.Module], ContextManager[nn.Module]]
"""``cam_layer(model)`` -> a context manager giving the module Grad-CAM reads (output (B, C, h, w));
anything it installs in the model is removed on exit."""

ModelRulesFn = Callable[[nn.Module], Mapping[Any, ModuleRule]]
"""``model_rules(model)`` -> module rules for the module types found inside ``model``."""


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """Temperatures, module rules and per-family facts for explaining one kind of model.

    name: what the set is called (``"default"``, ``"vision"``, ``"text"``…).
    temperatures: per-rule temperatures (SPEC §2 defaults).
    module_rules: ``{module type or (qualified) class name: rule}``.
    model_rules: optional function finding further module rules inside a given model
        (e.g. every ``*RMSNorm`` class of a Hugging Face model); see :meth:`for_model`.
    cam_layer: optional :data:`CamLayerFn` for ``guided_gradcam``/``guided_pb_cam``.
    """

    name: str = "default"
    temperatures: Temperatures = dataclasses.field(default_factory=Temperatures)
    module_rules: Mapping[Any, ModuleRule] = dataclasses.field(default_factory=dict)
    model_rules: ModelRulesFn | None = None
    cam_layer: CamLayerFn | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "module_rules", types.MappingProxyType(dict(self.module_rules)))

    def updated(
        self,
        temperatures: Temperatures | Mapping[str, float] | None = None,
        module_rules: Mapping[Any, ModuleRule] | None = None,
        **changes: Any,
    ) -> "RuleSet":
        """A copy with temperature overrides, extra module rules and other fields replaced."""
        temps = temperatures if isinstance(temperatures, Temperatures) else self.temperatures.updated(temperatures)
        rules = {**self.module_rules, **(module_rules or {})}
        return dataclasses.replace(self, temperatures=temps, module_rules=rules, **changes)

    def for_model(self, model: Any) -> "RuleSet":
        """This set with ``model_rules(model)`` resolved into ``module_rules`` (the user's rules win)."""
        if self.model_rules is None or not isinstance(model, nn.Module):
            return self
        found = dict(self.model_rules(model))
        return dataclasses.replace(self, module_rules={**found, **self.module_rules}, model_rules=None)

    def mode(self, recorder: Recorder | None = None) -> PullbackMode:
        """The pullback mode applying this set."""
        return PullbackMode(self.temperatures, self.module_rules, recorder=recorder)

    @contextlib.contextmanager
    def gradcam_layer(self, model: nn.Module) -> Iterator[nn.Module]:
        """The Grad-CAM layer of ``model`` for the duration of the block (installed taps removed after)."""
        if self.cam_layer is None:
            raise SpmmInputError(
                f"rule set {self.name!r} knows no Grad-CAM layer for {type(model).__name__}: pass layer=<module> "
                "(for torchvision/timm/Hugging Face image models spmm.adapters.vision.gradcam_layer finds one)"
            )
        with self.cam_layer(model) as layer:
            yield layer

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: name, temperatures, module rules by class and rule name."""
        return {
            "name": self.name,
            "temperatures": dataclasses.asdict(self.temperatures),
            "module_rules": {
                (key if isinstance(key, str) else f"{key.__module__}.{key.__qualname__}"):
                    getattr(rule, "__name__", "module rule")
                for key, rule in self.module_rules.items()
            },
        }


DEFAULT_RULES = RuleSet()
"""The op rules with SPEC §2 temperatures and no module rules."""

RULESETS: dict[str, RuleSet] = {"default": DEFAULT_RULES}
"""Named rule sets; model families add theirs with :func:`register_ruleset`."""


def register_ruleset(ruleset: RuleSet) -> RuleSet:
    """Make ``ruleset`` available as ``get_ruleset(ruleset.name)``; returns it."""
    RULESETS[ruleset.name] = ruleset
    return ruleset


def get_ruleset(name: str) -> RuleSet:
    """The rule set called ``name`` (families' sets appear once their plugins are loaded)."""
    if name not in RULESETS:
        load_plugins()
    if name not in RULESETS:
        raise SpmmInputError(f"unknown rule set {name!r}; available: {', '.join(list_rulesets())}")
    return RULESETS[name]


def list_rulesets() -> list[str]:
    """Names of the registered rule sets."""
    load_plugins()
    return sorted(RULESETS)


def resolve_rules(
    rules: RuleSet | str | None,
    model: Any = None,
    temperatures: Temperatures | Mapping[str, float] | None = None,
    module_rules: Mapping[Any, ModuleRule] | None = None,
) -> RuleSet:
    """The effective set of one call: ``rules`` (a set, a name or None = default) resolved for
    ``model``, with per-call temperature overrides and extra module rules."""
    if isinstance(rules, str):
        rules = get_ruleset(rules)
    elif rules is None:
        rules = DEFAULT_RULES
    elif not isinstance(rules, RuleSet):
        raise SpmmInputError(f"rules must be a spmm.RuleSet or the name of one, got {type(rules).__name__}")
    return rules.for_model(model).updated(temperatures, module_rules)


class RuleSetRegistry(Mapping[str, RuleSet]):
    """Read-only view of the named rule sets (``spmm.rulesets["vision"]``); families' sets appear
    once their plugins are loaded, which the first lookup does."""

    def __getitem__(self, name: str) -> RuleSet:
        return get_ruleset(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list_rulesets())

    def __len__(self) -> int:
        return len(list_rulesets())


rulesets = RuleSetRegistry()
