"""``spmm demo``: the figure a person reads first (input, |relevance| overlays of the Semantic
Pullback and the gradient, plain titles, a colour bar) and the top-3 classes it prints."""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pytest
import torch

from spmm.cli import main
from spmm.cli.commands.demo import DEMO_PICTURES, demo_figure


def _expected_overlay(image: torch.Tensor, attribution: torch.Tensor) -> np.ndarray:
    """Independent of the renderer: |attribution| summed over the colour channels, divided by its
    99.5th percentile and clipped to [0, 1], blended over the greyed picture with weight 0.6·heat."""
    heat = np.abs(attribution.double().numpy()).sum(0)
    heat = np.clip(heat / np.percentile(heat, 99.5), 0, 1)
    grey = ((image.double().numpy() + 1) / 2).mean(0)[..., None]
    colours = matplotlib.colormaps["inferno"](heat)[..., :3]
    weight = 0.6 * heat[..., None]
    return (1 - weight) * grey + weight * colours


def test_figure_shows_the_input_and_one_overlay_per_method_with_a_colour_bar():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 32, 40, generator=generator) * 2 - 1
    attributions = {
        "Semantic Pullback": torch.randn(3, 32, 40, generator=generator),
        "Gradient": torch.randn(3, 32, 40, generator=generator) * 5,
    }
    figure = demo_figure(image, attributions, title="a title")
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == ["Input", "Semantic Pullback", "Gradient"]
    assert figure.get_suptitle() == "a title"
    np.testing.assert_allclose(panels[0].get_images()[0].get_array(), ((image + 1) / 2).permute(1, 2, 0).numpy(),
                               atol=1e-6)
    for axis, attribution in zip(panels[1:], attributions.values()):
        shown = np.asarray(axis.get_images()[0].get_array(), dtype=np.float64)
        np.testing.assert_allclose(shown, _expected_overlay(image, attribution), atol=1e-5)
    colour_bars = [axis for axis in figure.axes if axis not in panels]
    assert len(colour_bars) == 1
    assert "|relevance|" in colour_bars[0].get_ylabel()
    matplotlib.pyplot.close(figure)


def test_overlay_is_the_channel_sum_of_magnitudes_not_the_magnitude_of_the_sum():
    """Opposite signs in two channels cancel in |Σ a| but not in Σ |a|: the overlay must show them."""
    image = torch.zeros(3, 8, 8)
    attribution = torch.zeros(3, 8, 8)
    attribution[0, 2, 3], attribution[1, 2, 3] = 1.0, -1.0
    figure = demo_figure(image, {"Gradient": attribution})
    shown = np.asarray(figure.axes[1].get_images()[0].get_array(), dtype=np.float64)
    np.testing.assert_allclose(shown, _expected_overlay(image, attribution), atol=1e-5)
    assert not np.allclose(shown[2, 3], shown[0, 0])
    matplotlib.pyplot.close(figure)


def test_demo_prints_the_top3_classes_and_writes_one_figure_per_picture(tmp_path, capsys):
    skimage_data = pytest.importorskip("skimage.data")
    import spmm
    from spmm.modalities.image import load_images

    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out

    model = spmm.load("efficientnet-lite0")
    pictures = load_images([getattr(skimage_data, name)() for name in DEMO_PICTURES])
    with torch.no_grad():
        top3 = model.model(pictures).softmax(-1).topk(3, dim=-1).indices
    for name, indices in zip(DEMO_PICTURES, top3):
        line = re.search(rf"^{name}: top-3 (.*)$", printed, re.MULTILINE)
        assert line is not None, printed
        labels = re.findall(r"([^,]+?) \(\d+\.\d%\)", line.group(1))
        assert [label.strip() for label in labels] == [model.labels[int(i)] for i in indices]
        written = sorted(tmp_path.glob(f"{name}-efficientnet-lite0-demo-*.png"))
        assert len(written) == 1 and written[0].stat().st_size > 0
