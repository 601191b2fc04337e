"""The result of every explanation: :class:`Explanation` and its one JSON schema.

The core returns a plain :class:`Explanation` (attributions shaped like the inputs).
Modalities subclass it (images, texts, audio) to give ``scores`` in their own units,
renderings (PNG, HTML, WAV) and aggregations; every subclass writes the same
JSON layout (:data:`SCHEMA`, documented in the README), which :meth:`Explanation.load` reads back
(:class:`SavedExplanation`):

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
            items.append({
                "input": self.source(i),
                "target": self.item_target(i),
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
            "rules": self.describe_rules(),
            "units": self.units,
            "exact_gradient_ops": dict(self.extras.get("exact_gradient_ops", {})),
            "items": items,
        }

    def item_target(self, index: int) -> dict[str, Any]:
        """The JSON ``target`` of sample ``index``: ``{"index", "label", "score"}`` for a class, else
        ``{"description", "score"}``."""
        cls = self.target_index(index)
        target: dict[str, Any] = (
            {"index": cls, "label": self.target_label(index)} if cls is not None else {"description": repr(self.target)}
        )
        target["score"] = round(float(self.scores[index]), 6)
        return target

    def describe_rules(self) -> dict[str, Any] | None:
        """The JSON ``rules`` entry: the rule set's name, temperatures and module rules."""
        return self.rules.describe() if self.rules is not None else None

    @staticmethod
    def load(path: str | Path) -> "Explanation":
        """Read back what :meth:`save` wrote as ``.json``: an explanation whose :meth:`to_dict` equals the
        file's (scores in the modality's units, per sample; see :class:`SavedExplanation`)."""
        return load_explanation(path)

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

    def aggregate(self, by: str, **options: Any) -> "Explanation":
        """Scores summed over larger units, as an explanation (a :class:`GroupedExplanation`, or the
        modality's own class); modalities list their units in the error message."""
        raise SpmmInputError(f"a {self.modality} explanation cannot be aggregated by {by!r}")

    def grouped(self, by: str, group_scores: Tensor, names: list[list[str]] | None = None,
                spans: list[list[tuple[int, int]]] | None = None) -> "GroupedExplanation":
        """This explanation with its attributions replaced by ``group_scores`` (B, *group shape) summed
        over the units ``by`` (see :class:`GroupedExplanation`)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(Explanation)}
        return GroupedExplanation(**{**fields, "attributions": group_scores}, by=by, source_modality=self.modality,
                                  group_names=names, group_spans=spans)

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
        if in_notebook():
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


@dataclasses.dataclass(repr=False)
class GroupedExplanation(Explanation):
    """What :meth:`Explanation.aggregate` returns: attributions summed over larger units.

    attributions: (B, *group shape) group scores (patches (B, H/s, W/s), frames (B, T'), …); for
        named groups of varying number (words, sentences) (B, G) with NaN past an item's last group.
    inputs, target, scores, predictions…: those of the explanation it came from.
    by: the units (``"patches"``, ``"words"``…); source_modality: the modality it came from.
    group_names, group_spans: per sample, each group's text and (start, end) character span, when
        the groups are pieces of a text.
    """

    by: str = ""
    source_modality: str = "tensor"
    group_names: list[list[str]] | None = None
    group_spans: list[list[tuple[int, int]]] | None = None

    @property
    def modality(self) -> str:  # type: ignore[override]
        return self.source_modality

    @property
    def units(self) -> str:  # type: ignore[override]
        return self.by

    def item_scores(self, index: int) -> Tensor:
        """The group scores of sample ``index`` (only its own groups when they are named)."""
        row = self.attributions[index]
        return row[: len(self.group_names[index])] if self.group_names is not None else row

    def item_extra(self, index: int) -> dict[str, Any]:
        """The group names and character spans of sample ``index``, when known."""
        extra: dict[str, Any] = {}
        if self.group_names is not None:
            extra["groups"] = list(self.group_names[index])
        if self.group_spans is not None:
            extra["spans"] = [list(span) for span in self.group_spans[index]]
        return extra


def padded_rows(rows: Sequence[Sequence[float]]) -> Tensor:
    """(len(rows), longest) float64 tensor of ``rows``, NaN after each row's end."""
    table = torch.full((len(rows), max((len(r) for r in rows), default=0)), float("nan"), dtype=torch.float64)
    for i, row in enumerate(rows):
        table[i, : len(row)] = torch.tensor(list(row), dtype=torch.float64)
    return table


@dataclasses.dataclass(repr=False)
class SavedExplanation(Explanation):
    """An explanation read from its JSON file.

    attributions: (B, *shape) each sample's scores (NaN where undefined), when every sample has the
        same shape; else (B, longest) of the flattened scores, NaN padded.  ``inputs`` is empty
        (B, 0): the file does not hold them.
    record: the file's fields other than the items; items: the per-sample entries as written.
    """

    record: dict[str, Any] = dataclasses.field(default_factory=dict)
    items: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def modality(self) -> str:  # type: ignore[override]
        return self.record["modality"]

    @property
    def units(self) -> str:  # type: ignore[override]
        return self.record["units"]

    def item_scores(self, index: int) -> Tensor:
        """The scores of sample ``index`` as saved (NaN for ``null``), in their saved shape."""
        item = self.items[index]
        if item["scores"] is None:
            return torch.full(item["shape"], float("nan"), dtype=torch.float64)
        return torch.tensor(_nan_for_null(item["scores"]), dtype=torch.float64).reshape(item["shape"])

    def item_extra(self, index: int) -> dict[str, Any]:
        return self.items[index]["extra"]

    def item_target(self, index: int) -> dict[str, Any]:
        return dict(self.items[index]["target"])

    def target_index(self, index: int) -> int | None:
        return self.items[index]["target"].get("index")

    def target_label(self, index: int) -> str | None:
        target = self.items[index]["target"]
        return target.get("label", target.get("description"))

    def describe_rules(self) -> dict[str, Any] | None:
        return self.record["rules"]

    def to_dict(self, include_scores: bool = True) -> dict[str, Any]:
        """The file's dictionary (samples saved without scores keep ``"scores": null``)."""
        written = super().to_dict(include_scores)
        for item, saved in zip(written["items"], self.items):
            if saved["scores"] is None:
                item["scores"] = None
        return written


def load_explanation(path: str | Path) -> SavedExplanation:
    """The :class:`SavedExplanation` of a ``.json`` file written by :meth:`spmm.Explanation.save`."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise SpmmInputError(f"Explanation.load reads the .json files Explanation.save writes, not {path.name!r}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpmmInputError(f"no explanation file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SpmmInputError(f"{path} is not JSON: {error}") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise SpmmInputError(f"{path} is not an explanation file (its schema is not {SCHEMA!r})")
    items = record.pop("items")
    scores = [item["scores"] for item in items]
    shapes = {tuple(item["shape"]) for item in items}
    if len(shapes) == 1 and all(s is not None for s in scores):
        attributions = torch.tensor(_nan_for_null(scores), dtype=torch.float64).reshape(len(items), *shapes.pop())
    else:
        attributions = padded_rows([[] if s is None else _flat(s) for s in scores])  # no scores saved: no row
    return SavedExplanation(
        attributions=attributions,
        inputs=torch.empty(len(items), 0),
        target=[item["target"] for item in items],
        method=record["method"],
        params=record["params"],
        output=None,
        scores=torch.tensor([item["target"]["score"] for item in items], dtype=torch.float64),
        predictions=[[Prediction(p["index"], p["label"], p["probability"]) for p in item["predictions"]] for item in items],
        sources=[item["input"] for item in items],
        model_name=record["model"],
        record=record,
        items=items,
    )


def _nan_for_null(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan_for_null(v) for v in value]
    return float("nan") if value is None else value


def _flat(value: Any) -> list[float]:
    """The numbers of nested lists in row-major order, NaN for ``null``."""
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [float("nan") if value is None else value]


def _shortened(text: str) -> str:
    """``text``, or its start and end around an ellipsis when longer than :data:`SHOWN_CHARACTERS`."""
    if len(text) <= SHOWN_CHARACTERS:
        return text
    half = SHOWN_CHARACTERS // 2
    return f"{text[:half]}…{text[-half:]}"


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where ``show()`` displays inline)."""
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
