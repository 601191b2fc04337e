"""The extension contract: everything spmm is built from is registered through this one module.

One registry per kind, each filled by a call (never by importing a module):

=====================  ===============================================  ===============================
kind                   register with                                    listed by
=====================  ===============================================  ===============================
modality               :func:`register_modality` (``spmm.load(module,  ``modalities()``
                       modality=name)``)
model name             :func:`register_model` (``spmm.load(name)``)     :func:`spmm.list_models`
model spec / module    :func:`register_resolver` (paths, hub names),    ``spmm.load.RESOLVERS``
                       :func:`register_module_resolver` (modules)
task                   :func:`register_task` (architecture -> loader)   :func:`spmm.tasks.list_tasks`
method                 :func:`register_method` (spmm's own kind)        :func:`spmm.list_methods`
peer explainer         :func:`register_explainer` (another library's;   ``spmm.list_methods(peers=True)``
                       a method too: ``method="lxt:attnlrp"``)
metric                 :func:`register_metric`                          :func:`spmm.metrics.registry.list_metrics`
rule (op or module)    :func:`register_rule`                            :func:`spmm.list_rules`
rule set               :func:`register_ruleset`                         :func:`spmm.list_rulesets`
=====================  ===============================================  ===============================

A modality is an object with ``name``, ``prepare(model, inputs, **options) -> Prepared``,
``method_params(method, inputs, model) -> dict`` and ``explanation(base, prepared) -> Explanation``, and
optionally the hooks ``bind_target(target, prepared) -> target`` and ``plan_rows(prepared, target,
method, params) -> RowPlan | None`` (a task explaining several rows per input, such as generation,
or with other labels, such as a dual encoder's free-text target; see :mod:`spmm.rows`).
:meth:`spmm.Explainable.explain` is the one loop that runs every explanation through them.  A new
modality is one file: define the modality and a ``wrap(module, **options) -> Explainable``, then
``register_modality(name, wrap)`` (``tests/framework/test_extension_contract.py`` is a worked one).
Outer packages make their registrations when their ``spmm.plugins`` entry point is imported.

What the outer rings (``spmm.modalities``, ``spmm.adapters``, ``spmm.cli``) use from the core is
public and documented where it is defined, and nothing else (``tests/framework/test_layering.py``
refuses private names across layers): :mod:`spmm.explainable` (``Explainable``, ``Prepared``),
:mod:`spmm.rows` (``RowPlan``, ``SHARED_FORWARD_METHODS``), :mod:`spmm.explanation`
(``Explanation``, ``GroupedExplanation``, ``Prediction``), :mod:`spmm.explain` (``explain``, ``seeded``),
:mod:`spmm.targets`, :mod:`spmm.ruleset`, :mod:`spmm.rules.registry` (``keep_forward``,
``gate_module_rule``), :mod:`spmm.methods.registry` (``get_method``), :mod:`spmm.metrics`,
:mod:`spmm.bench` (runner, explainers), :mod:`spmm.load`, :mod:`spmm.tasks` and :mod:`spmm.errors`.
"""

from __future__ import annotations

from typing import Callable, Iterable

from spmm.explainable import Explainable, Modality, Prepared
from spmm.load import MODULE_WRAPPERS, register_modality, register_model, register_module_resolver, register_resolver
from spmm.methods.registry import register_explainer, register_method
from spmm.metrics.registry import register_metric
from spmm.rules.registry import ModuleRule, keep_forward, op_rule, register_module_rule
from spmm.rows import RowPlan
from spmm.ruleset import RuleSet, register_ruleset
from spmm.tasks import register_task

__all__ = [
    "Explainable", "Modality", "ModuleRule", "Prepared", "RowPlan", "RuleSet", "keep_forward", "modalities",
    "register_explainer", "register_metric", "register_method", "register_modality", "register_model",
    "register_module_resolver", "register_resolver", "register_rule", "register_ruleset", "register_task",
]


def register_rule(target: type | str | Callable | Iterable[Callable], rule: Callable, *, name: str | None = None,
                  temperature: str | None = None, gate: bool = False) -> None:
    """Give a rule to a module type or to an op.

    Module rule: ``target`` is a module class (or its qualified or bare class name) and
    ``rule(module, inputs, output, temperatures)`` returns a replacement output with the same value
    (typically ``keep_forward(output, surrogate)``); see :func:`spmm.register_module_rule`.

    Op rule: ``target`` is a torch function (or several aliases of one, e.g. ``(F.relu, torch.relu,
    Tensor.relu)``) and ``rule(func, args, kwargs, temperatures)`` returns the op's exact output
    with the rule's backward; ``name`` names the rule family and ``temperature`` the
    :class:`spmm.Temperatures` field it reads.
    """
    if isinstance(target, (type, str)):
        register_module_rule(target, rule, name)
        return
    if name is None:
        raise ValueError("an op rule needs name= (the rule family shown by spmm.list_rules())")
    aliases = list(target) if isinstance(target, (list, tuple, set, frozenset)) else [target]
    op_rule(name, temperature, aliases, gate=gate)(rule)


def modalities() -> list[str]:
    """The modality names ``spmm.load(module, modality=...)`` takes."""
    from spmm.plugins import load_plugins

    load_plugins()
    return sorted(MODULE_WRAPPERS)
