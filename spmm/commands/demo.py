"""``spmm demo``: the main job on the embedded EfficientNet-Lite0 (filled in by the core issue)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="explain two sample pictures with the embedded EfficientNet-Lite0")
    parser.add_argument("--out", default="spmm-demo", help="output folder (default: ./spmm-demo)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("demo is being written")
