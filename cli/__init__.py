"""The ``spmm`` command: a thin layer over the public Python API."""

from __future__ import annotations

import argparse
import importlib
import sys

from spmm.errors import SpmmInputError

# Each module defines register(subparsers), adding parsers whose ``func(args) -> int`` runs the command.
COMMAND_MODULES = [
    "spmm.cli.commands.demo",
    "spmm.cli.commands.vision",
    "spmm.cli.commands.bench",
    "spmm.cli.commands.text",
    "spmm.cli.commands.audio",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spmm", description="Semantic Pullbacks: explain PyTorch models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (SpmmInputError, FileNotFoundError) as error:
        print(f"spmm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
