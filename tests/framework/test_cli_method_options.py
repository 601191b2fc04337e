"""``--param``, ``--temperature``, ``--device`` and ``--seed`` on ``spmm explain``/``compare``: the
values reach the method and the rule set, and bad values are one-line errors (rc 2) before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import spmm
from spmm.cli import main

MODEL = "timm:test_resnet"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "x.png"
    pixels = torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0))
    Image.fromarray((pixels * 255).to(torch.uint8).numpy()).save(path)
    return path


def _explain(capsys, out, image, *options: str) -> tuple[dict, torch.Tensor]:
    """(the printed record, the saved scores) of one ``spmm explain --json`` run."""
    assert main(["explain", MODEL, str(image), "--random-init", "--target", "2", "--json", "--out", str(out), *options]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads(Path(next(p for p in record["files"] if p.endswith(".json"))).read_text())
    return record, torch.tensor(saved["items"][0]["scores"], dtype=torch.float64)


def test_param_reaches_the_method_and_equals_the_api_call(tmp_path, capsys, image):
    record, scores = _explain(capsys, tmp_path, image, "--method", "integrated_gradients",
                              "--param", "steps=3", "--param", "baseline=0.25")
    assert record["params"]["steps"] == 3 and record["params"]["baseline"] == 0.25
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # --seed 0 draws the --random-init weights
        model = spmm.load("timm:test_resnet", random_init=True)
    expected = model.explain([str(image)], 2, "integrated_gradients", steps=3, baseline=0.25, seed=0)
    torch.testing.assert_close(scores, expected.item_scores(0).double(), rtol=1e-5, atol=1e-6)
    other = model.explain([str(image)], 2, "integrated_gradients", steps=2, baseline=0.25, seed=0)
    assert not torch.allclose(scores, other.item_scores(0).double(), rtol=1e-3, atol=1e-5)


def test_zero_temperatures_turn_the_soft_pullback_into_the_gradient(tmp_path, capsys, image):
    """relu=0 and max_pool=0 are the hard gates: SoftPullback then is the plain gradient (SPEC §2)."""
    record, hard = _explain(capsys, tmp_path / "a", image, "--method", "soft_pullback",
                            "--temperature", "relu=0", "--temperature", "max_pool=0")
    assert record["rules"]["temperatures"]["relu"] == 0.0 and record["rules"]["temperatures"]["max_pool"] == 0.0
    _, gradient = _explain(capsys, tmp_path / "b", image, "--method", "gradient")
    _, soft = _explain(capsys, tmp_path / "c", image, "--method", "soft_pullback")
    torch.testing.assert_close(hard, gradient, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(soft, gradient, rtol=1e-2, atol=1e-6)


def test_seed_draws_the_noise(tmp_path, capsys, image):
    runs = [_explain(capsys, tmp_path / str(i), image, "--method", "smoothgrad", "--param", "samples=2",
                     "--seed", str(seed))[1] for i, seed in enumerate((1, 1, 2))]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert not torch.equal(runs[0], runs[2])


def test_compare_gives_each_method_the_parameters_it_takes(tmp_path, capsys, image):
    assert main(["compare", MODEL, str(image), "--random-init", "--methods", "gradient,smoothgrad,integrated_gradients",
                 "--param", "steps=2", "--param", "samples=2", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["compare", MODEL, str(image), "--random-init", "--methods", "gradient,smoothgrad", "--param", "steps=2",
                 "--out", str(tmp_path)]) == 2
    assert "--param steps: not a parameter of gradient, smoothgrad" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--param", "steps"], "--param takes NAME=VALUE"),
    (["--param", "steps=1.5", "--method", "pullback_ascent"], "steps must be an integer >= 1"),
    (["--param", "samples=0", "--method", "smoothgrad"], "samples must be an integer >= 1"),
    (["--param", "no_such=1"], "--param no_such: not a parameter of soft_pullback"),
    (["--param", "steps=2", "--param", "steps=3", "--method", "integrated_gradients"], "given twice"),
    (["--temperature", "relu=warm"], "--temperature relu takes a number"),
    (["--temperature", "no_such=1"], "unknown temperature(s) ['no_such']"),
    (["--temperature", "relu=-1"], "temperature 'relu' must be a finite number >= 0"),
    (["--device", "toaster"], "--device 'toaster' is not a device"),
    (["--device", "meta"], "spmm runs on cpu or cuda"),
])
def test_bad_values_are_one_line_errors_before_any_work(tmp_path, capsys, image, options, message):
    out = tmp_path / "out"
    assert main(["explain", MODEL, str(image), "--random-init", "--out", str(out), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_help_shows_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--param NAME=VALUE", "--temperature RULE=T", "relu=0.6", "max_pool=0.3", "(default: auto)",
                  "--seed SEED", "(default: 0)", "spmm methods"):
        assert shown in text, shown
