"""``spmm serve``: an interactive explainer page (Gradio; the optional extra ``spmm[ui]``)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from spmm.errors import SpmmInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="an interactive explainer page for images, texts and audio (needs spmm[ui])",
        description="Serve a web page (Gradio) that explains the embedded models and any --model given.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="another model to offer (anything spmm.load takes); repeat for several")
    parser.add_argument("--weights", action="append", default=[], metavar="SPEC=PATH",
                        help="local checkpoint of a model, e.g. honk-res8=honk_res8.pt; repeat for several")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--concurrency", type=int, default=2, help="explanations computed at the same time")
    parser.set_defaults(func=run_serve)


def parse_weights(items: list[str]) -> dict[str, dict[str, str]]:
    """``["honk-res8=a.pt"]`` -> ``{"honk-res8": {"weights": "a.pt"}}``."""
    options: dict[str, dict[str, str]] = {}
    for item in items:
        spec, separator, path = item.partition("=")
        if not separator or not spec.strip() or not path.strip():
            raise SpmmInputError(f"--weights takes SPEC=PATH, got {item!r}")
        options[spec.strip()] = {"weights": path.strip()}
    return options


def run_serve(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise SpmmInputError(f"--concurrency must be at least 1, got {args.concurrency}")
    options = parse_weights(args.weights)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        from spmm.cli.page.app import build_app, launch
    except ImportError as error:
        raise SpmmInputError(f"spmm serve needs the ui extra: pip install 'spmm[ui]' ({error})") from error
    extra = list(dict.fromkeys([*args.model, *(spec for spec in options if spec not in args.model)]))
    with tempfile.TemporaryDirectory(prefix="spmm-serve-") as folder:
        app = build_app(Path(folder), extra, options)
        url = launch(app, args.host, args.port, args.concurrency)
        print(f"spmm serve: {url} (Ctrl+C stops)", flush=True)
        app.block_thread()
    return 0
