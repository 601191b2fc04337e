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


def test_download_names_are_input_model_method_target_sanitised() -> None:
    stem = results.download_stem("/tmp/upload/My Cat (1).JPEG", "efficientnet-lite0", "soft_pullback",
                                 "tabby, tabby cat")
    assert stem == "My_Cat_1-efficientnet-lite0-soft_pullback-tabby_tabby_cat"
    assert results.download_stem("clip.wav", "/models/honk res8.pt", "gradient", "yes") == \
        "clip-honk_res8.pt-gradient-yes"
    assert "/" not in results.download_stem("../../etc/passwd", "a/b", "m", "../x")


def test_sample_units_come_from_the_method_registry() -> None:
    from spmm.methods.registry import get_method

    assert results.sample_units("smooth_pullback") == get_method("smooth_pullback").defaults["samples"]
    assert results.sample_units("integrated_gradients") == get_method("integrated_gradients").defaults["steps"]
    fusion = get_method("fusiongrad").defaults
    assert results.sample_units("fusiongrad") == fusion["model_samples"] * fusion["input_samples"]
    assert results.sample_units("soft_pullback") == 0


def test_forward_progress_counts_rows_and_removes_its_hook() -> None:
    import torch

    model = torch.nn.Linear(3, 2)
    seen: list[tuple[int, int]] = []
    with results.forward_progress(model, inputs=2, units=5, report=lambda done, total: seen.append((done, total))):
        model(torch.zeros(4, 3))
        model(torch.zeros(4, 3))
        model(torch.zeros(4, 3))
    assert seen == [(4, 10), (8, 10), (10, 10)]
    assert not model._forward_hooks
    with pytest.raises(RuntimeError):
        with results.forward_progress(model, 1, 5, lambda done, total: None):
            raise RuntimeError("boom")
    assert not model._forward_hooks, "the hook survived an exception"


def test_smooth_pullback_reports_its_samples_through_the_page_progress() -> None:
    import torch

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).eval()
    loops: list[tuple[str, int, int]] = []

    def loop(iterable, description, total):
        steps = list(iterable)
        loops.append((description, total, len(steps)))
        return steps

    progress = results.Progress(loop=loop, count=lambda done, total, description: None)
    loaded = type("Loaded", (), {"model": network})()
    with results._reporting(progress, loaded, "smooth_pullback"):
        spmm.explain(network, torch.randn(1, 6), 0, "smooth_pullback", batch_size=10)
    samples = results.sample_units("smooth_pullback")
    # SmoothGrad reports its passes of batch_size noisy copies itself: one step per pass
    assert loops == [("smooth_pullback: samples", samples // 10, samples // 10)]
    assert not network._forward_hooks


def test_the_pages_example_clips_include_a_spoken_keyword_the_default_recognises(tmp_path) -> None:
    """The audio tab defaults to kws-res8, so its first example is speech it recognises (the shipped
    Speech Commands "stop", equal to the quick start's file), then the tone for the pitch tracker."""
    pytest.importorskip("gradio", reason="the page needs the ui extra")
    pytest.importorskip("skimage", reason="the page's example pictures come from scikit-image")
    from pathlib import Path

    from spmm.cli.page.app import DEFAULT_MODELS, _example_files

    _, clips = _example_files(tmp_path)
    assert DEFAULT_MODELS["audio"][0] == "kws-res8" and len(clips) == 2
    quick_start = Path(__file__).parents[2] / "examples" / "inputs" / "stop.wav"
    assert Path(clips[0]).read_bytes() == quick_start.read_bytes()
    assert spmm.load("kws-res8").predict(clips[0], k=1)[0][0].label == "stop"
