"""``spmm attribute`` resumes on content, never on names: a shard is reused only when its inputs'
bytes and target classes are unchanged and the file reads back whole and matching its checksum;
anything else is computed again, and said so.  It never reads outside ``--data`` and refuses an
unwritable ``--out`` in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spmm.cli import main

pytest.importorskip("pyarrow.parquet", reason="spmm attribute writes Parquet: pip install 'spmm[scale]'")
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save  # noqa: E402

MODEL = "timm:test_resnet"
CLASSES = [3, 1, 4, 1, 5, 9]
NAMES = [f"img{i}.png" for i in range(6)]


def _write_data(data):
    data.mkdir()
    generator = np.random.default_rng(0)
    for name in NAMES:
        Image.fromarray(generator.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(data / name)
    _write_labels(data, CLASSES)


def _write_labels(data, classes, names=NAMES):
    (data / "labels.csv").write_text("file,class_index\n" + "".join(f"{n},{c}\n" for n, c in zip(names, classes)))


def _attribute(data, out):
    return main(["attribute", "--model", MODEL, "--random-init", "--data", str(data), "--out", str(out),
                 "--batch-size", "4", "--method", "gradient", "--target", "label", "--threads", "1"])


def _content(path):
    """(attributions, metadata) of a shard (its bytes vary: safetensors orders metadata freely)."""
    with safe_open(str(path), "pt") as handle:
        return handle.get_tensor("attributions"), handle.metadata()


def _same_content(first, second):
    (a, meta_a), (b, meta_b) = _content(first), _content(second)
    return torch.equal(a, b) and meta_a == meta_b


def _snapshot(out):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((out / "shards").iterdir())}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """(data folder, out folder) of one complete run (copied by each test before changing it)."""
    root = tmp_path_factory.mktemp("attribute")
    _write_data(root / "data")
    assert _attribute(root / "data", root / "out") == 0
    return root / "data", root / "out"


@pytest.fixture
def copied(first_run, tmp_path):
    """The data folder of the first run (unchanged: it is part of the settings) and a copy of its out."""
    data, out = first_run
    shutil.copytree(out, tmp_path / "out")
    return data, tmp_path / "out"


def test_changed_image_bytes_or_classes_recompute_their_shard_only(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    _write_data(data)
    assert _attribute(data, out) == 0
    before = _snapshot(out)
    Image.fromarray(np.full((40, 48, 3), 7, dtype=np.uint8)).save(data / "img5.png")  # same name, new content
    changed_classes = [2, *CLASSES[1:]]
    _write_labels(data, changed_classes)  # same files, a new class for img0
    capsys.readouterr()
    assert _attribute(data, out) == 0
    captured = capsys.readouterr()
    assert "00000000.safetensors was computed from other inputs or targets" in captured.err
    assert "00000004.safetensors was computed from other inputs or targets" in captured.err
    assert "2 shard(s) written, 0 already there" in captured.out

    fresh = tmp_path / "fresh"  # an independent run on the changed inputs
    assert _attribute(data, fresh) == 0
    after = _snapshot(out)
    for name in after:
        assert _same_content(out / "shards" / name, fresh / "shards" / name)
        assert after[name] != before[name]
    import pyarrow.parquet as pq

    assert [r["target_index"] for r in pq.read_table(out / "index.parquet").to_pylist()] == changed_classes

    capsys.readouterr()  # unchanged inputs: nothing recomputed, nothing said
    assert _attribute(data, out) == 0
    captured = capsys.readouterr()
    assert "0 shard(s) written, 2 already there" in captured.out and "again" not in captured.err
    assert _snapshot(out) == after


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(b"\x00garbage" * 64)


def _empty(path):
    path.write_bytes(b"")


def _zeroed(path):
    """The same key and rows, attributions replaced by zeros (a file that reads back fine)."""
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    attributions = load_file(path)["attributions"]
    path.write_bytes(save({"attributions": attributions * 0}, metadata=metadata))


def _other_rows(path):
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    rows = json.loads(metadata["rows"])[:1]
    path.write_bytes(save(load_file(path), metadata={**metadata, "rows": json.dumps(rows)}))


@pytest.mark.parametrize("damage, reason", [
    (_truncated, "cannot be read"), (_garbage, "cannot be read"), (_empty, "cannot be read"),
    (_zeroed, "does not match its checksum"), (_other_rows, "does not match its checksum"),
])
def test_a_damaged_shard_is_computed_again_and_said_so(first_run, copied, capsys, damage, reason):
    data, out = copied
    before = _snapshot(out)
    damage(out / "shards" / "00000004.safetensors")
    capsys.readouterr()
    assert _attribute(data, out) == 0
    captured = capsys.readouterr()
    (line,) = [line for line in captured.err.splitlines() if line.startswith("spmm attribute: shard")]
    assert line.startswith(f"spmm attribute: shard 00000004.safetensors {reason}") and line.endswith("computing it again")
    assert "1 shard(s) written, 1 already there" in captured.out
    after = _snapshot(out)
    assert after["00000000.safetensors"] == before["00000000.safetensors"]
    name = "00000004.safetensors"
    assert _same_content(out / "shards" / name, first_run[1] / "shards" / name)


@pytest.mark.parametrize("escape", ["../outside.png", "{outside}", "sub/../../outside.png"])
def test_labels_naming_files_outside_the_data_folder_are_refused(tmp_path, capsys, escape):
    data = tmp_path / "data"
    _write_data(data)
    outside = tmp_path / "outside.png"
    Image.new("RGB", (40, 48), (1, 2, 3)).save(outside)
    _write_labels(data, CLASSES, [*NAMES[:2], escape.format(outside=outside), *NAMES[3:]])
    capsys.readouterr()
    assert _attribute(data, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "labels.csv line 4: file" in err and "is not a path inside the data folder" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_is_a_one_line_error(first_run, tmp_path, capsys):
    data, _ = first_run
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = [blocker / "out"]
    sysfs = Path("/sys/spmm-attribute-out")  # a folder even root cannot create, where /sys is sysfs
    try:
        sysfs.mkdir()
        sysfs.rmdir()
    except OSError:
        unwritable.append(sysfs)
    for out in unwritable:
        capsys.readouterr()
        assert _attribute(data, out) == 2
        err = capsys.readouterr().err
        assert f"--out {out} cannot be written" in err and err.count("\n") == 1 and "Traceback" not in err
