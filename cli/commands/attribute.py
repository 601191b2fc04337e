"""``spmm attribute``: explain a whole image folder into sharded, resumable outputs.

``--out`` receives ``shards/<first index>.safetensors`` (attributions of ``--batch-size`` inputs
each), ``index.parquet`` (one row per input) and ``settings.json``.  ``--ray`` runs the same
per-shard function on Ray Data actors (the ``[scale]`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from spmm.errors import SpmmInputError

from .common import add_model_arguments, check_methods

TARGETS = ("top1", "label")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attribute", help="explain a whole image folder into sharded outputs (resumable; --ray for Ray Data)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--data", required=True,
                        help="image folder; with labels.csv (file,class_index) its files in that order, else every image")
    parser.add_argument("--n", type=int, default=None, help="only the first N inputs")
    parser.add_argument("--method", default="soft_pullback", help="explanation method (spmm.list_methods())")
    parser.add_argument("--target", choices=TARGETS, default="top1",
                        help="top1: each input's predicted class; label: its class in labels.csv")
    parser.add_argument("--batch-size", type=int, default=8, help="inputs per explainer call and per shard")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling methods (draws per input from (seed, its values): independent of --batch-size)")
    parser.add_argument("--ray", action="store_true", help="run on a local Ray Data actor pool (spmm[scale])")
    parser.add_argument("--workers", type=int, default=2, help="--ray: actors, one model and one CPU each")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per model (this process, or each actor); outputs are bit-identical at "
                             "equal --threads, else equal up to float rounding (default: CPU cores, divided by "
                             "--workers with --ray)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spmm.cli.attribute import (
        AttributeSettings, file_sha256, open_output, pending, plan, require_index_writer, run_local, run_on_ray,
        write_index,
    )
    from spmm.cli.ray_pool import require_ray
    from spmm.load import default_model
    from spmm.modalities.image.bench import labelled_images

    for option in ("batch_size", "workers", "n", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise SpmmInputError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    check_methods([args.method])
    require_index_writer()
    if args.ray:
        require_ray()
    files, classes = labelled_images(args.data, args.n)
    if args.target == "label" and classes is None:
        raise SpmmInputError(f"--target label needs class labels: {args.data} has no labels.csv")
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} listed input(s) not found, e.g. {missing[0]}")
    if args.weights is not None and not Path(args.weights).is_file():
        raise FileNotFoundError(f"no checkpoint file at {args.weights}")
    settings = AttributeSettings(
        model=args.model or default_model("image"), weights=args.weights,
        weights_sha256=file_sha256(args.weights) if args.weights is not None else None,
        labels=args.labels, random_init=args.random_init,
        method=args.method, target=args.target, batch_size=args.batch_size, seed=args.seed,
        data=str(Path(args.data).resolve()), files=tuple(str(Path(f).relative_to(args.data)) for f in files),
    )
    out = open_output(args.out, settings)
    shards = plan(settings, classes if args.target == "label" else None)
    todo, damaged = pending(out, shards)
    for reason in damaged:
        print(f"spmm attribute: shard {reason}; computing it again", file=sys.stderr)
    if todo:
        workers = args.workers if args.ray else 1
        threads = args.threads or max(1, (os.cpu_count() or 1) // workers)
        written = run_on_ray(settings, todo, out, workers, threads) if args.ray else run_local(settings, todo, out, threads)
        for _ in _progress(written, len(todo), f"attribute: explaining {len(todo)} of {len(shards)} shards"):
            pass
    index = write_index(out, settings, shards)
    print(f"{len(settings.files)} inputs, {len(todo)} shard(s) written, {len(shards) - len(todo)} already there; "
          f"index {index}")
    return 0


def _progress(items, total: int, description: str):
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=description, unit="shard", file=sys.stderr)
