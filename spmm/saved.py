"""Explanations read back from the JSON that :meth:`spmm.Explanation.save` writes.

The JSON holds each sample's scores in its modality's units (pixels, words, time-frequency bins,
tokens × tokens), not the attributions on the model's inputs, so what is read back is a
:class:`SavedExplanation`: those scores, the targets, predictions, parameters and rules as written.
Its :meth:`~spmm.Explanation.to_dict` equals the file's, whatever modality wrote it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.explanation import SCHEMA, Explanation, Prediction, padded_rows


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
        attributions = padded_rows([_flat(s) for s in scores])
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
    if value is None:
        return []
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [float("nan") if value is None else value]
