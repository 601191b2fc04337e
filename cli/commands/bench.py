"""``spmm bench``: faithfulness tables (SPEC §4) and Focus, for any model ``spmm.load`` takes.

The model's modality supplies the data source (a labelled image folder, a text CSV, a labelled
audio folder), the feature groups and the metric settings; the explainers run under the model's
own rule set, so the bench scores exactly the rules ``spmm explain`` draws.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from spmm.bench.explainers import DEFAULT_EXPLAINERS, bench_explainers
from spmm.errors import SpmmInputError
from spmm.methods.registry import list_methods

from .common import load_model

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
    parser.add_argument("--explainers", default=",".join(list_methods() if source else DEFAULT_EXPLAINERS),
                        help="comma-separated method names (spmm.list_methods()) or registered explainers such as "
                             "lxt:attnlrp (pip install spmm[peers])")
    parser.add_argument("--metrics", default=None, help="comma-separated metric names (default: the kind's table)")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per explainer call")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (auto: cuda when available)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="spec",
                        help="spec: SPEC settings; cpu-small: fewer samples and draws for a 2-core CPU")
    parser.add_argument("--explainer-params", default="{}", help='JSON, e.g. \'{"smoothgrad": {"samples": 10}}\'')
    parser.add_argument("--metric-params", default="{}", help='JSON, e.g. \'{"max_sensitivity": {"samples": 5}}\'')
    parser.add_argument("--out", required=True, help="output folder (checkpoints make the run resumable)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables from existing checkpoints, compute nothing (missing rows are listed)")


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


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise SpmmInputError(f"--device {name!r} is not a device (use cpu, cuda or cuda:N)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpmmInputError(f"--device {name}: this torch build sees no CUDA device; use --device cpu")
    return device


def _data_setting(data: str) -> str:
    """A data source as it keys checkpoints: a generator's name as given, a path resolved."""
    return data if data in {source for source, _ in SYNTHETIC_SOURCES.values()} else str(Path(data).resolve())


def _check_counts(args: argparse.Namespace) -> None:
    for option in ("n", "batch_size"):
        value = getattr(args, option)
        if value < 1:
            raise SpmmInputError(f"--{option.replace('_', '-')} must be at least 1, got {value}")


def run(args: argparse.Namespace) -> int:
    from spmm.bench.runner import run_benchmark, write_reports

    _check_counts(args)
    kind = args.bench_kind
    if kind == "faithfulness" and "focus" in _names(args.metrics or ""):
        raise SpmmInputError("focus needs mosaics with known target segments: run `spmm bench focus` instead")
    preset = PRESETS[args.preset]
    explainer_params = _merged(preset["explainer_params"], _json(args.explainer_params, "--explainer-params"))
    metric_params = _merged(preset["metric_params"], _json(args.metric_params, "--metric-params"))
    device = _device(args.device)
    model = load_model(args.model, args).to(device)
    modality = model.modality
    kinds = getattr(modality, "bench_kinds", {})
    if kind not in kinds:
        raise SpmmInputError(f"{args.model} is a {modality.name} model; its benchmarks: {', '.join(kinds) or 'none'}")
    metric_names = _names(args.metrics) if args.metrics else list(kinds[kind])
    names = _names(args.explainers)
    batches = modality.bench_batches(model.model, args.data, kind, args.n, args.batch_size, args.seed,
                                     labels=model.labels)
    # the modality's scale-dependent method defaults (noise, step sizes) on the first batch, as `spmm explain` draws them
    defaults = {name: modality.method_params(name, batches[0].inputs) for name in names if name in list_methods()}
    explainers = bench_explainers(names, model.rules, args.seed, explainer_params, method_defaults=defaults)
    metrics = modality.bench_metrics(metric_names, batches, args.seed, metric_params)
    run_settings = {
        "kind": kind, "model": args.model, "weights": args.weights, "random_init": args.random_init,
        "labels": args.labels, "data": _data_setting(args.data), "n": args.n, "seed": args.seed,
        "batch_size": args.batch_size, "rules": model.rules.describe(),
    }
    scores = run_benchmark(model.model, batches, explainers, metrics, args.out, run_settings=run_settings,
                           report_only=args.report_only)
    settings = {
        "command": {k: v for k, v in vars(args).items() if k != "func"},
        "run": run_settings,
        "metrics": {name: spec.metric.settings() for name, spec in metrics.items()},
        "explainer_params": explainer_params,
        "method_defaults": defaults,
    }
    print(write_reports(scores, args.out, settings, report_only=args.report_only))
    print(f"\nwrote {Path(args.out) / 'scores.csv'}, summary.csv, paired.csv, summary.md")
    return 0
