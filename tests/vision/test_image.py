"""Image loading as in the paper, feature partitions, and rendered figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from spmm import SpmmInputError
from spmm.modalities import image as img


def _random_picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth random picture (an 8×8 random image upscaled), so resampling filters agree closely."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return coarse.resize((width, height), Image.BICUBIC)


def _reference(picture: Image.Image, size: int = 224) -> torch.Tensor:
    """Paper preprocessing by hand with PIL: square -> size; else short side 256, centre 224 crop."""
    if picture.width == picture.height:
        resized = picture.resize((size, size), Image.BILINEAR)
    else:
        short = round(size * 256 / 224)
        scale = short / min(picture.size)
        resized = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.BILINEAR)
        left, top = round((resized.width - size) / 2), round((resized.height - size) / 2)
        resized = resized.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1) * 2 - 1


@pytest.mark.parametrize("size", [(300, 300), (400, 300), (300, 500)])
def test_preprocess_matches_the_paper_pipeline(size):
    picture = _random_picture(*size)
    out = img.preprocess(picture)
    assert out.shape == (3, 224, 224) and out.min() >= -1 and out.max() <= 1
    # antialiased torchvision resize vs PIL bilinear: same pipeline, small interpolation differences
    assert (out - _reference(picture)).abs().mean() < 0.01


def test_exif_orientation_is_applied(tmp_path):
    picture = _random_picture(300, 200, seed=1)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    path = tmp_path / "rotated.jpg"
    picture.save(path, exif=exif, quality=100)
    upright = picture.transpose(Image.Transpose.ROTATE_270)
    loaded = img.load_image(path)
    assert (loaded - img.preprocess(upright)).abs().mean() < 0.03
    assert (loaded - img.preprocess(picture)).abs().mean() > 0.2


def test_gray_rgba_and_mixed_sizes_make_one_batch():
    gray = Image.fromarray(np.full((50, 80), 128, dtype=np.uint8), mode="L")
    rgba = Image.fromarray(np.zeros((60, 60, 4), dtype=np.uint8), mode="RGBA")  # fully transparent
    batch = img.load_images([gray, rgba, _random_picture(120, 90)])
    assert batch.shape == (3, 3, 224, 224)
    torch.testing.assert_close(batch[0], torch.full((3, 224, 224), 128 / 255 * 2 - 1))
    torch.testing.assert_close(batch[1], torch.ones(3, 224, 224))  # composited onto white
    with pytest.raises(SpmmInputError):
        img.load_images([])
    with pytest.raises(SpmmInputError):
        img.load_image(np.zeros((4, 4, 3), dtype=np.float32))


def test_patch_groups_tile_the_image():
    labels = img.patch_groups(224, 224, 56)
    assert labels.shape == (224, 224)
    assert torch.equal(torch.bincount(labels.flatten()), torch.full((16,), 56 * 56))
    assert labels[0, 55] == 0 and labels[0, 56] == 1 and labels[56, 0] == 4
    uneven = img.patch_groups(10, 7, (4, 3))
    assert uneven.max() == 3 * 3 - 1 and uneven[9, 6] == 8


def test_superpixels_follow_colour_regions():
    picture = torch.full((3, 64, 64), -1.0)
    picture[:, :, 32:] = 1.0  # two flat halves
    labels = img.superpixel_groups(picture, segments=8)
    assert labels.shape == (64, 64) and labels.min() == 0
    assert torch.equal(torch.unique(labels), torch.arange(int(labels.max()) + 1))
    left, right = set(labels[:, :32].unique().tolist()), set(labels[:, 32:].unique().tolist())
    assert not left & right  # no superpixel straddles the edge


def test_maps_have_their_documented_ranges():
    torch.manual_seed(0)
    image, attribution = torch.rand(3, 16, 16) * 2 - 1, torch.randn(3, 16, 16)
    signed = img.attribution_map(image, attribution, "signed")
    assert np.isclose(np.abs(signed).max(), 1.0)
    np.testing.assert_allclose(signed, (attribution.sum(0) / attribution.sum(0).abs().max()).numpy(), rtol=1e-6)
    absolute = img.attribution_map(image, attribution, "absolute")
    assert absolute.min() >= 0 and absolute.max() == 1.0
    product = img.attribution_map(image, attribution, "input_x_attribution")
    expected = (image * attribution).sum(0)
    np.testing.assert_allclose(product, (expected / expected.abs().max()).numpy(), rtol=1e-5)
    with pytest.raises(SpmmInputError, match="unknown map kind"):
        img.attribution_map(image, attribution, "fancy")
    blend = img.overlay(image, np.zeros((16, 16)))
    np.testing.assert_allclose(blend, img.to_display(image).mean(2, keepdims=True).repeat(3, 2), rtol=1e-6)


def _assert_png(path, width: int, height: int) -> None:
    with Image.open(path) as opened:
        assert opened.size == (width, height)
        pixels = np.asarray(opened.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 20  # not blank
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200


def test_figures_are_written_with_expected_sizes(tmp_path):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    maps = {"gradient": torch.randn(2, 3, 32, 32), "soft_pullback": torch.randn(2, 3, 32, 32)}
    # cell 2.6 in at 100 dpi: columns·260 wide, rows·260 + 40 high
    _assert_png(img.save_comparison_grid(images, maps, tmp_path / "compare.png", ["a", "b"]), 780, 560)
    trajectory = torch.stack([images[0] + 0.1 * k * torch.randn(3, 32, 32) for k in range(4)]).clamp(-1, 1)
    path = img.save_counterfactual_grid({"goldfish": trajectory}, tmp_path / "cf.png", {"goldfish": torch.arange(4.0)})
    _assert_png(path, 1040, 560)
    _assert_png(img.save_accentuation_grid(images, images.flip(0), tmp_path / "acc.png", ["a", "b"]), 780, 560)
    _assert_png(img.save_explanation_panel(images[0], maps["gradient"][0], tmp_path / "panel.png"), 1500, 340)
    _assert_png(img.save_heatmap_panel(images[0], {"g": maps["gradient"][0]}, tmp_path / "row.png"), 640, 360)
