"""The command line on bad input: one-line errors (rc 2, no traceback) before any work, and
outputs that never overwrite each other."""

from __future__ import annotations

import pickle

import pytest
import torch
from PIL import Image

from spmm.cli import main


@pytest.fixture
def folder(tmp_path):
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0)]):
        Image.new("RGB", (32, 32), colour).save(tmp_path / f"img{i}.png")
    (tmp_path / "labels.csv").write_text("file,class_index\nimg0.png,0\nimg1.png,1\n")
    return tmp_path


def _bench(folder, *extra):
    return ["bench", "faithfulness", "--model", "timm:test_resnet", "--random-init", "--data", str(folder),
            "--explainers", "gradient", "--metrics", "random_logit", "--out", str(folder / "out"), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--n", "0"], "--n must be at least 1"),
    (["--n", "-1"], "--n must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--device", "foo"], "--device 'foo' is not a device"),
    (["--explainer-params", "[1]"], "must be a JSON object"),
])
def test_bench_options_are_checked(folder, capsys, extra, message):
    assert main(_bench(folder, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_a_non_integer_class_in_labels_csv_is_named(folder, capsys):
    (folder / "labels.csv").write_text("file,class_index\nimg0.png,cat\nimg1.png,1\n")
    assert main(_bench(folder)) == 2
    assert "line 2: class_index 'cat' is not an integer" in capsys.readouterr().err


def test_out_that_is_a_file_or_under_a_file_is_refused_before_work(folder, capsys):
    blocker = folder / "blocker"
    blocker.write_text("x")
    for out, message in ((blocker, "exists and is not a folder"), (blocker / "sub", "lies under the file")):
        assert main(["explain", "timm:test_resnet", str(folder / "img0.png"), "--random-init", "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_two_inputs_with_one_name_never_overwrite(tmp_path, capsys):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (32, 32), (9, 9, 9)).save(tmp_path / sub / "x.png")
    out = tmp_path / "out"
    (out).mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["explain", "timm:test_resnet", str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"),
            "--random-init", "--target", "3", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 4 and len(set(pngs)) == 4
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", pickle.dumps(torch.nn.Linear(2, 2))])
def test_bad_audio_weights_are_one_line_errors(tmp_path, capsys, content):
    weights = tmp_path / "honk.pt"
    weights.write_bytes(content)
    clip = tmp_path / "clip.wav"
    import soundfile

    soundfile.write(clip, torch.zeros(1600).numpy(), 16000)
    assert main(["explain", "honk-res8", str(clip), "--weights", str(weights), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and "Traceback" not in err


def test_counterfactual_with_a_nan_step_size_is_refused(folder, capsys):
    assert main(["counterfactual", "timm:test_resnet", str(folder / "img0.png"), "--random-init", "--target", "1",
                 "--step-size", "nan", "--out", str(folder / "o")]) == 2
    assert "step_size" in capsys.readouterr().err


def test_the_bench_is_deterministic_across_runs_and_batch_sizes(folder, capsys):
    """The same run twice, and with another batch size, gives the same per-sample scores: random
    metrics draw per sample from (seed, sample id, metric), sampling explainers from (seed, the
    sample's values), whatever the batch."""
    import json

    import pandas as pd

    sampling = {"smooth_pullback": {"samples": 3}, "pullback_shap": {"samples": 3, "baseline_draws": 2},
                "fusion_pullback": {"model_samples": 2, "input_samples": 1}}

    def scores(out, batch_size):
        assert main(["bench", "faithfulness", "--model", "timm:test_resnet", "--random-init", "--data", str(folder),
                     "--explainers", ",".join(["soft_pullback", *sampling]), "--metrics", "infidelity,random_logit",
                     "--metric-params", '{"infidelity": {"draws": 1}}', "--explainer-params", json.dumps(sampling),
                     "--batch-size", str(batch_size), "--out", str(folder / out)]) == 0
        capsys.readouterr()
        return pd.read_csv(folder / out / "scores.csv").sort_values(["sample", "explainer", "metric"]).reset_index(drop=True)

    first, again, batched = scores("one", 1), scores("two", 1), scores("three", 2)
    assert len(first) == 2 * 4 * 2 and first["score"].notna().all()
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, batched, rtol=1e-5, atol=1e-6)  # batched convolutions may round otherwise


@pytest.mark.parametrize("command", ["bench", "attribute"])
def test_labels_csv_naming_files_outside_the_data_folder_is_refused(folder, tmp_path_factory, capsys, command):
    """Nothing outside --data is read: a labels.csv row with '..' or an absolute path is a one-line
    refusal naming its line, before any model is loaded."""
    pytest.importorskip("pyarrow.parquet", reason="spmm attribute writes Parquet")
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(outside)
    for escape in (f"../{outside.parent.name}/secret.png", str(outside)):
        (folder / "labels.csv").write_text(f"file,class_index\nimg0.png,0\n{escape},1\n")
        argv = (_bench(folder) if command == "bench" else
                ["attribute", "--model", "timm:test_resnet", "--random-init", "--data", str(folder),
                 "--out", str(folder / "out")])
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "labels.csv line 3: file" in err and "is not a path inside the data folder" in err
        assert err.count("\n") == 1 and "Traceback" not in err
