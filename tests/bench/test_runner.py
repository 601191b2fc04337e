import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from spmm.bench.runner import Batch, MetricSpec, canonical, checkpoint_keys, run_benchmark, write_reports
from spmm.bench.tables import paired_differences, paired_markdown, summary_markdown, summary_table
from spmm.errors import SpmmInputError
from spmm.metrics import (
    Comprehensiveness, FaithfulnessCorrelation, FaithfulnessEstimate, FeatureGroups, Focus, Infidelity, MaxSensitivity,
    MonotonicityCorrelation, explainer,
    square_patches,
)

KEY = ["sample", "explainer", "metric"]


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


def light_setup():
    """One tiny CNN, two batches of 3 samples, gradient and SmoothGrad, two cheap metrics."""
    model, batches, _, _ = tiny_setup()
    explainers = {"gradient": explainer("gradient"), "smoothgrad": explainer("smoothgrad", samples=2, seed=0)}
    metrics = {
        "faithfulness_correlation": MetricSpec(FaithfulnessCorrelation(), {"groups": square_patches((1, 8, 8), 4)}),
        "faithfulness_estimate": MetricSpec(FaithfulnessEstimate(groups_per_step=4), {"groups": square_patches((1, 8, 8), 2)}),
    }
    return model, batches, explainers, metrics


def _sorted(frame):
    return frame.sort_values(KEY).reset_index(drop=True)


def test_interrupted_run_resumes_to_the_same_table(tmp_path):
    model, batches, explainers, metrics = tiny_setup()
    settings = {"n": 6, "seed": 0}
    full = run_benchmark(model, batches, explainers, metrics, tmp_path / "full", progress=False, run_settings=settings)
    assert len(full) == 2 * 3 * 3 * 3  # batches × samples × explainers × metrics
    partial = run_benchmark(model, batches, explainers, metrics, tmp_path / "resumed", progress=False, stop_after=2,
                            run_settings=settings)
    assert len(partial) == 2 * 3 * 3
    assert len(pd.read_csv(tmp_path / "resumed" / "missing.csv")) == 2 * 3 - 2
    resumed = run_benchmark(model, batches, explainers, metrics, tmp_path / "resumed", progress=False, run_settings=settings)
    pd.testing.assert_frame_equal(full, resumed)
    assert not resumed["score"].isna().any()
    assert pd.read_csv(tmp_path / "resumed" / "missing.csv").empty
    assert write_reports(full, tmp_path / "full", settings) == write_reports(resumed, tmp_path / "resumed", settings)


def test_changing_n_reads_only_the_rows_of_the_new_samples(tmp_path):
    model, batches, explainers, metrics = light_setup()
    run_benchmark(model, batches, explainers, metrics, tmp_path, progress=False, run_settings={"n": 6})
    fewer = run_benchmark(model, batches[:1], explainers, metrics, tmp_path, progress=False, run_settings={"n": 3})
    assert sorted(set(fewer["sample"])) == batches[0].ids
    assert len(fewer) == 3 * 2 * 2
    # n is part of every key: the first batch was scored again, not taken from the n = 6 run
    assert len(list((tmp_path / "checkpoints").glob("*.csv"))) == 2 * 2 + 2


def test_changing_the_metric_list_neither_keeps_old_metrics_nor_skips_new_ones(tmp_path):
    model, batches, explainers, metrics = light_setup()
    run_benchmark(model, batches, explainers, metrics, tmp_path, progress=False)
    only_one = {"faithfulness_correlation": metrics["faithfulness_correlation"]}
    assert set(run_benchmark(model, batches, explainers, only_one, tmp_path, progress=False)["metric"]) == {"faithfulness_correlation"}
    other = only_one | {"infidelity": MetricSpec(Infidelity(draws=1), {"groups": square_patches((1, 8, 8), 4)})}
    scores = run_benchmark(model, batches, explainers, other, tmp_path, progress=False)
    assert set(scores["metric"]) == {"faithfulness_correlation", "infidelity"} and len(scores) == 6 * 2 * 2
    assert not scores["score"].isna().any()


