"""Resumable benchmark runner: batches × explainers × metrics -> per-sample scores.

Every (batch, explainer) pair is written to its own checkpoint CSV as soon as it is done, named
by a key: sha256 of the canonical JSON of everything its scores depend on — the caller's
``run_settings`` (model spec, data path, n, seed, batch size, ...), the model's weights, the
explainer's name, method and parameters, every metric's class, settings and fixed call
arguments, and the batch's sample ids, inputs, targets and per-batch metric arguments.  A run reads only the checkpoints of its own keys, so one table never mixes settings, and
an interrupted run picks up where it stopped and gives the same table.

The pairs are independent units of work (:class:`WorkItem`, computed by :func:`score_pair`): this
process computes them in order, or a caller's ``compute`` hands them to other processes that
built the same run (``spmm bench --ray``), and the tables are read from the checkpoints either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import types
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from spmm.bench.tables import paired_differences, paired_markdown, summary_markdown, summary_table
from spmm.errors import SpmmInputError
from spmm.metrics.base import ExplainFn, Metric
from spmm.metrics.draws import DRAWS_VERSION

SCORE_COLUMNS = ["sample", "explainer", "metric", "score"]
MISSING_COLUMNS = ["batch", "explainer", "samples", "key"]


@dataclasses.dataclass
class Batch:
    """One batch: sample ids, inputs (B, ...), targets (B,), per-batch metric arguments (e.g.
    ``target_groups`` for Focus) and, optionally, the model this batch is scored on.

    model: the run's model closed over this batch's context (a text batch's attention mask, a
    waveform clip's phase), or None for the run's model.  Metrics call it on any number of rows
    (noise draws, other classes, perturbations), so its context must be shared by every row.
    It is not part of the checkpoint key: the run's model (parameters) and the batch's ids and
    inputs are, and they determine the context.
    """

    ids: list[str]
    inputs: Tensor
    targets: Tensor
    metric_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    model: Callable[[Tensor], Any] | None = None

    def to(self, device: torch.device | str) -> "Batch":
        """The same batch with every tensor on ``device`` (a batch model is built on its device and kept)."""
        moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.metric_kwargs.items()}
        return Batch(self.ids, self.inputs.to(device), self.targets.to(device), moved, self.model)


@dataclasses.dataclass
class MetricSpec:
    """A metric and the fixed keyword arguments of its call (e.g. ``groups``)."""

    metric: Metric
    call_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def metric_specs(
    names: Sequence[str], settings: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]], seed: int = 0,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, MetricSpec]:
    """The specs of metrics ``names`` from a modality's ``settings`` (name -> (init settings, call
    arguments)), each init setting overridden by the user's ``overrides`` (checked), and ``seed``
    given to every metric that takes one."""
    from spmm.bench.explainers import per_name
    from spmm.metrics.registry import check_settings, list_metrics, make_metric, metric_parameters

    overrides = per_name(overrides, list_metrics(), "metric")
    for name, given in overrides.items():
        check_settings(name, given)
    specs = {}
    for name in names:
        if name not in settings:
            raise SpmmInputError(f"unknown metric {name!r} for this modality; available: {', '.join(settings)}")
        init, call = settings[name]
        init = {**init, **overrides.get(name, {})}
        if "seed" in metric_parameters(name):
            init.setdefault("seed", seed)
        specs[name] = MetricSpec(make_metric(name, **init), dict(call))
    return specs


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data that is the same in every process: mappings (keys as
    strings), sequences, numbers, strings, None; tensors as dtype, shape and sha256 of their
    bytes; dataclasses (e.g. :class:`~spmm.metrics.groups.FeatureGroups`, a
    :class:`~spmm.RuleSet`) as their fields; classes and functions (module rules) by their qualified
    names; anything else as its repr, which must not hold a memory address."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Tensor):
        data = value.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes()
        return {"dtype": str(value.dtype), "shape": list(value.shape), "sha256": hashlib.sha256(data).hexdigest()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **{f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return f"{value.__module__}.{value.__qualname__}"
    text = repr(value)
    if " at 0x" in text:
        raise SpmmInputError(f"cannot key a benchmark checkpoint on {text}: give it a stable repr or plain settings")
    return text


def _digest(value: Any) -> str:
    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _explainer_settings(name: str, explain_fn: ExplainFn) -> dict[str, Any]:
    """An explainer's name, and the ``method`` and ``params`` of :func:`spmm.metrics.base.explainer`
    functions (other callables: their qualified name)."""
    if hasattr(explain_fn, "method"):
        return {"name": name, "method": explain_fn.method, "params": getattr(explain_fn, "params", {})}
    return {"name": name, "function": f"{getattr(explain_fn, '__module__', '')}.{getattr(explain_fn, '__qualname__', '')}"}


def _model_settings(model: Callable[[Tensor], Any]) -> dict[str, Any]:
    """A model's class and, for modules, every parameter and buffer, so other weights never reuse a checkpoint."""
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    return {"class": kind, "state": model.state_dict()} if isinstance(model, nn.Module) else {"class": kind}


