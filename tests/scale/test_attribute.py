"""``spmm attribute``: sharded outputs equal to ``m.explain`` on the same inputs, an index that
agrees with an independent forward pass, resumption, refused setting changes, and (with the
``[scale]`` extra) a Ray Data run whose files equal the single-process run."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

from spmm.cli import main

pq = pytest.importorskip("pyarrow.parquet", reason="spmm attribute writes Parquet: pip install 'spmm[scale]'")
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import spmm  # noqa: E402

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

MODEL = "timm:test_resnet"
CLASSES = [3, 1, 4, 1, 5, 9]


@pytest.fixture
def folder(tmp_path):
    """Six noise images of different sizes and modes, listed out of name order in labels.csv."""
    data = tmp_path / "data"
    data.mkdir()
    generator = np.random.default_rng(0)
    names = [f"img{i}.png" for i in (5, 0, 3, 1, 4, 2)]
    for i, name in enumerate(names):
        pixels = generator.integers(0, 256, (40 + 4 * i, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).convert("L" if i == 2 else "RGB").save(data / name)
    rows = "".join(f"{name},{cls}\n" for name, cls in zip(names, CLASSES))
    (data / "labels.csv").write_text("file,class_index\n" + rows)
    return data


def _attribute(data, out, *extra):
    return main(["attribute", "--model", MODEL, "--random-init", "--data", str(data), "--out", str(out),
                 "--batch-size", "4", *extra])


def _model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return spmm.load(MODEL, random_init=True)


def _files(data):
    return [data / line.split(",")[0] for line in (data / "labels.csv").read_text().splitlines()[1:]]


def _shards(out):
    return {p.name: load_file(p)["attributions"] for p in sorted((out / "shards").iterdir())}


def _metadata(path):
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def test_shards_equal_explain_and_index_agrees_with_a_forward_pass(folder, tmp_path):
    out = tmp_path / "out"
    assert _attribute(folder, out) == 0
    shards = _shards(out)
    assert list(shards) == ["00000000.safetensors", "00000004.safetensors"]
    model, files = _model(), _files(folder)
    for first, name in [(0, "00000000.safetensors"), (4, "00000004.safetensors")]:
        expected = model.explain([str(f) for f in files[first : first + 4]], method="soft_pullback", seed=0)
        assert torch.equal(shards[name], expected.attributions)

    index = pq.read_table(out / "index.parquet").to_pylist()
    with torch.no_grad():
        logits = model.model(model.prepare([str(f) for f in files]).inputs)
    probabilities = logits.softmax(-1)
    assert [r["file"] for r in index] == [f.name for f in files]
    assert [(r["shard"], r["row"]) for r in index] == [("00000000.safetensors", i) for i in range(4)] + [
        ("00000004.safetensors", i) for i in range(2)]
    assert [r["target_index"] for r in index] == logits.argmax(-1).tolist()
    assert [r["top1_index"] for r in index] == logits.argmax(-1).tolist()
    torch.testing.assert_close(torch.tensor([r["score"] for r in index]), logits.max(-1).values, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor([r["top1_probability"] for r in index]), probabilities.max(-1).values,
                               rtol=1e-5, atol=1e-6)
    assert {(r["method"], r["model"]) for r in index} == {("soft_pullback", MODEL)}
    assert [r["seed"] for r in index] == [0] * 6


def test_label_targets_come_from_labels_csv(folder, tmp_path):
    out = tmp_path / "out"
    assert _attribute(folder, out, "--target", "label", "--method", "gradient") == 0
    index = pq.read_table(out / "index.parquet").to_pylist()
    assert [r["target_index"] for r in index] == CLASSES
    model, files = _model(), _files(folder)
    expected = model.explain([str(f) for f in files[4:]], target=CLASSES[4:], method="gradient", seed=0)
    assert torch.equal(_shards(out)["00000004.safetensors"], expected.attributions)


def test_resume_writes_nothing_new_and_recomputes_a_missing_shard(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert _attribute(folder, out) == 0
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "shards").iterdir()}
    capsys.readouterr()
    assert _attribute(folder, out) == 0
    assert "0 shard(s) written, 2 already there" in capsys.readouterr().out
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "shards").iterdir()} == before

    (out / "shards" / "00000004.safetensors").unlink()
    assert _attribute(folder, out) == 0
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "shards").iterdir()}
    assert after["00000000.safetensors"] == before["00000000.safetensors"]
    again = tmp_path / "again"
    assert _attribute(folder, again) == 0
    assert torch.equal(_shards(out)["00000004.safetensors"], _shards(again)["00000004.safetensors"])
    assert _metadata(out / "shards" / "00000004.safetensors") == _metadata(again / "shards" / "00000004.safetensors")
    assert pq.read_table(out / "index.parquet").num_rows == 6


@pytest.mark.parametrize("extra, changed", [
    (["--method", "gradient"], "method"),
    (["--seed", "1"], "seed"),
    (["--n", "5"], "files"),
])
def test_other_settings_into_the_same_out_are_refused(folder, tmp_path, capsys, extra, changed):
    out = tmp_path / "out"
    assert _attribute(folder, out) == 0
    settings = (out / "settings.json").read_text()
    shards = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    capsys.readouterr()
    assert _attribute(folder, out, *extra) == 2
    err = capsys.readouterr().err
    assert f"changed: {changed}" in err and "Traceback" not in err and err.count("\n") == 1
    assert (out / "settings.json").read_text() == settings
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == shards
    assert json.loads(settings)["settings"]["method"] == "soft_pullback"


def test_a_foreign_folder_and_missing_ray_are_refused_before_any_work(folder, tmp_path, capsys, monkeypatch):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert _attribute(folder, foreign) == 2
    assert "not written by spmm attribute" in capsys.readouterr().err

    (folder / "labels.csv").write_text((folder / "labels.csv").read_text() + "gone.png,2\n")
    assert _attribute(folder, tmp_path / "out") == 2
    assert "1 listed input(s) not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real_find_spec(name, *a))
    assert _attribute(folder, tmp_path / "out", "--ray") == 2
    assert "--ray needs Ray Data: pip install 'spmm[scale]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ray_run_equals_the_single_process_run(folder, tmp_path):
    if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads its settings at import
        pytest.skip("Ray Data is the optional [scale] extra")
    local, distributed = tmp_path / "local", tmp_path / "ray"
    assert _attribute(folder, local, "--threads", "1") == 0
    assert _attribute(folder, distributed, "--ray", "--workers", "1", "--threads", "1") == 0
    local_shards, ray_shards = _shards(local), _shards(distributed)
    assert list(ray_shards) == list(local_shards)
    for name in local_shards:
        assert torch.equal(ray_shards[name], local_shards[name])
        assert _metadata(local / "shards" / name) == _metadata(distributed / "shards" / name)
    assert pq.read_table(distributed / "index.parquet").equals(pq.read_table(local / "index.parquet"))


def test_sampling_methods_give_the_same_attributions_whatever_the_batch_size(folder, tmp_path):
    """A seeded sampling method draws per input from (seed, the input's values): the attributions of
    each input are the same in shards of 4 and of 3, and equal explaining it alone."""
    params = ["--method", "smooth_pullback", "--seed", "0"]  # seed 0: the random-init model _model() draws
    assert _attribute(folder, tmp_path / "four", *params) == 0
    assert main(["attribute", "--model", MODEL, "--random-init", "--data", str(folder), "--out", str(tmp_path / "three"),
                 "--batch-size", "3", *params]) == 0
    four = torch.cat(list(_shards(tmp_path / "four").values()))
    three = torch.cat(list(_shards(tmp_path / "three").values()))
    torch.testing.assert_close(four, three, rtol=1e-5, atol=1e-6)
    alone = _model().explain([str(_files(folder)[5])], method="smooth_pullback", seed=0).attributions
    # alone vs in a batch: batched convolutions round differently (~1e-5 of max |a|); other draws would differ by O(max |a|)
    torch.testing.assert_close(four[5:6], alone, rtol=1e-4, atol=1e-4 * float(alone.abs().max()))
