"""``spmm bench``: faithfulness tables (SPEC §4) and Focus, for any model ``spmm.load`` takes.

The model's modality supplies the data source (a labelled image folder, a text CSV, a labelled
audio folder), the feature groups and the metric settings; the explainers run under the model's
own rule set, so the bench scores exactly the rules ``spmm explain`` draws.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from spmm.errors import SpmmInputError

from .common import TEMPERATURE_HELP, configured, load_model, resolve_device, rule_temperatures

if TYPE_CHECKING:
    import torch

    from spmm.bench.runner import Batch, MetricSpec
    from spmm.cli.bench_pool import RayPool
    from spmm.metrics.base import ExplainFn

PRESETS = {
    "spec": {"explainer_params": {}, "metric_params": {}},
    "cpu-small": {
        "explainer_params": {
            "smoothgrad": {"samples": 10}, "smooth_pullback": {"samples": 10}, "integrated_gradients": {"steps": 16},
            "integrated_pullbacks": {"steps": 16}, "gradient_shap": {"samples": 10},
            "fusiongrad": {"model_samples": 4, "input_samples": 4},
        },
        "metric_params": {"infidelity": {"draws": 1}, "monotonicity_correlation": {"samples": 2},
                          "max_sensitivity": {"samples": 3}},
    },
}
"""``--preset``: ``spec`` = SPEC §3/§4 settings; ``cpu-small`` = fewer samples/draws, sized for a 2-core CPU
(the settings of benchmarks/vision/run_cpu_table.sh).  --explainer-params/--metric-params override a preset."""

BENCH_KINDS = {
    "faithfulness": ("metrics table on a labelled data set", 64),
    "focus": ("Focus on mosaics built from a labelled data set", 40),
    "groundtruth": ("ground-truth metrics (object masks) and the paper's table on synthetic shapes, all methods", 64),
}
SYNTHETIC_SOURCES = {"groundtruth": ("shapes", "shapes-resnet")}
MODEL_EXPLAINERS = {
    "shapes-captioner": ["soft_pullback", "smooth_pullback", "integrated_pullbacks", "pullback_ascent", "pullback_shap",
                         "fusion_pullback", "pb_deeplift", "gradient", "gradient_ascent", "smoothgrad",
                         "integrated_gradients", "gradient_shap", "fusiongrad", "deeplift", "attention:image"],
}
"""The default ``--explainers`` of a model that does not run every method: the vision-language captioner
runs all but the Grad-CAM ones (its rule set knows no Grad-CAM layer), plus its attention baseline."""
"""Kinds whose data is generated -> (source, default model): ``--data`` defaults to the generator's
name, which keys checkpoints as given."""


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmark explainers with faithfulness metrics")
    kinds = bench.add_subparsers(dest="bench_kind", required=True)
    for kind, (help_text, n) in BENCH_KINDS.items():
        parser = kinds.add_parser(kind, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        _arguments(parser, n, SYNTHETIC_SOURCES.get(kind))
        parser.set_defaults(func=run)


def _arguments(parser: argparse.ArgumentParser, n: int, source: tuple[str, str] | None = None) -> None:
    parser.add_argument("--model", default=source[1] if source else "efficientnet-lite0",
                        help="model spec (anything spmm.load takes)")
    parser.add_argument("--weights", help="local checkpoint for the model")
    parser.add_argument("--random-init", action="store_true", help="an untrained model")
    parser.add_argument("--labels", default=None, help="comma-separated labels (zero-shot models)")
    if source is not None:
        parser.add_argument("--data", default=source[0], help=f"synthetic data source ({source[0]}: seeded scenes "
                                                               "with object masks, drawn from --seed)")
    else:
        parser.add_argument("--data", required=True,
                            help="labelled data: an image folder with labels.csv (file,class_index) or 'shapes' "
                                 "(synthetic scenes); a text CSV (text,label), SST-2 stsa.binary.* or AG News csv; an "
                                 "audio folder (one subfolder per label, or labels.csv with file,label)")
    parser.add_argument("--n", type=int, default=n, help="number of samples (faithfulness) or mosaics (focus)")
    parser.add_argument("--explainers", default=None,
                        help="comma-separated method names (spmm.list_methods()) or registered explainers such as "
                             "lxt:attnlrp (pip install spmm[peers]); None: "
                             + ("every method" if source else "the 12 explainers of SPEC §3"))
    parser.add_argument("--metrics", default=None, help="comma-separated metric names (default: the kind's table)")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per explainer call")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (auto: cuda when available)")
    parser.add_argument("--temperature", action="append", default=None, metavar="RULE=T", help=TEMPERATURE_HELP)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="spec",
                        help="spec: SPEC settings; cpu-small: fewer samples and draws for a 2-core CPU")
    parser.add_argument("--explainer-params", default="{}", help='JSON, e.g. \'{"smoothgrad": {"samples": 10}}\'')
    parser.add_argument("--metric-params", default="{}", help='JSON, e.g. \'{"max_sensitivity": {"samples": 5}}\'')
    parser.add_argument("--out", required=True, help="output folder (checkpoints make the run resumable)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables from existing checkpoints, compute nothing (missing rows are listed)")
    parser.add_argument("--ray", action="store_true",
                        help="compute the (batch, explainer) checkpoints on a local Ray Data actor pool, one model per "
                             "worker (spmm[scale]); the tables are the same")
    parser.add_argument("--workers", type=int, default=2, help="--ray: workers (actors), one CPU and one model each")
    parser.add_argument("--gpus-per-worker", type=float, default=None,
                        help="--ray with a CUDA --device: GPUs per worker, a fraction shares a GPU (default: the "
                             "visible GPUs divided by --workers, at most 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per model (this process, or each --ray worker); scores are bit-identical "
                             "at equal --threads (default: torch's own; the CPU cores divided by --workers with --ray)")


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _json(text: str, option: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise SpmmInputError(f"{option} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise SpmmInputError(f"{option} must be a JSON object")
    return value


def _merged(preset: dict, given: dict) -> dict:
    """Per-name settings of a preset updated by the user's (a user's name not in the preset is kept as given)."""
    merged = {name: dict(settings) for name, settings in preset.items()}
    for name, settings in given.items():
        merged[name] = {**merged.get(name, {}), **settings} if isinstance(settings, dict) else settings
    return merged


def _explainer_names(args: argparse.Namespace) -> list[str]:
    """``--explainers``, or the kind's default: every method (synthetic kinds) or SPEC §3's twelve."""
    from spmm.bench.explainers import DEFAULT_EXPLAINERS
    from spmm.methods.registry import list_methods

    if args.explainers is not None:
        return _names(args.explainers)
    if args.model in MODEL_EXPLAINERS:
        return list(MODEL_EXPLAINERS[args.model])
    return list_methods() if args.bench_kind in SYNTHETIC_SOURCES else list(DEFAULT_EXPLAINERS)


def _data_setting(data: str) -> str:
    """A data source as it keys checkpoints: a generator's name as given, a path resolved."""
    return data if data in {source for source, _ in SYNTHETIC_SOURCES.values()} else str(Path(data).resolve())


