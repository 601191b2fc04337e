"""The embedded EfficientNet-Lite0 on real ImageNet images (``../shared/data/imagenet-sample``)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from PIL import Image

import spmm
from spmm.adapters.vision import load_efficientnet_lite0
from spmm.cli import main
from spmm.modalities.image import load_images

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

IMAGES = 3


def explain_image(model, x, target, method, **params) -> spmm.Explanation:
    return spmm.load(model, modality="image").explain(x, target, method, **params)


@pytest.fixture(scope="module")
def lite0():
    return load_efficientnet_lite0()


@pytest.fixture
def sample(shared_data):
    folder = shared_data / "imagenet-sample"
    with open(folder / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))[:IMAGES]
    files = [folder / row["file"] for row in rows]
    return files, load_images(files), [int(row["class_index"]) for row in rows]


def neighbour_autocorrelation(attributions: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B,) lag-1 spatial autocorrelation of the channel-summed map, averaged over
    horizontal and vertical neighbours: Σ m(p)·m(p+1) / Σ m(p)² for the mean-centred map m."""
    centred = attributions.sum(1)
    centred = centred - centred.mean((1, 2), keepdim=True)
    horizontal = (centred[:, :, 1:] * centred[:, :, :-1]).sum((1, 2))
    vertical = (centred[:, 1:, :] * centred[:, :-1, :]).sum((1, 2))
    return (horizontal + vertical) / (2 * centred.pow(2).sum((1, 2)))


def test_soft_pullback_is_less_noisy_than_the_gradient(lite0, sample):
    """Criterion: lag-1 spatial autocorrelation of the map (higher = less noisy).

    Gradient noise is the pixel-to-pixel flicker of hard ReLU6 gates switching between
    neighbouring pixels: neighbouring values are close to uncorrelated.  A perceptually aligned
    map varies smoothly over object parts, so neighbours agree.  The statistic is invariant to
    the map's scale (unlike total variation of a max-normalised map, which a single outlier
    pixel dominates) and needs no ground truth.  Measured here: gradient ≈ 0.18–0.22,
    SoftPullback ≈ 0.26–0.32 on the first images of the sample.
    """
    _, images, labels = sample
    sp = explain_image(lite0, images, labels, "soft_pullback").attributions
    grad = explain_image(lite0, images, labels, "gradient").attributions
    sp_score, grad_score = neighbour_autocorrelation(sp), neighbour_autocorrelation(grad)
    assert (sp_score > grad_score).all(), (sp_score, grad_score)
    assert (sp_score - grad_score).mean() > 0.05


def test_pullback_ascent_raises_the_target_logit_at_every_step(lite0, sample):
    """With steps small enough for the first-order picture (α = 0.25 in L2 over 150k [−1, 1] pixels;
    Lite0's logits move by about 1 per such step) every step raises the target logit, for each
    image's own class (accentuation) and for another class (counterfactual).  At the paper's
    α = 20 single steps overshoot on Lite0 and may lower the logit, so there only the end point
    is checked: above the start (two images, to keep the test fast)."""
    _, images, labels = sample
    others = labels[1:] + labels[:1]
    targets = labels + others
    explanation = explain_image(lite0, images.repeat(2, 1, 1, 1), targets, "pullback_ascent", step_size=0.25, steps=4)
    scores, trajectory = explanation.extras["step_scores"], explanation.extras["trajectory"]
    assert (scores[1:] > scores[:-1]).all(), scores
    assert trajectory.min() >= -1 and trajectory.max() <= 1
    with torch.no_grad():
        final = lite0(trajectory[-1]).gather(1, torch.tensor(targets).view(-1, 1)).squeeze(1)
    torch.testing.assert_close(final, scores[-1], rtol=1e-4, atol=1e-4)
    default = explain_image(lite0, images[:2], others[:2], "pullback_ascent")
    assert (default.extras["step_scores"][-1] > default.extras["step_scores"][0]).all()
    assert default.extras["trajectory"].abs().max() <= 1


def test_cli_explain_json_compare_and_counterfactual(sample, tmp_path, capsys):
    files, _, labels = sample
    assert main(["explain", str(files[0]), str(files[1]), "--json", "--out", str(tmp_path)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 2
    for record in records:
        assert record["schema"] == "spmm.explanation/1" and record["modality"] == "image"
        assert record["model"] == "efficientnet-lite0" and record["rules"]["name"] == "vision"
        (item,) = record["items"]
        probabilities = [p["probability"] for p in item["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
        assert item["target"]["index"] == item["predictions"][0]["index"]
        assert record["method"] == "soft_pullback"
        png, saved = record["files"]
        with Image.open(png) as figure:
            assert figure.size == (1500, 340)
        scores = json.loads(open(saved).read())["items"][0]["scores"]
        assert len(scores) == 224 and len(scores[0]) == 224
    assert records[0]["items"][0]["predictions"][0]["label"] == "tench" and labels[0] == 0

    assert main(["explain", str(files[0]), "--target", "goldfish", "--method", "gradient", "--json",
                 "--out", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {k: record["items"][0]["target"][k] for k in ("index", "label")} == {"index": 1, "label": "goldfish"}
    assert record["files"][0].endswith("-efficientnet-lite0-gradient-goldfish.png")

    assert main(["compare", str(files[0]), "--methods", "gradient,soft_pullback,guided_pb_cam",
                 "--out", str(tmp_path)]) == 0
    with Image.open(capsys.readouterr().out.strip()) as figure:
        assert figure.size == (1040, 300)

    assert main(["counterfactual", str(files[0]), "--target", "goldfish", "--steps", "2", "--out", str(tmp_path)]) == 0
    with Image.open(capsys.readouterr().out.strip().splitlines()[-1]) as figure:
        assert figure.size == (780, 560)

    assert main(["explain", str(files[0]), "--target", "goldfsh", "--out", str(tmp_path)]) == 2
    assert "goldfish" in capsys.readouterr().err
    assert main(["compare", str(files[0]), "--methods", "nope", "--out", str(tmp_path)]) == 2
