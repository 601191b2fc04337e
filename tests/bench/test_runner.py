import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from spmm.bench.runner import Batch, MetricSpec, collect_scores, run_benchmark, write_reports
from spmm.bench.tables import paired_differences, paired_markdown, summary_table
from spmm.errors import SpmmInputError
from spmm.metrics import FaithfulnessCorrelation, Focus, MaxSensitivity, MonotonicityCorrelation, explainer, square_patches


def tiny_setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    generator = torch.Generator().manual_seed(1)
    batches = [
        Batch([f"s{b}{i}" for i in range(3)], torch.rand((3, 1, 8, 8), generator=generator) * 2 - 1, torch.tensor([0, 1, 2]))
        for b in range(2)
    ]
    explainers = {"soft_pullback": explainer("soft_pullback"), "gradient": explainer("gradient"),
                  "smoothgrad": explainer("smoothgrad", samples=3, seed=0)}
    metrics = {
        "faithfulness_correlation": MetricSpec(FaithfulnessCorrelation(), {"groups": square_patches((1, 8, 8), 4)}),
        "monotonicity_correlation": MetricSpec(MonotonicityCorrelation(groups_per_step=16, samples=2), {"groups": square_patches((1, 8, 8), 1)}),
        "max_sensitivity": MetricSpec(MaxSensitivity(samples=2)),
    }
    return model, batches, explainers, metrics


def test_interrupted_run_resumes_to_the_same_table(tmp_path):
    model, batches, explainers, metrics = tiny_setup()
    full = run_benchmark(model, batches, explainers, metrics, tmp_path / "full", progress=False)
    assert len(full) == 2 * 3 * 3 * 3  # batches × samples × explainers × metrics
    partial = run_benchmark(model, batches, explainers, metrics, tmp_path / "resumed", progress=False, stop_after=2)
    assert len(partial) == 2 * 3 * 3
    resumed = run_benchmark(model, batches, explainers, metrics, tmp_path / "resumed", progress=False)
    key = ["sample", "explainer", "metric"]
    pd.testing.assert_frame_equal(full.sort_values(key).reset_index(drop=True), resumed.sort_values(key).reset_index(drop=True))
    assert not resumed["score"].isna().any()


def test_a_metric_argument_no_batch_provides_stops_the_run_before_any_work(tmp_path):
    model, batches, explainers, _ = tiny_setup()
    focus = {"focus": MetricSpec(Focus(), {"groups": square_patches((1, 8, 8), 4)})}
    with pytest.raises(SpmmInputError, match="'focus' needs target_groups"):
        run_benchmark(model, batches, explainers, focus, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_reports_are_written_and_mark_the_best(tmp_path):
    model, batches, explainers, metrics = tiny_setup()
    scores = run_benchmark(model, batches[:1], explainers, metrics, tmp_path, progress=False)
    text = write_reports(scores, tmp_path, {"seed": 0})
    for name in ("scores.csv", "summary.csv", "paired.csv", "summary.md", "settings.json"):
        assert (tmp_path / name).exists()
    summary = pd.read_csv(tmp_path / "summary.csv")
    sens = summary[summary.metric == "max_sensitivity"]
    assert sens.loc[sens["best"], "mean"].item() == sens["mean"].min()  # lower is better
    assert "**" in text and "soft_pullback" in text
    assert collect_scores(tmp_path).shape == scores.shape


def test_summary_and_paired_bootstrap_against_hand_computation():
    rng = np.random.default_rng(0)
    sp = rng.normal(0.5, 0.1, 30)
    grad = sp - 0.2 + rng.normal(0, 0.01, 30)
    scores = pd.DataFrame(
        [{"sample": str(i), "explainer": e, "metric": "faithfulness_correlation", "score": v}
         for e, values in (("soft_pullback", sp), ("gradient", grad)) for i, v in enumerate(values)]
    )
    summary = summary_table(scores).set_index("explainer")
    assert summary.loc["soft_pullback", "mean"] == pytest.approx(sp.mean())
    assert summary.loc["gradient", "std"] == pytest.approx(grad.std(ddof=1))
    assert summary.loc["soft_pullback", "best"] and not summary.loc["gradient", "best"]
    paired = paired_differences(scores, resamples=4000).iloc[0]
    diff = grad - sp
    assert paired["mean_diff"] == pytest.approx(diff.mean())
    half_width = 1.96 * diff.std(ddof=1) / np.sqrt(30)
    assert paired["ci_low"] == pytest.approx(diff.mean() - half_width, abs=half_width * 0.25)
    assert paired["ci_high"] == pytest.approx(diff.mean() + half_width, abs=half_width * 0.25)
    assert paired["reference_better"]
    assert not paired["reference_worse"]


def test_paired_marks_both_directions_and_gives_no_ci_for_a_single_sample():
    def table(metric, sp, other):
        return pd.DataFrame([{"sample": str(i), "explainer": e, "metric": metric, "score": v}
                             for e, values in (("soft_pullback", sp), ("gradient", other)) for i, v in enumerate(values)])

    rng = np.random.default_rng(1)
    sp = rng.normal(1.0, 0.1, 20)
    # infidelity: lower is better, so a gradient 0.5 lower beats the reference
    paired = paired_differences(table("infidelity", sp, sp - 0.5 + rng.normal(0, 0.01, 20))).iloc[0]
    assert paired["reference_worse"] and not paired["reference_better"]
    assert "†" in paired_markdown(paired_differences(table("infidelity", sp, sp - 0.5)))
    single = paired_differences(table("infidelity", sp[:1], sp[:1] + 3.0)).iloc[0]
    assert single["n"] == 1 and np.isnan(single["ci_low"]) and not (single["reference_better"] or single["reference_worse"])
    assert "(n = 1, no CI)" in paired_markdown(paired_differences(table("infidelity", sp[:1], sp[:1] + 3.0)))