def checkpoint_keys(
    model: Callable[[Tensor], Any], batches: Sequence[Batch], explainers: Mapping[str, ExplainFn],
    metrics: Mapping[str, "MetricSpec"], run_settings: Mapping[str, Any],
) -> dict[tuple[int, str], str]:
    """The key of every (batch index, explainer name): sha256 (hex) of the canonical JSON (sorted
    keys, no spaces, :func:`canonical`) of the digests of the run settings, the version of the
    random draws (:data:`spmm.metrics.draws.DRAWS_VERSION`), the model (class,
    parameters, buffers), the metrics (class, ``settings()`` and fixed call arguments of each),
    the explainer (name, method, parameters) and the batch (sample ids, inputs, targets,
    per-batch metric arguments).  Each part is hashed once."""
    shared = _digest({
        "run": run_settings, "model": _model_settings(model), "draws": DRAWS_VERSION,
        "metrics": {
            name: {"class": f"{type(spec.metric).__module__}.{type(spec.metric).__qualname__}",
                   "settings": spec.metric.settings(), "call_kwargs": spec.call_kwargs}
            for name, spec in metrics.items()
        },
    })
    batch_parts = [
        _digest({"samples": list(b.ids), "inputs": b.inputs, "targets": b.targets, "kwargs": b.metric_kwargs}) for b in batches
    ]
    return {
        (index, name): _digest({"shared": shared, "explainer": _explainer_settings(name, fn), "batch": part})
        for index, part in enumerate(batch_parts) for name, fn in explainers.items()
    }


def _checkpoint_path(folder: Path, key: str) -> Path:
    return folder / "checkpoints" / f"{key}.csv"


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """One unit of a run, written to one checkpoint: explainer ``explainer`` on batch number ``batch``,
    whose scores go to the checkpoint of ``key`` (:func:`checkpoint_keys`)."""

    batch: int
    explainer: str
    key: str


Compute = Callable[[Sequence[WorkItem]], Iterable[WorkItem]]
"""``compute(items)``: writes the checkpoint of every item (with :func:`score_pair`, e.g. in worker
processes that built the same run) and yields each item once its checkpoint is written."""


def score_pair(
    model: Callable[[Tensor], Any], batch: Batch, name: str, explain_fn: ExplainFn, metrics: Mapping[str, MetricSpec],
    out: str | Path, key: str, status: Callable[[str], None] | None = None,
) -> Path:
    """Explain ``batch`` with ``explain_fn`` (named ``name``), score the attributions with every metric
    and write the per-sample scores (columns sample, explainer, metric, score) atomically to the
    checkpoint of ``key`` under ``out``; returns its path.  ``model`` is the run's model (a batch
    with its own model is scored on that); ``status`` is told each step (explaining, each metric)."""
    scored = batch.model if batch.model is not None else model
    tell = status or (lambda step: None)
    tell("explaining")
    attributions = explain_fn(scored, batch.inputs, batch.targets).detach()
    rows = []
    for metric_name, spec in metrics.items():
        tell(metric_name)
        kwargs = {**spec.call_kwargs, **_relevant(spec.metric, {**batch.metric_kwargs, "sample_ids": batch.ids})}
        if spec.metric.needs_explain_fn:
            kwargs["explain_fn"] = explain_fn
        result = spec.metric(scored, batch.inputs, batch.targets, attributions, **kwargs)
        rows += [
            {"sample": sample, "explainer": name, "metric": metric_name, "score": float(score)}
            for sample, score in zip(batch.ids, result.scores.tolist())
        ]
    path = _checkpoint_path(Path(out), key)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    pd.DataFrame(rows, columns=SCORE_COLUMNS).to_csv(temporary, index=False)
    temporary.replace(path)
    return path


