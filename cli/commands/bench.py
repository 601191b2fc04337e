"""``spmm bench``: faithfulness tables (SPEC §4) and Focus on mosaics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from spmm.adapters.vision import load_model
from spmm.errors import SpmmInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmark explainers with faithfulness metrics")
    kinds = bench.add_subparsers(dest="bench_kind", required=True)
    faithfulness = kinds.add_parser("faithfulness", help="metrics table on a labelled image folder")
    _common(faithfulness, metrics_default="infidelity,faithfulness_correlation,faithfulness_estimate,"
            "monotonicity_correlation,max_sensitivity,random_logit")
    faithfulness.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    faithfulness.set_defaults(func=run_faithfulness)
    focus = kinds.add_parser("focus", help="Focus on 2×2 mosaics built from a labelled image folder")
    _common(focus, metrics_default="focus")
    focus.add_argument("--n", type=int, default=40, help="number of mosaics (default 40)")
    focus.set_defaults(func=run_focus)


def _common(parser: argparse.ArgumentParser, metrics_default: str) -> None:
    from spmm.bench.vision import DEFAULT_EXPLAINERS

    parser.add_argument("--model", default="tf_efficientnet_lite0", help="model name (default tf_efficientnet_lite0)")
    parser.add_argument("--weights", help="state-dict checkpoint for the model")
    parser.add_argument("--data", required=True, help="image folder, optionally with labels.csv (file,class_index,...)")
    parser.add_argument("--explainers", default=",".join(DEFAULT_EXPLAINERS), help="comma-separated method names")
    parser.add_argument("--metrics", default=metrics_default, help="comma-separated metric names")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (default: cuda when available, else cpu)")
    parser.add_argument("--explainer-params", default="{}", help='JSON, e.g. \'{"smoothgrad": {"samples": 10}}\'')
    parser.add_argument("--metric-params", default="{}", help='JSON, e.g. \'{"max_sensitivity": {"samples": 5}}\'')
    parser.add_argument("--out", required=True, help="output folder (checkpoints make the run resumable)")
    parser.add_argument("--report-only", action="store_true", help="write the tables from existing checkpoints, compute nothing")


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


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpmmInputError(f"--device {name}: this torch build sees no CUDA device; use --device cpu")
    return device


def _run(args: argparse.Namespace, model: nn.Module, batches: list) -> int:
    from spmm.bench.runner import run_benchmark, write_reports
    from spmm.bench.vision import image_explainers, image_metric_specs

    torch.manual_seed(args.seed)
    explainer_params = _json(args.explainer_params, "--explainer-params")
    metric_params = _json(args.metric_params, "--metric-params")
    explainers = image_explainers(_names(args.explainers), model, args.seed, explainer_params)
    metrics = image_metric_specs(_names(args.metrics), batches[0].inputs.shape[1:], args.seed, metric_params)
    scores = run_benchmark(model, batches, explainers, metrics, args.out, stop_after=0 if args.report_only else None)
    settings = {
        "command": vars(args) | {"func": None},
        "metrics": {name: spec.metric.settings() for name, spec in metrics.items()},
        "explainer_params": explainer_params,
    }
    print(write_reports(scores, args.out, settings))
    print(f"\nwrote {Path(args.out) / 'scores.csv'}, summary.csv, paired.csv, summary.md")
    return 0


def run_faithfulness(args: argparse.Namespace) -> int:
    from spmm.bench.vision import image_batches, labelled_images

    if "focus" in _names(args.metrics):
        raise SpmmInputError("focus needs mosaics with known target quadrants: run `spmm bench focus` instead")
    files, classes = labelled_images(args.data, args.n)
    model = load_model(args.model, args.weights).to(_device(args.device))
    return _run(args, model, image_batches(model, files, classes, args.batch_size))


def run_focus(args: argparse.Namespace) -> int:
    from spmm.bench.vision import labelled_images, mosaic_batches

    files, classes = labelled_images(args.data)
    if classes is None:
        raise SpmmInputError(f"Focus needs class labels: {args.data} has no labels.csv")
    device = _device(args.device)
    batches = [b.to(device) for b in mosaic_batches(files, classes, args.n, args.batch_size, args.seed)]
    return _run(args, load_model(args.model, args.weights).to(device), batches)
