"""The ``spmm`` command: a thin layer over ``spmm.load(...).explain(...)``.

It lives outside the core (installed as ``spmm.cli``); the core never imports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from spmm.errors import SpmmInputError

# Each module defines register(subparsers), adding parsers whose ``func(args) -> int`` runs the command.
COMMAND_MODULES = [
    "spmm.cli.commands.demo",
    "spmm.cli.commands.explain",
    "spmm.cli.commands.methods",
    "spmm.cli.commands.bench",
    "spmm.cli.commands.attribute",
    "spmm.cli.commands.serve",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spmm", description="Semantic Pullbacks: explain PyTorch models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _quiet_libraries() -> None:
    """No weight-loading progress bars or hub look-ups on every run (the CLI owns its process)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    from spmm.cli.commands.common import method_progress

    args = build_parser().parse_args(argv)
    try:
        with method_progress():
            return int(args.func(args) or 0)
    except (SpmmInputError, FileNotFoundError, NotADirectoryError, FileExistsError) as error:
        print(f"spmm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
