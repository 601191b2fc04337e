"""Resumable benchmark runner: batches × explainers × metrics -> per-sample scores.

Every (batch, explainer) pair is written to its own checkpoint CSV as soon as it is done,
so an interrupted run picks up where it stopped and gives the same table.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import Tensor

from spmm.bench.tables import paired_differences, paired_markdown, summary_markdown, summary_table
from spmm.errors import SpmmInputError
from spmm.metrics.base import ExplainFn, Metric


@dataclasses.dataclass
class Batch:
    """One batch: sample ids, inputs (B, ...), targets (B,) and per-batch metric arguments
    (e.g. ``target_groups`` for Focus)."""

    ids: list[str]
    inputs: Tensor
    targets: Tensor
    metric_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to(self, device: torch.device | str) -> "Batch":
        """The same batch with every tensor on ``device``."""
        moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.metric_kwargs.items()}
        return Batch(self.ids, self.inputs.to(device), self.targets.to(device), moved)


@dataclasses.dataclass
class MetricSpec:
    """A metric and the fixed keyword arguments of its call (e.g. ``groups``)."""

    metric: Metric
    call_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def _checkpoint_path(folder: Path, batch_index: int, explainer: str) -> Path:
    return folder / "checkpoints" / f"batch{batch_index:05d}_{explainer}.csv"


def run_benchmark(
    model: Callable[[Tensor], Any],
    batches: Sequence[Batch] | Iterable[Batch],
    explainers: Mapping[str, ExplainFn],
    metrics: Mapping[str, MetricSpec],
    out: str | Path,
    progress: bool = True,
    stop_after: int | None = None,
) -> pd.DataFrame:
    """Score every explainer with every metric on every batch; returns all per-sample scores.

    Results are checkpointed under ``out/checkpoints``; existing checkpoints are reused.
    ``stop_after`` (for tests) stops after that many new (batch, explainer) pairs, as an
    interruption would.  Columns of the result: sample, explainer, metric, score.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    batches = list(batches)
    _check_arguments(metrics, batches)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    jobs = [(b, e) for b in range(len(batches)) for e in explainers]
    done = 0
    for batch_index, name in tqdm(jobs, desc="benchmark", disable=not progress):
        path = _checkpoint_path(out, batch_index, name)
        if path.exists():
            continue
        if stop_after is not None and done >= stop_after:
            break
        batch = batches[batch_index]
        explain_fn = explainers[name]
        attributions = explain_fn(model, batch.inputs, batch.targets).detach()
        rows = []
        for metric_name, spec in metrics.items():
            kwargs = {**spec.call_kwargs, **_relevant(spec.metric, batch.metric_kwargs)}
            if spec.metric.needs_explain_fn:
                kwargs["explain_fn"] = explain_fn
            result = spec.metric(model, batch.inputs, batch.targets, attributions, **kwargs)
            rows += [
                {"sample": sample, "explainer": name, "metric": metric_name, "score": float(score)}
                for sample, score in zip(batch.ids, result.scores.tolist())
            ]
        tmp = path.with_suffix(".tmp")
        pd.DataFrame(rows).to_csv(tmp, index=False)
        tmp.replace(path)
        done += 1
    scores = collect_scores(out)
    rank = {name: i for i, name in enumerate(explainers)} | {name: len(explainers) + i for i, name in enumerate(metrics)}
    return scores.sort_values(["explainer", "metric"], key=lambda c: c.map(rank), kind="stable").reset_index(drop=True)


def _call_parameters(metric: Metric) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(type(metric).__call__).parameters


def _relevant(metric: Metric, batch_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    accepted = _call_parameters(metric)
    return {k: v for k, v in batch_kwargs.items() if k in accepted}


def _check_arguments(metrics: Mapping[str, MetricSpec], batches: Sequence[Batch]) -> None:
    """Raise :class:`SpmmInputError` before any work when a metric lacks a required argument
    that neither its spec nor every batch supplies (e.g. Focus without mosaic ``target_groups``)."""
    for name, spec in metrics.items():
        parameters = _call_parameters(spec.metric).values()
        required = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
        given = set(spec.call_kwargs) | ({"explain_fn"} if spec.metric.needs_explain_fn else set())
        for batch in batches:
            missing = sorted(required - given - set(batch.metric_kwargs))
            if missing:
                raise SpmmInputError(f"metric {name!r} needs {', '.join(missing)}, which these batches do not provide")


def collect_scores(out: str | Path) -> pd.DataFrame:
    """All checkpointed per-sample scores under ``out`` in a stable order."""
    files = sorted((Path(out) / "checkpoints").glob("batch*.csv"))
    if not files:
        return pd.DataFrame(columns=["sample", "explainer", "metric", "score"])
    return pd.concat([pd.read_csv(f, dtype={"sample": str}) for f in files], ignore_index=True)


def write_reports(scores: pd.DataFrame, out: str | Path, settings: Mapping[str, Any], reference: str = "soft_pullback") -> str:
    """Write scores.csv, summary.csv, paired.csv, settings.json and summary.md; return the markdown."""
    out = Path(out)
    scores.to_csv(out / "scores.csv", index=False)
    summary = summary_table(scores)
    summary.to_csv(out / "summary.csv", index=False)
    paired = paired_differences(scores, reference)
    paired.to_csv(out / "paired.csv", index=False)
    (out / "settings.json").write_text(json.dumps(settings, indent=2, default=str))
    text = "\n\n".join([
        f"## Summary (mean ± std over samples; best in bold)\n\n{summary_markdown(summary)}",
        f"## Paired differences vs {reference} (mean [95% bootstrap CI]; * = {reference} significantly better, "
        f"† = significantly worse)"
        f"\n\n{paired_markdown(paired, reference)}",
    ])
    (out / "summary.md").write_text(text + "\n")
    return text
