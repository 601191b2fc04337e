"""Prepared inputs and row plans: what :meth:`spmm.Explainable.explain` computes on.

A modality turns what a user has into a :class:`Prepared` batch; the plan (:class:`RowPlan`) says
how it is explained.

A classifier explains each sample once: the plan is the prepared batch and the target as they are.
A task may plan *rows* instead (generation: one row per continuation token, each explained on the
same context): row r scores the r-th of ``rows`` copies of the one prepared input, and the
attributions come back (rows, ...).  Rows are computed in one of two ways:

- shared (:data:`SHARED_FORWARD_METHODS`, whose attribution is one input gradient): one forward
  of the input (under the rules for pullback methods) and one backward per row (``retain_graph``);
- batched (any method): ``rows_per_pass`` copies of the input at a time through :func:`spmm.explain`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from spmm.explain import EXACT_GRADIENT_OPS, explain
from spmm.explanation import Explanation
from spmm.graph_ops import exact_gradient_ops
from spmm.methods.context import MethodContext
from spmm.methods.registry import get_method
from spmm.ruleset import RuleSet


@dataclasses.dataclass
class Prepared:
    """Inputs made ready for one explanation.

    inputs: (B, ...) the tensor the attributions are computed on (pixels in [−1, 1], token
        embeddings, time-frequency bins…).
    model: maps ``inputs`` to the model output (may close over per-batch state such as an
        attention mask or a clip's phase; implements ``take`` if it depends on the sample).
    sources: per sample, a short name of what was given (file name, text).
    context: whatever the modality needs to build its explanation (tokens, waveforms…).
    """

    inputs: Tensor
    model: Callable[[Tensor], Any]
    sources: list[str]
    context: dict[str, Any] = dataclasses.field(default_factory=dict)


SHARED_FORWARD_METHODS = ("gradient", "soft_pullback")
"""Methods whose rows can share one forward pass (their attribution is one input gradient)."""


@dataclasses.dataclass
class RowPlan:
    """How one explanation is computed.

    prepared: the :class:`~spmm.Prepared` input the rows are explained on.
    target: the target as :func:`spmm.explain` takes it; with ``rows``, a callable scoring
        ``rows`` copies of the input, one score per row, with ``take(row_index)`` for a subset.
    params: method parameters and :func:`spmm.explain` keywords (``seed``).
    rows: None: one explanation of the batch as it is (a classifier); else the number of rows of
        the one prepared input (``prepared.inputs`` is (1, ...)).
    shared: rows share one forward pass (methods of :data:`SHARED_FORWARD_METHODS` only).
    rows_per_pass: most rows per batched pass (memory).
    labels: the class names of this call when the task changed them (None: the model's).
    """

    prepared: Prepared
    target: Any
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    rows: int | None = None
    shared: bool = False
    rows_per_pass: int = 32
    labels: Sequence[str] | None = None


def explain_plan(plan: RowPlan, method: str, rules: RuleSet, labels: Sequence[str] | None) -> Explanation:
    """The core explanation of ``plan``: attributions like ``plan.prepared.inputs`` (no rows), or
    (rows, ...) with one score per row."""
    model, inputs = plan.prepared.model, plan.prepared.inputs
    if plan.rows is None:
        return explain(model, inputs, plan.target, method, rules=rules, labels=labels, **plan.params)
    if plan.shared:
        attributions, scores, exact = shared_forward_rows(model, inputs, plan.target, plan.rows, method, rules)
        return Explanation(attributions, inputs, plan.target, method, {}, None, scores, rules=rules,
                           extras={EXACT_GRADIENT_OPS: exact} if exact else {})
    if hasattr(plan.target, "take"):
        spans = [torch.arange(i, min(i + plan.rows_per_pass, plan.rows)) for i in range(0, plan.rows, plan.rows_per_pass)]
        chunks = [(plan.target.take(span), len(span)) for span in spans]
    else:
        chunks = [(plan.target, plan.rows)]
    parts = [explain(model, inputs.expand(count, *inputs.shape[1:]), chunk, method, rules=rules, **plan.params)
             for chunk, count in chunks]
    exact = {op: max(p.extras.get(EXACT_GRADIENT_OPS, {}).get(op, 0) for p in parts)
             for op in sorted({op for p in parts for op in p.extras.get(EXACT_GRADIENT_OPS, {})})}
    return Explanation(torch.cat([p.attributions for p in parts]), inputs, plan.target, method, parts[0].params, None,
                       torch.cat([p.scores for p in parts]), rules=rules, extras={EXACT_GRADIENT_OPS: exact} if exact else {})


def shared_forward_rows(model: Any, inputs: Tensor, target: Any, rows: int, method: str,
                        rules: RuleSet) -> tuple[Tensor, Tensor, dict[str, int]]:
    """One forward of ``inputs`` (1, ...) under ``rules`` (pullback methods) and one backward per
    row: (attributions (rows, ...), row scores (rows,), ``{op: count}`` of the nonlinear ops the
    rules left exact (pullback methods; {} otherwise)) of a method of :data:`SHARED_FORWARD_METHODS`."""
    spec = get_method(method)
    ruleset = rules.for_model(model)
    context = MethodContext(model, target, pullback=spec.pullback, temperatures=ruleset.temperatures,
                            module_rules=ruleset.module_rules)
    x = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        with context.rules():
            output = model(x)
        scores = row_scores(target, output, rows)
        exact = exact_gradient_ops(scores, x) if spec.pullback else {}
        grads = [torch.autograd.grad(scores[r], x, retain_graph=r < rows - 1)[0][0] for r in range(rows)]
    return torch.stack(grads), scores.detach(), dict(sorted(exact.items()))


def row_scores(target: Any, output: Any, rows: int) -> Tensor:
    """The ``rows`` scores (rows,) of ``target`` on one output (1, ...): each row's own target
    (``target.take``) on the output itself where the target can be split, so that a row's backward
    meets a gradient the size of one output, not of ``rows`` expanded copies (a (rows, C, V) logits
    gradient at every row made the shared forward quadratic in the rows); else ``target`` on the
    output expanded to ``rows`` copies."""
    if not hasattr(target, "take"):
        return target(output.expand(rows, *output.shape[1:]))
    device = output.device if isinstance(output, Tensor) else None
    return torch.cat([target.take(torch.tensor([r], device=device))(output).reshape(1) for r in range(rows)])
