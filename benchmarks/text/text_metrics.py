"""Text faithfulness metrics on token scores (ERASER-style comprehensiveness/sufficiency and friends).

Every metric works on one text: ``scores`` (n,) over its attributable tokens and a
``probability`` function mapping a (R, n) bool "kept tokens" matrix to the explained
class probability of each perturbed text (deleted tokens are removed, special tokens stay).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

FRACTIONS = (0.1, 0.2, 0.5)
DELETION_STEPS = 10

ProbabilityFn = Callable[[Tensor], Tensor]


def _top_tokens(scores: Tensor, fraction: float) -> Tensor:
    """(n,) bool: the ceil(fraction·n) highest-scoring tokens."""
    n = scores.numel()
    k = min(n, max(1, math.ceil(fraction * n)))
    chosen = torch.zeros(n, dtype=torch.bool)
    chosen[scores.argsort(descending=True)[:k]] = True
    return chosen


def faithfulness_rows(scores: Tensor) -> tuple[Tensor, dict[str, slice]]:
    """All kept-token masks the metrics need, stacked for one batched forward: (R, n), and where each part is."""
    n = scores.numel()
    full = torch.ones(1, n, dtype=torch.bool)
    removed_top = torch.stack([~_top_tokens(scores, f) for f in FRACTIONS])
    kept_top = torch.stack([_top_tokens(scores, f) for f in FRACTIONS])
    order = scores.argsort(descending=True)
    deletion = []
    for step in range(1, DELETION_STEPS + 1):
        keep = torch.ones(n, dtype=torch.bool)
        keep[order[: round(step * n / DELETION_STEPS)]] = False
        deletion.append(keep)
    rows = torch.cat([full, removed_top, kept_top, torch.stack(deletion)])
    parts = {"full": slice(0, 1), "comprehensiveness": slice(1, 4), "sufficiency": slice(4, 7),
             "deletion": slice(7, 7 + DELETION_STEPS)}
    return rows, parts


def faithfulness(scores: Tensor, probability: ProbabilityFn) -> dict[str, float]:
    """Comprehensiveness and sufficiency AOPC over 10/20/50 % (higher / lower is better) and the
    area under the deletion curve of the class probability (lower is better)."""
    rows, parts = faithfulness_rows(scores)
    p = probability(rows)
    full = p[parts["full"]][0]
    deletion_curve = torch.cat([full.view(1), p[parts["deletion"]]])
    auc = torch.trapezoid(deletion_curve, dx=1.0 / DELETION_STEPS).item()
    return {
        "comprehensiveness": (full - p[parts["comprehensiveness"]]).mean().item(),
        "sufficiency": (full - p[parts["sufficiency"]]).mean().item(),
        "deletion_auc": auc,
    }


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two score vectors (0 when one is constant)."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denominator = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denominator) if denominator > 0 else 0.0


def relative_change(perturbed: Tensor, original: Tensor) -> float:
    """‖perturbed − original‖ / ‖original‖ (max-sensitivity takes the max over noise draws)."""
    norm = original.norm().item()
    return float((perturbed - original).norm().item() / norm) if norm > 0 else 0.0
