"""``spmm bench groundtruth``: synthetic shapes with object masks, scored against a hand computation."""

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import spmm
from spmm.cli import main
from spmm.modalities.image.shapes import make_shapes

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')


@pytest.fixture(scope="module")
def random_resnet(tmp_path_factory):
    """An untrained shapes-resnet checkpoint (seeded)."""
    from spmm.adapters.vision.shapes import build_shapes_model

    torch.manual_seed(0)
    model = build_shapes_model("resnet", 6)
    path = tmp_path_factory.mktemp("weights") / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def test_groundtruth_scores_equal_a_hand_computation_and_resume(random_resnet, tmp_path, capsys):
    out = tmp_path / "gt"
    command = ["bench", "groundtruth", "--weights", random_resnet, "--n", "3", "--batch-size", "2", "--seed", "4",
               "--explainers", "soft_pullback,gradient", "--metrics", "mass_accuracy,mask_auroc,pointing_hit",
               "--out", str(out)]
    assert main(command) == 0
    capsys.readouterr()
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 3 * 2 * 3 and set(scores.explainer) == {"soft_pullback", "gradient"}

    model = spmm.load("shapes-resnet", weights=random_resnet)
    scenes = make_shapes(3, 4, size=model.modality.size)
    x = (torch.as_tensor(scenes.images) * 2 - 1).requires_grad_(True)
    labels = torch.as_tensor(scenes.labels)
    grad, = torch.autograd.grad(model.model(x).gather(1, labels[:, None]).sum(), x)
    pixel = grad.abs().sum(1).flatten(1).double()
    mask = torch.as_tensor(scenes.evidence).flatten(1)
    mass = (pixel * mask).sum(1) / pixel.sum(1)
    hit = mask.gather(1, pixel.argmax(1, keepdim=True)).squeeze(1).double()
    got = scores[scores.explainer == "gradient"].set_index(["metric", "sample"]).score
    ids = [f"shapes-4-{i:05d}" for i in range(3)]
    torch.testing.assert_close(torch.tensor([got["mass_accuracy", i] for i in ids], dtype=torch.float64), mass)
    assert [got["pointing_hit", i] for i in ids] == hit.tolist()

    checkpoints = sorted((out / "checkpoints").iterdir())
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    assert main(command) == 0  # a rerun reuses every checkpoint
    assert [p.stat().st_mtime_ns for p in sorted((out / "checkpoints").iterdir())] == stamps
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference"] == "soft_pullback"
    assert {(r["explainer"], r["metric"]) for r in summary["paired"]} == {
        ("gradient", m) for m in ("mass_accuracy", "mask_auroc", "pointing_hit")}
    settings = json.loads((out / "settings.json").read_text())
    assert settings["run"]["data"] == "shapes" and settings["run"]["kind"] == "groundtruth"


def test_groundtruth_needs_the_shapes_source_and_focus_refuses_it(random_resnet, tmp_path, capsys):
    code = main(["bench", "groundtruth", "--weights", random_resnet, "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "--data shapes" in capsys.readouterr().err
    code = main(["bench", "focus", "--model", "shapes-resnet", "--weights", random_resnet, "--data", "shapes",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "spmm bench groundtruth" in capsys.readouterr().err
