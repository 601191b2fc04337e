"""``spmm.audit``: which nonlinear ops a forward pass meets and which rule handles each."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explain import (
    TRAINING_WARNING, _forward, buffers_kept, check_autograd, check_inputs, is_training, refuse_compiled,
)
from spmm.graph_ops import unhandled_nodes
from spmm.mode import PullbackMode, Recorder
from spmm.targets import output_logits
from spmm.temperatures import Temperatures

@dataclasses.dataclass
class AuditRow:
    op: str
    count: int
    rule: str | None


@dataclasses.dataclass
class AuditReport:
    """Nonlinear ops met in one forward pass. ``rows``: (op, count, rule or None)."""

    rows: list[AuditRow]

    @property
    def unhandled(self) -> list[str]:
        """Nonlinear ops that kept their exact gradient."""
        return [row.op for row in self.rows if row.rule is None]

    @property
    def handled(self) -> dict[str, str]:
        return {row.op: row.rule for row in self.rows if row.rule is not None}

    def __str__(self) -> str:
        width = max([len(r.op) for r in self.rows] + [2])
        lines = [f"{'op'.ljust(width)}  {'count':>5}  rule", f"{'-' * width}  {'-' * 5}  {'-' * 24}"]
        for row in self.rows:
            lines.append(f"{row.op.ljust(width)}  {row.count:>5}  {row.rule or 'UNHANDLED (exact gradient)'}")
        lines.append(f"{len(self.unhandled)} unhandled nonlinear op(s)")
        return "\n".join(lines)


def audit(
    model: Callable[[Tensor], Any],
    inputs: Tensor,
    *,
    temperatures: Temperatures | Mapping[str, float] | None = None,
    module_rules: Mapping | None = None,
    output_fn: Callable[[Any], Tensor] = output_logits,
) -> AuditReport:
    """Run one forward of ``model`` on ``inputs`` under the pullback mode and report every
    nonlinear op met: the ones a rule handled (with the rule) and, in ``.unhandled``,
    those whose exact gradient reaches the input (sigmoid, tanh, where, products of two
    input-dependent tensors, custom autograd Functions, …).

    Inputs are checked as :func:`spmm.explain` checks them; the pass runs with gradients enabled
    (inside ``torch.inference_mode()`` it is refused: no graph could be seen).  Parameter
    gradients are switched off during the pass (and restored) so that only input-dependent
    paths are inspected; a model in training mode gets its buffers restored afterwards.
    """
    refuse_compiled(model)
    check_inputs(inputs)
    x = check_autograd(inputs).requires_grad_(True)
    if is_training(model):
        warnings.warn(TRAINING_WARNING, stacklevel=2)
    recorder = Recorder()
    params = [p for p in (model.parameters() if isinstance(model, nn.Module) else []) if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with buffers_kept(model), torch.enable_grad(), PullbackMode(temperatures, module_rules, recorder=recorder):
            output = output_fn(_forward(model, x))
    finally:
        for p in params:
            p.requires_grad_(True)
    unhandled, reached = unhandled_nodes(output, x) if isinstance(output, Tensor) else ({}, False)
    if not reached:
        raise SpmmInputError(
            "audit could not see the graph: the model output does not depend on the input through autograd "
            "(detached, computed under no_grad, or output_fn does not return a tensor of the model output)"
        )
    rows = [AuditRow(op, count, rule) for (op, rule), count in sorted(recorder.ops.items())]
    rows += [AuditRow(op, count, None) for op, count in sorted(unhandled.items())]
    return AuditReport(rows)
