"""``spmm serve``: an interactive explainer page (Gradio; the optional extra ``spmm[ui]``)."""

from __future__ import annotations

import argparse
import hmac
import os
import tempfile
from pathlib import Path
from typing import Callable

from spmm.errors import SpmmInputError

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN_VARIABLE = "SPMM_SERVE_TOKEN"
MIN_TOKEN_LENGTH = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="an interactive explainer page for images, texts, audio, vision-language and speech-to-text models "
             "(needs spmm[ui])",
        description="Serve a web page (Gradio) that explains the embedded models and any --model given "
                    "(a vision-language or speech-to-text model gets its own tab).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="another model to offer (anything spmm.load takes); repeat for several")
    parser.add_argument("--weights", action="append", default=[], metavar="SPEC=PATH",
                        help="local checkpoint of a model, e.g. honk-res8=honk_res8.pt; repeat for several")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; any other than localhost/127.0.0.1/::1 needs --auth-token or --no-auth")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--concurrency", type=int, default=2, help="explanations computed at the same time")
    parser.add_argument("--share", action="store_true",
                        help="also open a public Gradio share link (never otherwise, whatever GRADIO_SHARE says); "
                             "needs --auth-token or --no-auth")
    parser.add_argument("--auth-token", default=None, metavar="TOKEN",
                        help=f"require a login whose password is TOKEN (any user name; at least {MIN_TOKEN_LENGTH} "
                             f"characters); default: ${TOKEN_VARIABLE}, which keeps it out of the process list")
    parser.add_argument("--no-auth", action="store_true",
                        help="serve beyond this machine without a login (anyone who reaches the port can use it)")
    parser.set_defaults(func=run_serve)


def login_check(args: argparse.Namespace) -> Callable[[str, str], bool] | None:
    """The page's login (any user name, the token as password), None for an open page; a page
    reachable beyond this machine (``--host`` not loopback, or ``--share``) without a token or
    ``--no-auth`` is refused."""
    token = args.auth_token if args.auth_token is not None else os.environ.get(TOKEN_VARIABLE) or None
    if token is not None and args.no_auth:
        raise SpmmInputError(f"--no-auth contradicts the token given (--auth-token or ${TOKEN_VARIABLE}); keep one")
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise SpmmInputError(f"the serve token must have at least {MIN_TOKEN_LENGTH} characters, got {len(token)}")
    public = "--share" if args.share else f"--host {args.host}" if args.host not in LOOPBACK_HOSTS else None
    if public and token is None and not args.no_auth:
        raise SpmmInputError(
            f"{public} makes the page reachable beyond this machine: give a login token (--auth-token TOKEN or "
            f"${TOKEN_VARIABLE}) or say --no-auth"
        )
    if token is None:
        return None
    return lambda username, password: hmac.compare_digest(str(password).encode(), token.encode())


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
    auth = login_check(args)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        from spmm.cli.page.app import build_app, launch
    except ImportError as error:
        raise SpmmInputError(f"spmm serve needs the ui extra: pip install 'spmm[ui]' ({error})") from error
    extra = list(dict.fromkeys([*args.model, *(spec for spec in options if spec not in args.model)]))
    with tempfile.TemporaryDirectory(prefix="spmm-serve-") as folder:
        app = build_app(Path(folder), extra, options)
        url = launch(app, args.host, args.port, args.concurrency, share=args.share, auth=auth)
        login = "; log in with any user name and the token as password" if auth else ""
        print(f"spmm serve: {url} (Ctrl+C stops{login})", flush=True)
        app.block_thread()
    return 0
