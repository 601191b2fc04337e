"""Tables from per-sample scores: summary (mean ± std, best marked), paired bootstrap
differences against a reference explainer, and a markdown rendering."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spmm.metrics.registry import METRICS


def _higher_is_better(metric: str) -> bool:
    return METRICS[metric].higher_is_better if metric in METRICS else True


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """scores (columns sample, explainer, metric, score) -> one row per explainer × metric with
    n, mean, std and ``best`` (True for the best mean of each metric, by its direction)."""
    table = scores.groupby(["explainer", "metric"], sort=False)["score"].agg(n="count", mean="mean", std="std").reset_index()
    table["std"] = table["std"].fillna(0.0)
    best = []
    for metric, rows in table.groupby("metric", sort=False):
        winner = rows["mean"].idxmax() if _higher_is_better(metric) else rows["mean"].idxmin()
        best.append(winner)
    table["best"] = table.index.isin(best)
    return table


def paired_differences(
    scores: pd.DataFrame, reference: str = "soft_pullback", resamples: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Mean paired difference (explainer − reference) per metric over the samples both have,
    with a 95% percentile bootstrap CI; ``reference_better`` / ``reference_worse`` say whether
    the CI excludes 0 in the reference's favour / against it (by the metric's direction).
    With fewer than 2 paired samples there is no CI (NaN) and neither flag is set."""
    wide = scores.pivot_table(index=["metric", "sample"], columns="explainer", values="score")
    rows = []
    rng = np.random.default_rng(seed)
    if reference not in wide.columns:
        return pd.DataFrame(
            columns=["explainer", "metric", "n", "mean_diff", "ci_low", "ci_high", "reference_better", "reference_worse"]
        )
    for metric, block in wide.groupby(level="metric", sort=False):
        for explainer in block.columns:
            if explainer == reference:
                continue
            diff = (block[explainer] - block[reference]).dropna().to_numpy()
            if diff.size == 0:
                continue
            if diff.size >= 2:
                means = diff[rng.integers(0, diff.size, (resamples, diff.size))].mean(1)
                low, high = np.percentile(means, [2.5, 97.5])
            else:
                low = high = np.nan
            higher = _higher_is_better(metric)
            rows.append({
                "explainer": explainer, "metric": metric, "n": diff.size, "mean_diff": diff.mean(),
                "ci_low": low, "ci_high": high,
                "reference_better": bool(high < 0 if higher else low > 0),
                "reference_worse": bool(low > 0 if higher else high < 0),
            })
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame, digits: int = 3) -> str:
    """Explainers as rows, metrics as columns, ``mean ± std`` with the best in bold; arrows give the direction."""
    metrics = list(dict.fromkeys(summary["metric"]))
    explainers = list(dict.fromkeys(summary["explainer"]))
    header = ["explainer"] + [f"{m} {'↑' if _higher_is_better(m) else '↓'}" for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cells = {(r.explainer, r.metric): r for r in summary.itertuples()}
    for explainer in explainers:
        row = [explainer]
        for metric in metrics:
            r = cells.get((explainer, metric))
            if r is None:
                row.append("–")
                continue
            text = f"{r.mean:.{digits}f} ± {r.std:.{digits}f}"
            row.append(f"**{text}**" if r.best else text)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def paired_markdown(paired: pd.DataFrame, reference: str = "soft_pullback", digits: int = 3) -> str:
    """Paired differences (explainer − reference) with 95% bootstrap CIs, one cell per metric;
    ``*`` marks the reference significantly better, ``†`` significantly worse."""
    if paired.empty:
        return f"(no paired differences: {reference} was not run)"
    metrics = list(dict.fromkeys(paired["metric"]))
    header = ["explainer"] + [f"Δ {m}" for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cells = {(r.explainer, r.metric): r for r in paired.itertuples()}
    for explainer in dict.fromkeys(paired["explainer"]):
        row = [explainer]
        for metric in metrics:
            r = cells.get((explainer, metric))
            if r is None:
                row.append("–")
            elif np.isnan(r.ci_low):
                row.append(f"{r.mean_diff:+.{digits}f} (n = {r.n}, no CI)")
            else:
                mark = " *" if r.reference_better else " †" if r.reference_worse else ""
                row.append(f"{r.mean_diff:+.{digits}f} [{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}]{mark}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