def _with_metric_parameter(setup):
    metrics = dict(setup[3])
    metrics["faithfulness_correlation"] = MetricSpec(FaithfulnessCorrelation(baseline=0.5), {"groups": square_patches((1, 8, 8), 4)})
    return setup[2], metrics


def _with_explainer_parameter(setup):
    return {**setup[2], "smoothgrad": explainer("smoothgrad", samples=2, seed=1)}, setup[3]


def _with_metric_groups(setup):
    metrics = dict(setup[3])
    metrics["faithfulness_correlation"] = MetricSpec(FaithfulnessCorrelation(), {"groups": square_patches((1, 8, 8), 2)})
    return setup[2], metrics


@pytest.mark.parametrize("change", [_with_metric_parameter, _with_explainer_parameter, _with_metric_groups])
def test_changed_settings_are_scored_again_into_the_same_folder(tmp_path, change):
    setup = light_setup()
    model, batches, explainers, metrics = setup
    first = run_benchmark(model, batches, explainers, metrics, tmp_path / "shared", progress=False)
    new_explainers, new_metrics = change(setup)
    second = run_benchmark(model, batches, new_explainers, new_metrics, tmp_path / "shared", progress=False)
    fresh = run_benchmark(model, batches, new_explainers, new_metrics, tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(second, fresh)
    assert not np.allclose(_sorted(first)["score"], _sorted(second)["score"])  # the change matters


def test_other_weights_or_other_inputs_under_the_same_ids_are_scored_again(tmp_path):
    model, batches, explainers, metrics = light_setup()
    first = run_benchmark(model, batches, explainers, metrics, tmp_path, progress=False)
    with torch.no_grad():
        model[0].weight.mul_(-1.0)
    flipped = run_benchmark(model, batches, explainers, metrics, tmp_path, progress=False)
    pd.testing.assert_frame_equal(flipped, run_benchmark(model, batches, explainers, metrics, tmp_path / "fresh", progress=False))
    assert not np.allclose(_sorted(first)["score"], _sorted(flipped)["score"])
    shifted = [Batch(b.ids, b.inputs.flip(-1), b.targets) for b in batches]
    moved = run_benchmark(model, shifted, explainers, metrics, tmp_path, progress=False)
    pd.testing.assert_frame_equal(moved, run_benchmark(model, shifted, explainers, metrics, tmp_path / "fresh2", progress=False))
    assert not np.allclose(_sorted(flipped)["score"], _sorted(moved)["score"])


def _refusing(explainers):
    """Explainers with the same method and parameters (so the same checkpoint keys) that fail when called."""
    def refusing(fn):
        def explain_fn(model, inputs, targets):
            raise AssertionError("report_only must not explain")

        explain_fn.method, explain_fn.params = fn.method, fn.params
        return explain_fn

    return {name: refusing(fn) for name, fn in explainers.items()}


def test_report_only_computes_nothing_marks_missing_pairs_and_keeps_settings(tmp_path):
    model, batches, explainers, metrics = light_setup()
    scores = run_benchmark(model, batches, explainers, metrics, tmp_path, progress=False, stop_after=1)
    write_reports(scores, tmp_path, {"run": "first"})
    settings_before = (tmp_path / "settings.json").read_text()
    reported = run_benchmark(model, batches, _refusing(explainers), metrics, tmp_path, progress=False, report_only=True)
    pd.testing.assert_frame_equal(reported, scores)
    missing = pd.read_csv(tmp_path / "missing.csv")
    assert sorted(zip(missing["batch"], missing["explainer"])) == [(0, "smoothgrad"), (1, "gradient"), (1, "smoothgrad")]
    text = write_reports(reported, tmp_path, {"run": "second"}, report_only=True)
    assert (tmp_path / "settings.json").read_text() == settings_before
    assert "Missing: 3 (batch, explainer) pairs" in text and "batch 1 × smoothgrad" in text
    assert "Missing" in (tmp_path / "summary.md").read_text()


def test_report_only_writes_no_settings_where_none_were(tmp_path):
    model, batches, explainers, metrics = light_setup()
    scores = run_benchmark(model, batches, _refusing(explainers), metrics, tmp_path, progress=False, report_only=True)
    assert scores.empty and len(pd.read_csv(tmp_path / "missing.csv")) == 4
    write_reports(scores, tmp_path, {"run": "x"}, report_only=True)
    assert not (tmp_path / "settings.json").exists()


def test_progress_bar_names_the_explainer_and_the_metric(tmp_path, capsys):
    model, batches, explainers, metrics = light_setup()
    run_benchmark(model, batches[:1], explainers, metrics, tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "gradient: faithfulness_correlation" in err and "smoothgrad: faithfulness_estimate" in err


def test_random_metrics_follow_the_sample_ids_not_the_batches(tmp_path):
    model, batches, _, _ = light_setup()
    explainers = {"gradient": explainer("gradient"), "smoothgrad": explainer("smoothgrad", samples=2, seed=0)}
    metrics = {"infidelity": MetricSpec(Infidelity(draws=2), {"groups": square_patches((1, 8, 8), 4)}),
               "monotonicity_correlation": MetricSpec(MonotonicityCorrelation(groups_per_step=8, samples=2),
                                                      {"groups": square_patches((1, 8, 8), 2)})}
    together = batches[0]
    split = [Batch(together.ids[:1], together.inputs[:1], together.targets[:1]),
             Batch(together.ids[1:], together.inputs[1:], together.targets[1:])]
    one = run_benchmark(model, [together], explainers, metrics, tmp_path / "one", progress=False)
    two = run_benchmark(model, split, explainers, metrics, tmp_path / "two", progress=False)
    pd.testing.assert_frame_equal(_sorted(one), _sorted(two), rtol=1e-5, atol=1e-7)


def test_non_finite_attributions_give_nan_rows_that_the_tables_count(tmp_path):
    model, batches, explainers, metrics = light_setup()

    def broken(model, inputs, targets):
        attributions = explainer("gradient")(model, inputs, targets)
        attributions[1, 0, 0, 0] = float("nan")
        return attributions

    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        scores = run_benchmark(model, batches[:1], {"gradient": explainers["gradient"], "broken": broken}, metrics,
                               tmp_path, progress=False)
    broken_rows = scores[scores.explainer == "broken"].set_index(["sample", "metric"])["score"]
    assert broken_rows.isna().sum() == 2 and broken_rows.loc[batches[0].ids[1]].isna().all()
    good = scores[scores.explainer == "gradient"].set_index(["sample", "metric"])["score"]
    kept = [s for s in batches[0].ids if s != batches[0].ids[1]]
    pd.testing.assert_series_equal(broken_rows.loc[kept], good.loc[kept], check_names=False)
    summary = summary_table(scores).set_index(["explainer", "metric"])
    assert summary.loc[("broken", "faithfulness_correlation"), "n"] == 2
    assert summary.loc[("broken", "faithfulness_correlation"), "nan"] == 1
    assert "(1 NaN)" in summary_markdown(summary_table(scores))


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
    assert "Missing" not in text


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


def test_paired_marks_both_directions_and_gives_no_ci_below_ten_samples():
    def table(metric, sp, other):
        return pd.DataFrame([{"sample": str(i), "explainer": e, "metric": metric, "score": v}
                             for e, values in (("soft_pullback", sp), ("gradient", other)) for i, v in enumerate(values)])

    rng = np.random.default_rng(1)
    sp = rng.normal(1.0, 0.1, 20)
    # infidelity: lower is better, so a gradient 0.5 lower beats the reference
    paired = paired_differences(table("infidelity", sp, sp - 0.5 + rng.normal(0, 0.01, 20))).iloc[0]
    assert paired["reference_worse"] and not paired["reference_better"]
    assert "†" in paired_markdown(paired_differences(table("infidelity", sp, sp - 0.5)))
    for n in (1, 9):
        few = paired_differences(table("infidelity", sp[:n], sp[:n] + 3.0))
        row = few.iloc[0]
        assert row["n"] == n and np.isnan(row["ci_low"]) and not (row["reference_better"] or row["reference_worse"])
        text = paired_markdown(few)
        assert f"(n = {n}: n < 10, no CI)" in text and "*" not in text and "†" not in text
    ten = paired_differences(table("infidelity", sp[:10], sp[:10] + 3.0 + rng.normal(0, 0.01, 10))).iloc[0]
    assert ten["reference_better"] and ten["ci_low"] > 2.9


def test_repeated_sample_ids_cannot_be_paired():
    scores = pd.DataFrame([{"sample": "a", "explainer": e, "metric": "infidelity", "score": 1.0}
                           for e in ("soft_pullback", "gradient", "gradient")])
    with pytest.raises(SpmmInputError, match="unique"):
        paired_differences(scores)


def test_checkpoint_keys_are_the_same_in_another_process(tmp_path):
    import subprocess
    import sys

    script = (
        "import json; from tests.bench.test_runner import light_setup; from spmm.bench.runner import checkpoint_keys\n"
        "model, batches, explainers, metrics = light_setup()\n"
        "keys = checkpoint_keys(model, batches, explainers, metrics, {'n': 6, 'data': 'x'})\n"
        "print(json.dumps(sorted(keys.values())))"
    )
    model, batches, explainers, metrics = light_setup()
    ours = sorted(checkpoint_keys(model, batches, explainers, metrics, {"n": 6, "data": "x"}).values())
    theirs = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert json.loads(theirs) == ours and len(set(ours)) == 4


def test_canonical_hashes_tensors_and_refuses_unstable_reprs():
    first = canonical({"b": torch.arange(3), 1: (square_patches((1, 4, 4), 2), 0.5)})
    assert first["b"]["shape"] == [3] and first["b"]["sha256"] != canonical(torch.arange(1, 4))["sha256"]
    assert first["1"][0]["count"] == 4 and first["1"][1] == 0.5
    with pytest.raises(SpmmInputError, match="stable repr"):
        canonical({"target": object()})


def test_a_batch_with_its_own_model_is_explained_and_scored_on_it(tmp_path):
    """Batch.model replaces the run's model for that batch (explainer and metrics); the run's model keys it."""
    generator = torch.Generator().manual_seed(3)
    run_model, own_model = nn.Linear(4, 3).double(), nn.Linear(4, 3).double()
    inputs = torch.randn(2, 4, dtype=torch.float64, generator=generator)
    targets = torch.tensor([0, 2])

    def gradient(model, x, y):  # a linear model's gradient: the target's weight row
        return model.weight.detach()[y].clone()

    groups = FeatureGroups(torch.arange(4), 4)
    metric = {"comprehensiveness": MetricSpec(Comprehensiveness(fractions=[0.5], probability=False), {"groups": groups})}
    batches = [Batch(["a", "b"], inputs, targets), Batch(["c", "d"], inputs, targets, model=own_model)]
    scores = run_benchmark(run_model, batches, {"gradient": gradient}, metric, tmp_path, progress=False)
    for model, samples in ((run_model, ["a", "b"]), (own_model, ["c", "d"])):
        w = model.weight.detach()[targets]
        contribution = w * inputs  # removing an input (baseline 0) lowers the logit by its contribution
        top = w.argsort(1, descending=True)[:, :2]  # comprehensiveness ranks by Σ attr = the weight
        expected = contribution.gather(1, top).sum(1)
        got = scores.set_index("sample").loc[samples, "score"].to_numpy()
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-10)


def test_rows_drawn_another_way_are_not_resumed(tmp_path, monkeypatch):
    """The draws' version is part of every key: checkpoints written before the draws changed are
    computed again, not mixed into the table."""
    import spmm.bench.runner as runner

    model, batches, explainers, metrics = light_setup()
    before = runner.checkpoint_keys(model, batches, explainers, metrics, {})
    monkeypatch.setattr(runner, "DRAWS_VERSION", runner.DRAWS_VERSION + 1)
    after = runner.checkpoint_keys(model, batches, explainers, metrics, {})
    assert before.keys() == after.keys() and not set(before.values()) & set(after.values())
