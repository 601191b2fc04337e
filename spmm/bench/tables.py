"""Tables from per-sample scores: summary (mean ± std, best marked, NaN scores counted), paired
bootstrap differences against a reference explainer, and a markdown rendering."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spmm.errors import SpmmInputError
from spmm.metrics.registry import METRICS
from spmm.metrics.statistics import paired_bootstrap_ci

MIN_PAIRED_SAMPLES = 10
"""Fewest paired samples for a bootstrap CI and a significance mark; fewer give neither."""


def _higher_is_better(metric: str) -> bool:
    return METRICS[metric].higher_is_better if metric in METRICS else True


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """scores (columns sample, explainer, metric, score) -> one row per explainer × metric with
    n (finite scores), nan (NaN scores, left out of the statistics), mean, std and ``best``
    (True for the best mean of each metric, by its direction)."""
    grouped = scores.groupby(["explainer", "metric"], sort=False)["score"]
    table = grouped.agg(n="count", mean="mean", std="std").reset_index()
    table.insert(3, "nan", grouped.size().to_numpy() - table["n"].to_numpy())
    table["std"] = table["std"].fillna(0.0)
    best = []
    for metric, rows in table.dropna(subset=["mean"]).groupby("metric", sort=False):
        best.append(rows["mean"].idxmax() if _higher_is_better(metric) else rows["mean"].idxmin())
    table["best"] = table.index.isin(best)
    return table


def paired_differences(
    scores: pd.DataFrame, reference: str = "soft_pullback", resamples: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Mean paired difference (explainer − reference) per metric over the samples where both have
    a finite score, with a 95% percentile bootstrap CI (:func:`spmm.metrics.statistics.paired_bootstrap_ci`);
    ``reference_better`` / ``reference_worse`` say whether the CI excludes 0 in the reference's
    favour / against it (by the metric's direction).  With fewer than
    :data:`MIN_PAIRED_SAMPLES` pairs there is no CI (NaN) and neither flag is set."""
    columns = ["explainer", "metric", "n", "mean_diff", "ci_low", "ci_high", "reference_better", "reference_worse"]
    repeated = scores.duplicated(["metric", "sample", "explainer"])
    if repeated.any():
        raise SpmmInputError(f"sample ids must be unique per explainer and metric; repeated: {sorted(set(scores.loc[repeated, 'sample']))[:5]}")
    wide = scores.pivot(index=["metric", "sample"], columns="explainer", values="score")
    if reference not in wide.columns:
        return pd.DataFrame(columns=columns)
    rows = []
    for metric, block in wide.groupby(level="metric", sort=False):
        for explainer in block.columns:
            if explainer == reference:
                continue
            both = block[[explainer, reference]].dropna()
            if both.empty:
                continue
            mine, theirs = both[explainer].to_numpy(), both[reference].to_numpy()
            low, high = (
                paired_bootstrap_ci(mine, theirs, resamples, seed=seed) if len(both) >= MIN_PAIRED_SAMPLES
                else (np.nan, np.nan)
            )
            higher = _higher_is_better(metric)
            rows.append({
                "explainer": explainer, "metric": metric, "n": len(both), "mean_diff": float((mine - theirs).mean()),
                "ci_low": low, "ci_high": high,
                "reference_better": bool(high < 0 if higher else low > 0),
                "reference_worse": bool(low > 0 if higher else high < 0),
            })
    return pd.DataFrame(rows, columns=columns)


def summary_markdown(summary: pd.DataFrame, digits: int = 3) -> str:
    """Explainers as rows, metrics as columns, ``mean ± std`` with the best in bold; arrows give the
    direction; a cell with NaN scores says how many (they are left out of mean and std)."""
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
            text = "–" if r.n == 0 else f"{r.mean:.{digits}f} ± {r.std:.{digits}f}"
            text = f"**{text}**" if r.best else text
            row.append(f"{text} ({r.nan} NaN)" if r.nan else text)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def paired_markdown(paired: pd.DataFrame, reference: str = "soft_pullback", digits: int = 3) -> str:
    """Paired differences (explainer − reference) with 95% bootstrap CIs, one cell per metric;
    ``*`` marks the reference significantly better, ``†`` significantly worse; comparisons with
    fewer than :data:`MIN_PAIRED_SAMPLES` pairs get neither a CI nor a mark."""
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
            elif r.n < MIN_PAIRED_SAMPLES:
                row.append(f"{r.mean_diff:+.{digits}f} (n = {r.n}: n < {MIN_PAIRED_SAMPLES}, no CI)")
            else:
                mark = " *" if r.reference_better else " †" if r.reference_worse else ""
                row.append(f"{r.mean_diff:+.{digits}f} [{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}]{mark}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