def _check_counts(args: argparse.Namespace) -> None:
    for option in ("n", "batch_size", "workers", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise SpmmInputError(f"--{option.replace('_', '-')} must be at least 1, got {value}")


@dataclasses.dataclass
class BenchRun:
    """What one ``spmm bench`` command scores, built from its arguments alone (so a Ray worker
    that builds it again gets the same checkpoint keys): the model (callable on inputs), batches,
    explainers, metrics, the settings that key the checkpoints, and the method parameters used."""

    model: Any
    batches: list[Batch]
    explainers: dict[str, ExplainFn]
    metrics: dict[str, MetricSpec]
    run_settings: dict[str, Any]
    explainer_params: dict[str, Any]
    method_defaults: dict[str, Any]
    report: Callable[[str, bool], str] | None = None
    """Extra tables of the modality (``bench_report(n, seed, out, report_only)``, e.g. an intervention
    check), given the output folder and ``--report-only``."""

    def keys(self) -> dict[tuple[int, str], str]:
        """The checkpoint key of every (batch index, explainer name) (:func:`spmm.bench.runner.checkpoint_keys`)."""
        from spmm.bench.runner import checkpoint_keys

        return checkpoint_keys(self.model, self.batches, self.explainers, self.metrics, self.run_settings)


def build_run(args: argparse.Namespace, device: torch.device) -> BenchRun:
    """The model on ``device``, batches, explainers and metrics of the command ``args``."""
    from spmm.bench.explainers import bench_explainers
    from spmm.methods.registry import list_methods

    kind = args.bench_kind
    if kind == "faithfulness" and "focus" in _names(args.metrics or ""):
        raise SpmmInputError("focus needs mosaics with known target segments: run `spmm bench focus` instead")
    preset = PRESETS[args.preset]
    explainer_params = _merged(preset["explainer_params"], _json(args.explainer_params, "--explainer-params"))
    metric_params = _merged(preset["metric_params"], _json(args.metric_params, "--metric-params"))
    model = configured(load_model(args.model, args), rule_temperatures(args), device)
    modality = model.modality
    kinds = getattr(modality, "bench_kinds", {})
    if kind not in kinds:
        raise SpmmInputError(f"{args.model} is a {modality.name} model; its benchmarks: {', '.join(kinds) or 'none'}")
    metric_names = _names(args.metrics) if args.metrics else list(kinds[kind])
    names = _explainer_names(args)
    batches = modality.bench_batches(model.model, args.data, kind, args.n, args.batch_size, args.seed,
                                     labels=model.labels)
    # the modality's scale-dependent method defaults (noise, step sizes), as `spmm explain` gives them: a model
    # constant or a per-sample rule, so any batch tells them (the first is at hand)
    defaults = {name: modality.method_params(name, batches[0].inputs, batches[0].model or model.model) for name in names if name in list_methods()}
    explainers = bench_explainers(names, model.rules, args.seed, explainer_params, method_defaults=defaults)
    metrics = modality.bench_metrics(metric_names, batches, args.seed, metric_params)
    run_settings = {
        "kind": kind, "model": args.model, "weights": args.weights, "random_init": args.random_init,
        "labels": args.labels, "data": _data_setting(args.data), "n": args.n, "seed": args.seed,
        "batch_size": args.batch_size, "rules": model.rules.describe(),
    }
    extra = getattr(modality, "bench_report", None)
    report = partial(extra, args.n, args.seed) if extra is not None else None
    return BenchRun(model.model, batches, explainers, metrics, run_settings, explainer_params, defaults, report)


def run(args: argparse.Namespace) -> int:
    from spmm.bench.runner import run_benchmark, write_reports

    _check_counts(args)
    rule_temperatures(args)  # checked before any work
    args.explainers = ",".join(_explainer_names(args))  # the names as run, in the settings and on Ray workers
    device = resolve_device(args.device)
    if args.gpus_per_worker is not None and not args.ray:
        raise SpmmInputError("--gpus-per-worker is an option of --ray")
    pool = _ray_pool(args, device) if args.ray else None
    bench = build_run(args, device)
    description = f"bench {args.bench_kind}"
    compute = None
    if pool is not None:
        from spmm.cli.bench_pool import compute_on_ray

        command = {k: v for k, v in vars(args).items() if k != "func"} | {"device": device.type}
        description += f" on {pool.workers} Ray workers"
        compute = partial(compute_on_ray, command, pool)
    with _torch_threads(args.threads if pool is None else None):
        scores = run_benchmark(bench.model, bench.batches, bench.explainers, bench.metrics, args.out,
                               run_settings=bench.run_settings, report_only=args.report_only, compute=compute,
                               description=description)
    settings = {
        "command": {k: v for k, v in vars(args).items() if k != "func"},
        "run": bench.run_settings,
        "metrics": {name: spec.metric.settings() for name, spec in bench.metrics.items()},
        "explainer_params": bench.explainer_params,
        "method_defaults": bench.method_defaults,
    }
    print(write_reports(scores, args.out, settings, report_only=args.report_only))
    if bench.report is not None:
        print("\n" + bench.report(args.out, args.report_only))
    print(f"\nwrote {Path(args.out) / 'scores.csv'}, summary.csv, paired.csv, summary.md")
    return 0


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """``threads`` torch threads inside the block (None: as they are), restored afterwards."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _ray_pool(args: argparse.Namespace, device: torch.device) -> "RayPool":
    """The checked ``--ray`` options: workers, torch threads and GPUs per worker, GPUs Ray may hand out."""
    import torch

    from spmm.cli.bench_pool import RayPool
    from spmm.cli.ray_pool import require_ray

    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    if device.type != "cuda":
        if args.gpus_per_worker is not None:
            raise SpmmInputError(f"--gpus-per-worker needs a CUDA --device; got --device {args.device} ({device.type})")
        require_ray()
        return RayPool(args.workers, threads, 0.0, 0)
    if device.index is not None:
        raise SpmmInputError(f"--device {args.device}: with --ray, Ray gives each worker its GPU(s); use --device cuda")
    gpus = torch.cuda.device_count()
    # default: the visible GPUs shared out (Ray counts GPU fractions in steps of 1e-4), at most whole GPUs each
    share = args.gpus_per_worker if args.gpus_per_worker is not None else (
        math.floor(gpus / args.workers * 1e4) / 1e4 if gpus < args.workers else float(gpus // args.workers))
    if share <= 0 or (share > 1 and share != int(share)):
        raise SpmmInputError(f"--gpus-per-worker must be a fraction in (0, 1] or a whole number, got {share}")
    if share * args.workers > gpus + 1e-9:
        raise SpmmInputError(f"--workers {args.workers} × --gpus-per-worker {share:g} needs {share * args.workers:g} "
                             f"GPUs; this machine has {gpus}")
    require_ray()
    return RayPool(args.workers, threads, share, gpus)
