"""``Explainable``: a model together with its modality, rule set and labels — what ``spmm.load`` returns.

``m.explain(inputs, target, method)`` is the one pipeline of every explanation: it takes what a
user has (image paths, strings, waveforms), lets the modality turn it into the tensor the model is
explained on (``prepare``), bind the target to it (``bind_target``) and plan the rows
(``plan_rows``: generation explains one row per token), runs :func:`spmm.explain` with the model's
own rule set (:func:`spmm.rows.explain_plan`), and lets the modality wrap the result in its
:class:`~spmm.explanation.Explanation` subclass (``explanation``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explanation import Explanation, Prediction
from spmm.rows import Prepared, RowPlan, explain_plan
from spmm.ruleset import RuleSet
from spmm.targets import ClassTarget, output_logits


class Modality(Protocol):
    """What a modality provides to :class:`Explainable` (implemented in ``spmm.modalities``)."""

    name: str

    def prepare(self, model: nn.Module, inputs: Any, **options: Any) -> Prepared:
        """Turn what the user has into a :class:`Prepared` batch for ``model``."""

    def method_params(self, method: str, inputs: Tensor, model: Any) -> dict[str, Any]:
        """Defaults of scale-dependent method parameters for ``model`` (the function explained) on
        this modality's inputs (B, ...); a sample's defaults must not depend on the rest of the batch."""

    def explanation(self, base: Explanation, prepared: Prepared) -> Explanation:
        """Wrap the core result in the modality's :class:`Explanation` subclass (the *wrap* hook)."""

    # Optional hooks, called in this order by :meth:`Explainable.explain`:
    # ``bind_target(target, prepared) -> target`` turns targets that name parts of the inputs (a
    #   word of a text, a token string, a frequency) into ones the core resolves (positions, indices);
    # ``plan_rows(prepared, target, method, params) -> RowPlan | None`` plans the explanation (see
    #   :mod:`spmm.rows`): generation explains one row per continuation token on a context it
    #   prepares; a task may also explain with another model or other labels (a dual encoder adding
    #   a free-text target to its labels).  None: the prepared batch and target as they are.


