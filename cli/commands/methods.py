"""``spmm methods``: every attribution method with its summary and parameter defaults (what
``--method`` and ``--param`` take)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "methods", help="list the attribution methods with their parameters and defaults (--method, --param)",
        description="List the attribution methods with their parameters and defaults. A modality may scale some "
                    "defaults to the input (noise, step sizes); the --json record of `spmm explain` lists the "
                    "parameters each explanation used.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spmm.methods.registry import get_method, list_methods

    for name in list_methods():
        method = get_method(name)
        kind = "SP" if method.pullback else "baseline"
        defaults = "  ".join(f"{key}={value!r}" for key, value in method.defaults.items()) or "(no parameters)"
        print(f"{name} [{kind}]: {method.summary}\n    {defaults}")
    return 0
