"""The result of every explanation: :class:`Explanation` and its one JSON schema.

The core returns a plain :class:`Explanation` (attributions shaped like the inputs).
Modalities subclass it (images, texts, audio) to give ``scores`` in their own units,
renderings (PNG, HTML, WAV) and aggregations; every subclass writes the same
JSON layout (:data:`SCHEMA`, documented in the README):

.. code-block:: text

    {"schema": "spmm.explanation/1", "modality": str, "model": str, "method": str,
     "params": {...}, "rules": {"name", "temperatures", "module_rules"}, "units": str,
     "exact_gradient_ops": {op: count} (nonlinear ops a pullback method's rules left exact; {} when none),
     "items": [{"input": str, "target": {"index", "label", "score"} | {"description", "score"},
                "predictions": [{"index", "label", "probability"}...], "shape": [...],
                "scores": nested list (null where undefined) | null, "extra": {...}}]}
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor

from spmm.errors import SpmmInputError

SCHEMA = "spmm.explanation/1"
SHOWN_CHARACTERS = 60
"""Inputs longer than this are shortened in summaries."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One of a model's top predictions for one input."""

    index: int
    label: str
    probability: float

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "probability": round(self.probability, 6)}


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
    scores: (B,) — the explained score per sample (e.g. the target logit).
    extras: method-specific results, e.g. ``trajectory`` (K+1, B, ...) and
        ``step_scores`` (K+1, B) for the ascent methods.
    rules: the :class:`spmm.RuleSet` the explanation was computed with.
    predictions: per sample, the model's top predictions (filled by ``spmm.load`` models).
    labels: the model's class names, when known.
    sources: per sample, what was explained (file name, text…).
    model_name: the model's name or spec.
    """

    attributions: Tensor
    inputs: Tensor
    target: Any
    method: str
    params: dict[str, Any]
    output: Any
    scores: Tensor
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    rules: Any = None
    predictions: list[list[Prediction]] | None = None
    labels: Sequence[str] | None = None
    sources: list[str] | None = None
    model_name: str = ""

    modality: ClassVar[str] = "tensor"
    units: ClassVar[str] = "input elements"
    renderings: ClassVar[tuple[str, ...]] = ()
    """Suffixes of the files a person looks at (``.png``, ``.html``, ``.wav``), written by the CLI."""

    def recast(self, cls: type["Explanation"], **fields: Any) -> "Explanation":
        """This explanation as the subclass ``cls`` (a modality's), with its extra ``fields``."""
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, **fields)

    # -- per sample, in the modality's units ------------------------------------
    def __len__(self) -> int:
        return self.attributions.shape[0]

    def item_scores(self, index: int) -> Tensor:
        """Scores of sample ``index`` in the modality's units (here: the attributions themselves)."""
        return self.attributions[index]

    def item_extra(self, index: int) -> dict[str, Any]:
        """Modality-specific JSON fields of sample ``index`` (words, frame times…)."""
        return {}

    def target_index(self, index: int) -> int | None:
        """The explained class of sample ``index``, when the target is a class."""
        indices = getattr(self.target, "indices", None)
        return int(indices[index]) if isinstance(indices, Tensor) else None

    def target_label(self, index: int) -> str | None:
        """The explained class name of sample ``index``, when known."""
        cls = self.target_index(index)
        if cls is None:
            return None
        foil = getattr(self.target, "foil", None)
        if isinstance(foil, Tensor):
            return f"{self._class_name(cls)} − {self._class_name(int(foil[index]))}"
        return self._class_name(cls)

    def _class_name(self, cls: int) -> str:
        return str(self.labels[cls]) if self.labels is not None and cls < len(self.labels) else str(cls)

    def source(self, index: int) -> str:
        return self.sources[index] if self.sources is not None else f"input {index}"

    # -- conversions ------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """Attributions as a NumPy array (B, *input_shape)."""
        return self.attributions.detach().cpu().numpy()

    def to_dict(self, include_scores: bool = True) -> dict[str, Any]:
        """The explanation in the one JSON schema of every modality (see the module docstring)."""
        items = []
        for i in range(len(self)):
            scores = self.item_scores(i).detach().cpu().double()
            cls = self.target_index(i)
            target: dict[str, Any] = (
                {"index": cls, "label": self.target_label(i)} if cls is not None else {"description": repr(self.target)}
            )
            target["score"] = round(float(self.scores[i]), 6)
            items.append({
                "input": self.source(i),
                "target": target,
                "predictions": [p.as_dict() for p in self.predictions[i]] if self.predictions else [],
                "shape": list(scores.shape),
                "scores": _rounded(scores.tolist()) if include_scores else None,
                "extra": self.item_extra(i),
            })
        return {
            "schema": SCHEMA,
            "modality": self.modality,
            "model": self.model_name,
            "method": self.method,
            "params": {k: _plain(v) for k, v in self.params.items()},
            "rules": self.rules.describe() if self.rules is not None else None,
            "units": self.units,
            "exact_gradient_ops": dict(self.extras.get("exact_gradient_ops", {})),
            "items": items,
        }

    def to_json(self, include_scores: bool = True) -> str:
        return json.dumps(self.to_dict(include_scores))

    # -- output -----------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the explanation; the suffix picks the format (``.json``, ``.pt`` and the
        modality's renderings, see :attr:`save_formats`)."""
        path = Path(path)
        writer = self.save_formats().get(path.suffix.lower())
        if writer is None:
            raise SpmmInputError(
                f"cannot save a {self.modality} explanation as {path.suffix or 'a file without suffix'!r}; "
                f"use one of {', '.join(sorted(self.save_formats()))}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)
        return path

    def save_formats(self) -> dict[str, Any]:
        """Suffix -> writer(path); modalities add their renderings."""
        return {".json": self._save_json, ".pt": self._save_tensors}

    def _save_json(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n")

    def _save_tensors(self, path: Path) -> None:
        torch.save(
            {"attributions": self.attributions.cpu(), "inputs": self.inputs.cpu(), "scores": self.scores.cpu(),
             "explanation": self.to_dict(include_scores=False)},
            path,
        )

    def aggregate(self, by: str, **options: Any) -> Any:
        """Scores summed over larger units; modalities list theirs in the error message."""
        raise SpmmInputError(f"a {self.modality} explanation cannot be aggregated by {by!r}")

    def summary(self) -> str:
        """A readable text summary: per input, the top prediction and the explained target."""
        lines = [f"{self.method} on {self.model_name or 'model'} ({self.modality})"]
        for i in range(len(self)):
            top = self.predictions[i][0] if self.predictions else None
            predicted = f"predicted {top.label} ({top.probability:.1%}); " if top is not None else ""
            target = self.target_label(i) or repr(self.target)
            source = _shortened(self.source(i))
            lines.append(f"  {source}: {predicted}explained {target!r} (score {float(self.scores[i]):.4g})")
        exact = self.extras.get("exact_gradient_ops")
        if exact:
            ops = ", ".join(f"{op} ×{count}" for op, count in exact.items())
            lines.append(f"  kept their exact gradient (no rule): {ops}")
        return "\n".join(lines)

    def show(self) -> None:
        """Display inline in a notebook (figure or HTML), else print :meth:`summary`."""
        if _in_notebook():
            self._show_inline()
        else:
            print(self.summary(), file=sys.stdout)

    def _show_inline(self) -> None:
        from IPython.display import display

        display(self.summary())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(method={self.method!r}, target={self.target!r}, "
            f"attributions={tuple(self.attributions.shape)}, scores={[round(s, 4) for s in self.scores.tolist()]})"
        )


def _shortened(text: str) -> str:
    """``text``, or its start and end around an ellipsis when longer than :data:`SHOWN_CHARACTERS`."""
    if len(text) <= SHOWN_CHARACTERS:
        return text
    half = SHOWN_CHARACTERS // 2
    return f"{text[:half]}…{text[-half:]}"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython()
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


def _rounded(value: Any) -> Any:
    """Six significant digits; NaN (an undefined score, such as a generated token on a later column) is null."""
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return None if value != value else float(f"{value:.6g}")


def _plain(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.tolist() if value.numel() <= 16 else f"tensor{tuple(value.shape)}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)