@dataclasses.dataclass
class Explainable:
    """A model ready to be explained.

    model: the ``nn.Module`` (or callable) the modality's prepared inputs go through.
    modality: see :class:`Modality`.
    rules: the :class:`RuleSet` every explanation of this model uses.
    labels: class names in output order, when known.
    name: the spec the model was loaded from.
    multi_label: outputs are independent sigmoids (tags), not one softmax.
    options: keyword defaults passed to ``modality.prepare`` (e.g. an image size).
    """

    model: Any
    modality: Modality
    rules: RuleSet
    labels: Sequence[str] | None = None
    name: str = ""
    multi_label: bool = False
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def prepare(self, inputs: Any, **options: Any) -> Prepared:
        """The modality's :class:`Prepared` batch for ``inputs``."""
        return self.modality.prepare(self.model, inputs, **{**self.options, **options})

    def probabilities(self, logits: Tensor) -> Tensor:
        """Softmax (single-label) or sigmoid (multi-label) of logits (B, C)."""
        return logits.sigmoid() if self.multi_label else logits.softmax(-1)

    def predictions(self, output: Any, k: int = 5) -> list[list[Prediction]]:
        """Per sample, the ``k`` most probable classes."""
        logits = output_logits(output)
        if logits.dim() != 2:
            return [[] for _ in range(logits.shape[0])]
        values, indices = self.probabilities(logits.detach().float()).topk(min(k, logits.shape[-1]), dim=-1)
        return [
            [Prediction(int(i), self.label(int(i)), float(v)) for v, i in zip(row_v.tolist(), row_i.tolist())]
            for row_v, row_i in zip(values, indices)
        ]

    def label(self, index: int) -> str:
        return str(self.labels[index]) if self.labels is not None and index < len(self.labels) else str(index)

    def predict(self, inputs: Any, k: int = 5, **options: Any) -> list[list[Prediction]]:
        """The top-``k`` predictions for ``inputs`` (no explanation)."""
        prepared = self.prepare(inputs, **options)
        with torch.no_grad():
            return self.predictions(prepared.model(prepared.inputs), k)

    def explain(
        self,
        inputs: Any,
        target: ClassTarget | Callable[[Any], Tensor] = "top1",
        method: str = "soft_pullback",
        *,
        top_k: int = 5,
        prepare_options: dict[str, Any] | None = None,
        **params: Any,
    ) -> Explanation:
        """Explain ``target`` on ``inputs`` with ``method`` under this model's rule set.

        inputs: what the modality takes (image paths / PIL images / tensors; strings; audio
            paths / waveforms).
        target: ``"top1"`` (default), a class index, a label name, one of those per input, a
            callable mapping the model output to one score per input, or a target the modality
            binds to the inputs (``spmm.TokenLabel(word, label)`` for token classifiers; a token
            string, ``spmm.Continuation``, ``spmm.SequenceLogProb`` for language models; any text
            for dual encoders; a frequency such as ``"440Hz"`` for CREPE).
        params: method parameters, :func:`spmm.explain` keywords (``seed``, ``temperatures``) and
            the task's own options (language models: ``strategy``, ``rows_per_pass``).

        The one pipeline of every model: the modality's ``prepare``, ``bind_target`` and
        ``plan_rows`` hooks, :func:`spmm.rows.explain_plan`, then its ``explanation`` (the module
        docstring); no task has a loop of its own.
        """
        if "rules" in params or "module_rules" in params:
            raise SpmmInputError(
                "this model carries its rule set (m.rules); change it with m.with_rules(...) instead of rules=/module_rules="
            )
        prepared = self.prepare(inputs, **(prepare_options or {}))
        bind_target = getattr(self.modality, "bind_target", None)
        if bind_target is not None:
            target = bind_target(target, prepared)
        plan_rows = getattr(self.modality, "plan_rows", None)
        plan = plan_rows(prepared, target, method, params) if plan_rows is not None else None
        if plan is None:
            plan = RowPlan(prepared, target, {**self.modality.method_params(method, prepared.inputs, prepared.model), **params})
        shown = self if plan.labels is None else dataclasses.replace(self, labels=list(plan.labels))
        base = explain_plan(plan, method, self.rules, shown.labels)
        if plan.rows is None:
            base.predictions = shown.predictions(base.output, top_k)
        base.labels = shown.labels
        base.sources = plan.prepared.sources
        base.model_name = self.name
        return self.modality.explanation(base, plan.prepared)

    def audit(self, inputs: Any, **options: Any):
        """:func:`spmm.audit` of this model on ``inputs`` with its rule set."""
        from spmm.audit import audit

        prepared = self.prepare(inputs, **options)
        rules = self.rules.for_model(self.model)
        return audit(prepared.model, prepared.inputs, temperatures=rules.temperatures, module_rules=rules.module_rules)

    def with_rules(self, rules: RuleSet | None = None, **temperatures: float) -> "Explainable":
        """A copy explained with another rule set and/or temperature overrides."""
        base = rules if rules is not None else self.rules
        return dataclasses.replace(self, rules=base.updated(temperatures or None))

    def compile(self, backend: str = "inductor") -> "Explainable":
        """A copy whose model is ``torch.compile(self.model, backend=backend)``; this Explainable
        and its module are left as they are (the copy shares the module's parameters).  Its
        explanations equal the eager ones (see :func:`spmm.explain`'s ``compile``)."""
        from spmm.compiled import compiled

        return dataclasses.replace(self, model=compiled(self.model, backend))

    def to(self, device: torch.device | str) -> "Explainable":
        """Move the model to ``device`` (in place) and return self."""
        if isinstance(self.model, nn.Module):
            self.model.to(device)
        else:
            raise SpmmInputError(f"cannot move a {type(self.model).__name__} to {device}")
        return self

    def __repr__(self) -> str:
        classes = f", {len(self.labels)} labels" if self.labels is not None else ""
        return f"Explainable({self.name or type(self.model).__name__!r}, {self.modality.name}, rules={self.rules.name!r}{classes})"
