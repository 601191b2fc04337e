"""``spmm serve``'s command line (no browser, no Gradio needed)."""

from __future__ import annotations

import pytest

from spmm.cli import build_parser, main
from spmm.cli.commands.serve import parse_weights, run_serve
from spmm.errors import SpmmInputError


def test_serve_takes_several_models_host_and_port() -> None:
    args = build_parser().parse_args(["serve", "--model", "resnet50", "--model", "honk-res8", "--port", "8123"])
    assert args.func is run_serve
    assert (args.model, args.host, args.port, args.concurrency) == (["resnet50", "honk-res8"], "127.0.0.1", 8123, 2)


def test_weights_are_spec_equals_path() -> None:
    assert parse_weights(["honk-res8=a.pt", " resnet50 = dir/b.pth "]) == {
        "honk-res8": {"weights": "a.pt"}, "resnet50": {"weights": "dir/b.pth"},
    }


@pytest.mark.parametrize("item", ["honk-res8", "=a.pt", "honk-res8=", " = "])
def test_malformed_weights_are_refused(item: str) -> None:
    with pytest.raises(SpmmInputError, match="SPEC=PATH"):
        parse_weights([item])


@pytest.mark.parametrize("options, message", [
    (["--weights", "honk_res8.pt"], "--weights takes SPEC=PATH"),
    (["--concurrency", "0"], "--concurrency must be at least 1"),
])
def test_bad_options_are_one_line_errors(capsys: pytest.CaptureFixture[str], options: list[str], message: str) -> None:
    assert main(["serve", *options]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
