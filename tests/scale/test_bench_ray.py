"""``spmm bench --ray``: the (batch, explainer) checkpoints computed by a local Ray Data actor pool
are the single-process run's files byte for byte, so are the tables; a resumed Ray run reuses the
checkpoints it finds; a worker writes only items whose key it shares with the driver; missing Ray
and GPU options that cannot apply are one-line errors before any work."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from spmm.cli import build_parser, main

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

TABLES = ("scores.csv", "summary.csv", "paired.csv", "summary.json", "summary.md", "missing.csv")
BENCH = ["bench", "groundtruth", "--model", "shapes-vgg", "--n", "4", "--batch-size", "2", "--seed", "3",
         "--explainers", "soft_pullback,gradient", "--metrics", "mass_accuracy,random_logit", "--threads", "1"]
"""A tiny bench: 2 batches × 2 explainers = 4 checkpoints; Random logit draws its other class per sample."""


def _bench(out: Path, *extra: str) -> int:
    return main([*BENCH, "--out", str(out), *extra])


def _checkpoints(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "checkpoints").glob("*.csv"))}


def _stamps(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("*.csv")}


@pytest.fixture(scope="module")
def single_process(tmp_path_factory) -> Path:
    """The single-process run, one torch thread."""
    out = tmp_path_factory.mktemp("bench") / "local"
    assert _bench(out) == 0
    assert len(_checkpoints(out)) == 4
    return out


def _needs_ray() -> None:
    if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads its settings at import
        pytest.skip("Ray Data is the optional [scale] extra")


def test_ray_run_equals_the_single_process_run_and_resumes(single_process, tmp_path, monkeypatch):
    _needs_ray()
    out = tmp_path / "ray"
    assert _bench(out, "--ray", "--workers", "2") == 0
    assert _checkpoints(out) == _checkpoints(single_process)
    for name in TABLES:
        assert (out / name).read_bytes() == (single_process / name).read_bytes(), name

    # an interrupted run: two checkpoints gone; the Ray rerun recomputes them and leaves the others alone
    gone = sorted(_checkpoints(out))[::2]
    kept = {name: stamp for name, stamp in _stamps(out).items() if name not in gone}
    for name in gone:
        (out / "checkpoints" / name).unlink()
    assert _bench(out, "--ray", "--workers", "2") == 0
    assert {name: _stamps(out)[name] for name in kept} == kept
    assert _checkpoints(out) == _checkpoints(single_process)
    for name in TABLES:
        assert (out / name).read_bytes() == (single_process / name).read_bytes(), name

    # nothing left to compute: Ray is not started at all
    import spmm.cli.ray_pool

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started with nothing to compute")

    monkeypatch.setattr(spmm.cli.ray_pool, "map_on_actor_pool", no_ray)
    assert _bench(out, "--ray", "--workers", "2") == 0
    assert _stamps(out) == {**kept, **{name: _stamps(out)[name] for name in gone}}


def test_a_worker_writes_the_single_process_files_and_refuses_other_keys(single_process, tmp_path):
    """The actor class itself, in this process (no Ray): items of the driver's keys give the
    single-process checkpoints; an item whose key it does not share is refused, nothing written."""
    from spmm.cli.bench_pool import BenchPairWorker

    out = tmp_path / "worker"
    (out / "checkpoints").mkdir(parents=True)
    args = build_parser().parse_args([*BENCH, "--out", str(out)])
    command = {k: v for k, v in vars(args).items() if k != "func"} | {"device": "cpu"}
    worker = BenchPairWorker(command, threads=1)
    expected = _checkpoints(single_process)
    pairs = {f"{key}.csv": pair for pair, key in worker.keys.items()}
    assert sorted(pairs) == sorted(expected)  # the worker's keys are the single-process run's checkpoint names

    name = sorted(expected)[1]
    batch, explainer = pairs[name]
    result = worker({"batch": [batch], "explainer": [explainer], "key": [name[:-4]]})
    assert result == {"key": [name[:-4]], "error": [""]}
    assert _checkpoints(out) == {name: expected[name]}

    other = "0" * 64
    result = worker({"batch": [batch], "explainer": [explainer], "key": [other]})
    assert "other settings than the driver" in result["error"][0]
    assert not (out / "checkpoints" / f"{other}.csv").exists() and len(_checkpoints(out)) == 1


@pytest.mark.parametrize("extra, message", [
    (["--ray"], "--ray needs Ray Data: pip install 'spmm[scale]'"),
    (["--ray", "--device", "cpu", "--gpus-per-worker", "0.5"], "--gpus-per-worker needs a CUDA --device"),
    (["--gpus-per-worker", "1"], "--gpus-per-worker is an option of --ray"),
    (["--ray", "--workers", "0"], "--workers must be at least 1"),
])
def test_missing_ray_and_options_that_cannot_apply_are_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                                               extra, message):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real_find_spec(name, *a))
    assert _bench(tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("gpus, extra, expected", [
    (1, ["--workers", "6"], (0.1666, 1)),          # six workers share one GPU: 1/6, floored to Ray's 1e-4 steps
    (3, ["--workers", "2"], (1.0, 3)),             # whole GPUs when there are enough: 3 // 2
    (4, ["--workers", "2"], (2.0, 4)),
    (1, ["--workers", "4", "--gpus-per-worker", "0.25"], (0.25, 1)),
    (1, ["--workers", "2", "--gpus-per-worker", "1"], "needs 2 GPUs; this machine has 1"),
    (2, ["--gpus-per-worker", "1.5"], "a fraction in (0, 1] or a whole number"),
    (1, ["--device", "cuda:0"], "use --device cuda"),
])
def test_gpus_per_worker_shares_out_the_visible_gpus(monkeypatch, tmp_path, gpus, extra, expected):
    """The GPU side of --ray, checked without a GPU (CUDA's device count faked)."""
    import torch

    import spmm.cli.ray_pool
    from spmm.cli.commands.bench import _ray_pool
    from spmm.errors import SpmmInputError

    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(spmm.cli.ray_pool, "require_ray", lambda: None)
    args = build_parser().parse_args([*BENCH, "--out", str(tmp_path), "--ray", "--device", "cuda", *extra])
    device = torch.device(args.device)
    if isinstance(expected, str):
        with pytest.raises(SpmmInputError, match=re.escape(expected)):
            _ray_pool(args, device)
        return
    pool = _ray_pool(args, device)
    assert (pool.gpus_per_worker, pool.gpus) == expected
    assert pool.gpus_per_worker * pool.workers <= pool.gpus
