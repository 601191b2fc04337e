"""The page's model cache (no browser, no Gradio needed)."""

from __future__ import annotations

import pytest

import spmm
from spmm.cli.page import results


def test_models_load_once_and_keep_few_label_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load(spec: str, **options):
        calls.append((spec, options))
        return object()

    monkeypatch.setattr(spmm, "load", load)
    models = results.Models({"honk-res8": {"weights": "h.pt"}})
    assert models.get("honk-res8") is models.get("honk-res8")
    assert calls == [("honk-res8", {"weights": "h.pt"})]
    label_sets = [(f"a{i}", f"b{i}") for i in range(results.LABELLED_KEPT + 1)]
    first = models.get("zs", label_sets[0])
    for labels in label_sets[1:]:
        models.get("zs", labels)
    assert models.get("zs", label_sets[-1]) is models.get("zs", label_sets[-1])
    assert models.get("zs", label_sets[0]) is not first, "the least recently used label set was kept"
    assert models.get("honk-res8") is models.get("honk-res8")
    assert sum(spec == "honk-res8" for spec, _ in calls) == 1
    assert calls[-1] == ("zs", {"labels": ["a0", "b0"]})