def run_benchmark(
    model: Callable[[Tensor], Any],
    batches: Sequence[Batch] | Iterable[Batch],
    explainers: Mapping[str, ExplainFn],
    metrics: Mapping[str, MetricSpec],
    out: str | Path,
    progress: bool = True,
    stop_after: int | None = None,
    *,
    run_settings: Mapping[str, Any] | None = None,
    report_only: bool = False,
    compute: Compute | None = None,
    description: str = "benchmark",
) -> pd.DataFrame:
    """Score every explainer with every metric on every batch; returns the per-sample scores of
    this run's checkpoints (columns sample, explainer, metric, score; NaN where a metric gave NaN).

    Checkpoints live under ``out/checkpoints``, keyed by :func:`checkpoint_keys`; only those of
    this run's keys are reused and read.  ``run_settings``: JSON-able settings that are not in
    the explainers or metrics (model spec, data path, n, seed, batch size, ...).
    ``report_only``: compute nothing, only read the existing checkpoints.  ``stop_after`` (for
    tests) stops after that many new (batch, explainer) pairs, as an interruption would.  The
    pairs without a checkpoint are listed in ``out/missing.csv`` (columns batch, explainer,
    samples, key), which :func:`write_reports` reports.  Metrics that take ``sample_ids`` get
    the batch's ids, so their random draws follow the samples.  A batch with its own ``model``
    (:class:`Batch`) is explained and scored on that model; ``model`` keys the checkpoints.
    ``compute``: who computes the pairs without a checkpoint (:data:`Compute`; default: this
    process, in order); ``description`` names the progress bar.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    batches = list(batches)
    _check_arguments(metrics, batches)
    keys = checkpoint_keys(model, batches, explainers, metrics, dict(run_settings or {}))
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    absent = [WorkItem(b, name, key) for (b, name), key in keys.items() if not _checkpoint_path(out, key).exists()]
    todo = [] if report_only else absent[:stop_after] if stop_after is not None else absent
    bar = tqdm(total=len(keys), initial=len(keys) - len(absent), desc=description, disable=not progress)

    def here(items: Sequence[WorkItem]) -> Iterator[WorkItem]:
        for item in items:
            def status(step: str, name: str = item.explainer) -> None:
                bar.set_postfix_str(f"{name}: {step}")

            score_pair(model, batches[item.batch], item.explainer, explainers[item.explainer], metrics, out, item.key,
                       status)
            yield item

    for item in (compute or here)(todo):
        bar.update()
        bar.set_postfix_str(f"batch {item.batch} × {item.explainer}: done")
    bar.close()
    missing = [
        {"batch": b, "explainer": name, "samples": len(batches[b].ids), "key": key}
        for (b, name), key in keys.items() if not _checkpoint_path(out, key).exists()
    ]
    pd.DataFrame(missing, columns=MISSING_COLUMNS).to_csv(out / "missing.csv", index=False)
    scores = collect_scores(out, keys.values())
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


def collect_scores(out: str | Path, keys: Iterable[str]) -> pd.DataFrame:
    """The per-sample scores of the checkpoints of ``keys`` under ``out`` that exist, in the order of ``keys``."""
    files = [p for p in (_checkpoint_path(Path(out), key) for key in keys) if p.exists()]
    if not files:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    return pd.concat([pd.read_csv(f, dtype={"sample": str}) for f in files], ignore_index=True)


def write_reports(
    scores: pd.DataFrame, out: str | Path, settings: Mapping[str, Any], reference: str = "soft_pullback",
    *, report_only: bool = False,
) -> str:
    """Write scores.csv, summary.csv, paired.csv, summary.json (both tables and the reference),
    settings.json and summary.md; return the markdown.

    summary.md names the (batch, explainer) pairs that ``out/missing.csv`` (written by
    :func:`run_benchmark`) lists as missing.  ``report_only`` leaves settings.json as it is:
    the settings of the run that computed the scores.
    """
    out = Path(out)
    scores.to_csv(out / "scores.csv", index=False)
    summary = summary_table(scores)
    summary.to_csv(out / "summary.csv", index=False)
    paired = paired_differences(scores, reference)
    paired.to_csv(out / "paired.csv", index=False)
    tables = {"reference": reference, **{name: json.loads(table.to_json(orient="records"))  # NaN -> null
                                         for name, table in (("summary", summary), ("paired", paired))}}
    (out / "summary.json").write_text(json.dumps(tables, indent=2))
    if not report_only:
        (out / "settings.json").write_text(json.dumps(settings, indent=2, default=str))
    parts = []
    missing_file = out / "missing.csv"
    missing = pd.read_csv(missing_file) if missing_file.exists() else pd.DataFrame(columns=MISSING_COLUMNS)
    if not missing.empty:
        pairs = ", ".join(f"batch {r.batch} × {r.explainer}" for r in missing.itertuples())
        parts.append(f"**Missing: {len(missing)} (batch, explainer) pairs not computed for these settings "
                     f"(see missing.csv): {pairs}.**")
    parts += [
        f"## Summary (mean ± std over samples; best in bold)\n\n{summary_markdown(summary)}",
        f"## Paired differences vs {reference} (mean [95% bootstrap CI]; * = {reference} significantly better, "
        f"† = significantly worse; no CI below 10 paired samples)"
        f"\n\n{paired_markdown(paired, reference)}",
    ]
    text = "\n\n".join(parts)
    (out / "summary.md").write_text(text + "\n")
    return text
