"""The extension contract (``spmm.extend``): a new modality — 1-D time series — defined, registered,
explained, benchmarked and saved in this one file; and each other registry reached through it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Sequence

import pytest
import torch
from torch import Tensor, nn

import spmm
import spmm.extend as extend
from spmm.bench.explainers import bench_explainers
from spmm.bench.runner import Batch, MetricSpec, run_benchmark
from spmm.load import MODULE_WRAPPERS, NAMED_MODELS
from spmm.methods.registry import METHODS
from spmm.metrics import FeatureGroups, make_metric, segments
from spmm.metrics.registry import METRICS
from spmm.tasks import TASKS, task_for

SEGMENT = 8
LENGTH = 32


# -- the toy modality: everything a time-series modality needs -----------------------------------
@dataclasses.dataclass(repr=False)
class SeriesExplanation(spmm.Explanation):
    """Attributions on series (B, 1, N); ``scores`` are the N time steps."""

    modality: ClassVar[str] = "timeseries"
    units: ClassVar[str] = "time steps"

    def item_scores(self, index: int) -> Tensor:
        return self.attributions[index, 0]

    def aggregate(self, by: str = "segments", size: int = SEGMENT) -> spmm.Explanation:
        if by != "segments":
            raise spmm.SpmmInputError(f"series aggregate by 'segments', not {by!r}")
        groups = series_groups(self.attributions.shape[-1], size)
        return self.grouped("segments", groups.sum(self.attributions))


def series_groups(length: int, size: int = SEGMENT) -> FeatureGroups:
    """Consecutive segments of ``size`` steps of a (1, N) series."""
    return segments((1, length), size, dim=1)


class SeriesModality:
    """Series given as a (B, N) tensor or a list of (N,) sequences -> (B, 1, N) float inputs."""

    name = "timeseries"

    def prepare(self, model: Any, inputs: Any) -> spmm.Prepared:
        rows = [torch.as_tensor(row, dtype=torch.float32) for row in inputs]
        if not rows or any(row.dim() != 1 or row.numel() != LENGTH for row in rows):
            raise spmm.SpmmInputError(f"give series of {LENGTH} steps")
        return spmm.Prepared(torch.stack(rows).unsqueeze(1), model, [f"series {i}" for i in range(len(rows))])

    def method_params(self, method: str, inputs: Tensor, model: Any) -> dict[str, Any]:
        return {}

    def explanation(self, base: spmm.Explanation, prepared: spmm.Prepared) -> SeriesExplanation:
        return base.recast(SeriesExplanation)


def wrap_series_model(module: nn.Module, labels: Sequence[str] | None = None, name: str = "") -> spmm.Explainable:
    return spmm.Explainable(module, SeriesModality(), spmm.RuleSet(), labels, name or type(module).__name__)


def tiny_series_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * LENGTH, 3)).eval()


@pytest.fixture
def registered():
    """Register the toy modality and a named model through spmm.extend; remove them afterwards."""
    extend.register_modality("timeseries", wrap_series_model)
    extend.register_model("toy-series", "timeseries", "a tiny Conv1d over 32-step series")(
        lambda: wrap_series_model(tiny_series_model(), ["low", "mid", "high"], "toy-series"))
    yield
    MODULE_WRAPPERS.pop("timeseries")
    NAMED_MODELS.pop("toy-series")


@pytest.fixture
def series() -> Tensor:
    return torch.randn(4, LENGTH, generator=torch.Generator().manual_seed(2))


def test_a_new_modality_is_explained_benchmarked_and_saved(registered, series, tmp_path):
    assert "timeseries" in extend.modalities() and "toy-series" in spmm.list_models()
    m = spmm.load("toy-series")
    ex = m.explain(series, target="high", method="gradient")
    assert isinstance(ex, SeriesExplanation) and ex.attributions.shape == (4, 1, LENGTH)
    # the gradient of the "high" logit, by autograd on the module itself
    x = series.unsqueeze(1).requires_grad_(True)
    (expected,) = torch.autograd.grad(m.model(x)[:, 2].sum(), x)
    torch.testing.assert_close(ex.attributions, expected)
    with torch.no_grad():
        order = m.model(series[:1].unsqueeze(1))[0].argsort(descending=True).tolist()
    assert [p.label for p in ex.predictions[0]] == [["low", "mid", "high"][i] for i in order]
    # the same modality wraps a user's module
    wrapped = spmm.load(tiny_series_model(), modality="timeseries")
    torch.testing.assert_close(wrapped.explain(series, 2, "gradient").attributions, expected)

    record = json.loads(ex.save(tmp_path / "series.json").read_text())
    assert (record["modality"], record["units"], record["model"]) == ("timeseries", "time steps", "toy-series")
    assert record["items"][0]["shape"] == [LENGTH] and record["items"][1]["target"]["label"] == "high"
    assert spmm.Explanation.load(tmp_path / "series.json").to_dict() == record
    segments_of = ex.aggregate("segments")
    torch.testing.assert_close(segments_of.attributions, ex.attributions[:, 0].reshape(4, LENGTH // SEGMENT, SEGMENT).sum(2))

    # benchmarked with the bench runner: 4 series, one faithfulness metric on the modality's groups
    prepared = m.prepare(series)
    batch = Batch([f"s{i}" for i in range(4)], prepared.inputs, torch.tensor([0, 1, 2, 0]))
    metrics = {"faithfulness_correlation": MetricSpec(make_metric("faithfulness_correlation"),
                                                      {"groups": series_groups(LENGTH)})}
    explainers = bench_explainers(["soft_pullback", "gradient"], m.rules)
    scores = run_benchmark(m.model, [batch], explainers, metrics, tmp_path / "bench", progress=False)
    assert len(scores) == 4 * 2 and scores["score"].between(-1, 1).all()


def test_peers_are_methods(registered, series):
    m = spmm.load("toy-series")
    assert "captum:saliency" in spmm.list_methods(peers=True) and "captum:saliency" not in spmm.list_methods()
    saliency = m.explain(series, 1, "captum:saliency")
    x = series.unsqueeze(1).requires_grad_(True)
    (gradient,) = torch.autograd.grad(m.model(x)[:, 1].sum(), x)
    torch.testing.assert_close(saliency.attributions, gradient.abs())  # Captum's Saliency: |gradient| by default
    missing = [name for name in spmm.list_methods(peers=True) if METHODS[name].requires is not None
               and METHODS[name].requires[0] in ("lxt", "zennit") and not _installed(METHODS[name].requires[0])]
    for name in missing[:1]:
        with pytest.raises(spmm.SpmmInputError, match=r"needs (lxt|zennit): pip install 'spmm\[peers\]'"):
            m.explain(series, 1, name)
    with pytest.raises(spmm.SpmmInputError, match="unknown method 'lxt:nothing'"):
        m.explain(series, 1, "lxt:nothing")


def _installed(package: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_every_registry_is_reached_through_extend(registered, series):
    m = spmm.load("toy-series")
    try:
        @extend.register_method("doubled_gradient", pullback=False, summary="2 × gradient")
        def doubled_gradient(context, inputs):
            gradient, _ = context.gradient(inputs)
            return 2 * gradient, {}

        torch.testing.assert_close(m.explain(series, 0, "doubled_gradient").attributions,
                                   2 * m.explain(series, 0, "gradient").attributions)

        from spmm.metrics.base import Metric, MetricResult

        @extend.register_metric
        class MeanAbsAttribution(Metric):
            name, higher_is_better, category = "mean_abs_attribution", False, "complexity"

            def __call__(self, model, inputs, targets, attributions):
                return MetricResult(attributions.abs().flatten(1).mean(1), {})

        assert type(make_metric("mean_abs_attribution")) is MeanAbsAttribution

        class Doubler(nn.Module):
            def forward(self, x):
                return 2 * x

        def halved(module, inputs, output, temperatures):
            return extend.keep_forward(output, inputs[0])  # the backward of x -> x

        extend.register_rule(Doubler, halved, name="halved")
        model = nn.Sequential(nn.Flatten(), Doubler(), nn.Linear(LENGTH, 2)).eval()
        got = spmm.explain(model, series.unsqueeze(1), 0, "soft_pullback").attributions
        torch.testing.assert_close(got[:, 0], model[2].weight[0].detach().expand(4, -1))

        @extend.register_task("toy-series-task", ("ToySeriesForClassification",))
        def load_toy(model, source, **options):
            return wrap_series_model(model)

        assert task_for("ToySeriesForClassification").load is load_toy
    finally:
        METHODS.pop("doubled_gradient", None)
        METRICS.pop("mean_abs_attribution", None)
        spmm.unregister_module_rule(Doubler)
        TASKS[:] = [task for task in TASKS if task.name != "toy-series-task"]


def test_a_peer_method_explains_as_its_bench_explainer_does():
    """``m.explain(method="lxt:attnlrp")`` with the extra installed: the bench explainer (checked against
    stock LXT in tests/peers) on the same prepared embeddings, wrapped as the model's explanation."""
    pytest.importorskip("lxt", reason="the peers extra is not installed: pip install 'spmm[peers]'")
    m = spmm.load("tiny-lm")
    texts = ["the movie was", "a great"]
    ex = m.explain(texts, " good", "lxt:attnlrp")
    assert type(ex).__name__ == "TextExplanation" and ex.method == "lxt:attnlrp"
    prepared = m.prepare(texts)
    explain_fn = bench_explainers(["lxt:attnlrp"], m.rules)["lxt:attnlrp"]
    expected = explain_fn(prepared.model, prepared.inputs, ex.target.indices)
    torch.testing.assert_close(ex.attributions, expected)
