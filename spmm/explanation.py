"""The result of :func:`spmm.explain`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclasses.dataclass
class Explanation:
    """Attributions and everything needed to interpret them.

    Attributes
    ----------
    attributions: (B, *input_shape) — same shape as ``inputs``.
    inputs: (B, *input_shape) — the explained inputs (detached).
    target: the resolved target callable (e.g. ``ClassLogit([3, 7])``).
    method: method name, e.g. ``"soft_pullback"``.
    params: the method's parameters as used (defaults filled in).
    output: the model output on ``inputs`` (detached).
    scores: (B,) — the explained score per sample.
    extras: method-specific results, e.g. ``trajectory`` (K+1, B, ...) and
        ``step_scores`` (K+1, B) for the ascent methods.
    """

    attributions: Tensor
    inputs: Tensor
    target: Any
    method: str
    params: dict[str, Any]
    output: Any
    scores: Tensor
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    def numpy(self) -> np.ndarray:
        """Attributions as a NumPy array (B, *input_shape)."""
        return self.attributions.detach().cpu().numpy()

    def save(self, path: str | Path) -> Path:
        """Write attributions, inputs, scores and metadata with ``torch.save``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "attributions": self.attributions.cpu(),
                "inputs": self.inputs.cpu(),
                "scores": self.scores.cpu(),
                "method": self.method,
                "target": repr(self.target),
                "params": {k: v for k, v in self.params.items() if isinstance(v, (int, float, str, bool, type(None)))},
            },
            path,
        )
        return path

    def __repr__(self) -> str:
        return (
            f"Explanation(method={self.method!r}, target={self.target!r}, "
            f"attributions={tuple(self.attributions.shape)}, scores={[round(s, 4) for s in self.scores.tolist()]})"
        )
