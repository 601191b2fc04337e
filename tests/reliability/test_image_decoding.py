"""Every image mode PIL reads is scaled to [0, 1] correctly, or refused naming the file and mode.

Expected pixels are computed here from the arrays the files were made of (not through PIL's
conversions); square images are loaded at their own size, so no resampling happens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from spmm import SpmmInputError
from spmm.modalities import image as img

N = 16
RNG = np.random.default_rng(0)
RAMP8 = np.tile(np.linspace(0, 255, N).round().astype(np.uint8), (N, 1))  # (N, N) horizontal gradient
COLOURS8 = RNG.integers(0, 256, (N, N, 3), dtype=np.uint8)
ALPHA8 = RNG.integers(0, 256, (N, N), dtype=np.uint8)


def _gray(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=2).astype(np.float64)


def _srgb_of_lightness(lightness: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] of a neutral CIELAB colour with lightness L* in [0, 100]."""
    y = np.where(lightness > 8, ((lightness + 16) / 116) ** 3, lightness / 903.3)
    return np.where(y > 0.0031308, 1.055 * y ** (1 / 2.4) - 0.055, 12.92 * y)


Case = Callable[[Path], "tuple[Path | Image.Image, np.ndarray, float]"]


def gray8(tmp: Path):
    path = tmp / "gray8.png"
    Image.fromarray(RAMP8, "L").save(path)
    return path, _gray(RAMP8 / 255), 1e-6


def gray16_png(tmp: Path):
    values = (RAMP8.astype(np.int64) * 257 + 100).clip(0, 65535)  # full 16-bit range, not multiples of 257
    path = tmp / "gray16.png"
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path, _gray(values / 65535), 1e-6


def gray16_big_endian_tiff(tmp: Path):
    values = (RNG.integers(0, 65536, (N, N))).astype(">u2")
    path = tmp / "gray16b.tif"
    Image.frombytes("I;16B", (N, N), values.tobytes()).save(path)
    return path, _gray(values.astype(np.float64) / 65535), 1e-6


def int32_tiff(tmp: Path):
    values = RNG.integers(0, 65536, (N, N)).astype(np.int32)
    path = tmp / "int32.tif"
    Image.fromarray(values, "I").save(path)
    return path, _gray(values / 65535), 1e-6


def float_tiff(tmp: Path):
    values = RNG.random((N, N)).astype(np.float32)
    path = tmp / "float.tif"
    Image.fromarray(values, "F").save(path)
    return path, _gray(values.astype(np.float64)), 1e-6


def bilevel_png(tmp: Path):
    bits = RNG.random((N, N)) > 0.5
    path = tmp / "bits.png"
    Image.fromarray(bits).save(path)
    return path, _gray(bits.astype(np.float64)), 1e-6


def _palette_picture(colours: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """A P image using the first ``colours`` entries of a random palette: (image, palette, indices)."""
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    indices = RNG.integers(0, colours, (N, N), dtype=np.uint8)
    picture = Image.fromarray(indices, "P")
    picture.putpalette(palette.flatten().tolist())
    return picture, palette, indices


def palette_png(tmp: Path):
    picture, palette, indices = _palette_picture(256)
    path = tmp / "palette.png"
    picture.save(path)
    return path, palette[indices] / 255, 1e-6


def palette_transparency_png(tmp: Path):
    picture, palette, indices = _palette_picture(4)
    path = tmp / "palette_transparent.png"
    picture.save(path, transparency=2)
    expected = palette[indices] / 255
    expected[indices == 2] = 1.0  # the transparent index shows the white background
    return path, expected, 1e-6


def gray_alpha_png(tmp: Path):
    path = tmp / "gray_alpha.png"
    Image.fromarray(np.stack([RAMP8, ALPHA8], axis=2), "LA").save(path)
    alpha = ALPHA8 / 255
    return path, _gray(RAMP8 / 255 * alpha + 1 - alpha), 1e-6


def rgba_png(tmp: Path):
    path = tmp / "rgba.png"
    Image.fromarray(np.dstack([COLOURS8, ALPHA8]), "RGBA").save(path)
    alpha = (ALPHA8 / 255)[..., None]
    return path, COLOURS8 / 255 * alpha + 1 - alpha, 1e-6


def cmyk_tiff(tmp: Path):
    cmyk = RNG.integers(0, 256, (N, N, 4), dtype=np.uint8)
    path = tmp / "cmyk.tif"
    Image.fromarray(cmyk, "CMYK").save(path)
    c = cmyk / 255
    return path, (1 - c[..., :3]) * (1 - c[..., 3:]), 1.5 / 255


def ycbcr_in_memory(tmp: Path):
    """A YCbCr image given as a PIL image (Pillow 12 writes YCbCr TIFFs it cannot read back)."""
    ycc = RNG.integers(16, 236, (N, N, 3)).astype(np.uint8)
    image = Image.fromarray(ycc, "YCbCr")
    y, cb, cr = (ycc[..., i].astype(np.float64) for i in range(3))
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)], 2)
    return image, rgb.clip(0, 255) / 255, 1.5 / 255


def lab_neutral_tiff(tmp: Path):
    lightness8 = np.tile(np.linspace(0, 255, N).round().astype(np.uint8), (N, 1))
    lab = np.dstack([lightness8, np.zeros((N, N), np.uint8), np.zeros((N, N), np.uint8)])  # a* = b* = 0 (signed)
    path = tmp / "lab.tif"
    Image.fromarray(lab, "LAB").save(path)
    return path, _gray(_srgb_of_lightness(lightness8 / 255 * 100)), 2.5 / 255


def hsv_in_memory(tmp: Path):
    hues = np.array([0, 85, 170, 0], dtype=np.uint8)  # red, green, blue, and black (V = 0)
    hsv = np.zeros((N, N, 3), np.uint8)
    hsv[..., 0] = np.repeat(hues, N // 4)[None, :]
    hsv[..., 1] = 255
    hsv[..., 2] = 255
    hsv[:, 3 * N // 4:, 2] = 0
    expected = np.zeros((N, N, 3))
    for block, channel in enumerate([0, 1, 2]):
        expected[:, block * N // 4:(block + 1) * N // 4, channel] = 1.0
    return Image.fromarray(hsv, "HSV"), expected, 1.5 / 255


def exif_rotated_png(tmp: Path):
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180° for display
    path = tmp / "rotated.png"
    Image.fromarray(RAMP8, "L").save(path, exif=exif)
    return path, _gray(RAMP8[::-1, ::-1] / 255), 1e-6


CASES = [
    gray8, gray16_png, gray16_big_endian_tiff, int32_tiff, float_tiff, bilevel_png, palette_png,
    palette_transparency_png, gray_alpha_png, rgba_png, cmyk_tiff, ycbcr_in_memory, lab_neutral_tiff, hsv_in_memory,
    exif_rotated_png,
]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_decoded_pixels_match_the_expected_scaling(tmp_path, case):
    source, expected01, tolerance = case(tmp_path)
    loaded = img.load_image(source, size=N)
    assert loaded.shape == (3, N, N) and loaded.dtype == torch.float32
    torch.testing.assert_close(
        loaded.double(), torch.from_numpy(expected01).permute(2, 0, 1) * 2 - 1, atol=2 * tolerance, rtol=0
    )


def test_sixteen_bit_gradient_decodes_like_its_eight_bit_counterpart(tmp_path):
    """The bug: 16-bit grayscale PNGs became 99.96 % white through PIL's convert("RGB")."""
    Image.fromarray(RAMP8, "L").save(tmp_path / "g8.png")
    sixteen_bit = (RAMP8.astype(np.int64) * 257 + 128).clip(0, 65535).astype(np.uint16)  # between 8-bit levels
    Image.fromarray(sixteen_bit).save(tmp_path / "g16.png")
    eight, sixteen = img.load_images([tmp_path / "g8.png", tmp_path / "g16.png"], size=N)
    assert (sixteen - eight).abs().max() <= 2 / 255  # within 1/255 in [0, 1] units
    assert (sixteen > 0.99).float().mean() < 0.1


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda: Image.fromarray(RNG.random((N, N)).astype(np.float32) * 255, "F"), r"mode F.*\[0, 1\]"),
        (lambda: Image.fromarray(np.full((N, N), np.nan, np.float32), "F"), r"mode F.*non-finite"),
        (lambda: Image.fromarray(np.full((N, N), -5, np.int32), "I"), r"mode I\).*0\.\.65535"),
    ],
    ids=["float 0-255", "float NaN", "negative int32"],
)
def test_out_of_range_images_are_refused_naming_file_and_mode(tmp_path, make, pattern):
    path = tmp_path / "odd.tif"
    make().save(path)
    with pytest.raises(SpmmInputError, match=pattern) as caught:
        img.load_image(path, size=N)
    assert str(path) in str(caught.value)


def test_text_file_named_png_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not pixels\n")
    with pytest.raises(SpmmInputError, match=r"notes\.png is not an image"):
        img.load_image(path)


def test_truncated_file_is_not_a_readable_image(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(COLOURS8).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(SpmmInputError, match=r"cut\.png is not a readable image"):
        img.load_image(path)


def test_image_above_max_pixels_is_refused_in_one_line(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(COLOURS8).save(path)
    monkeypatch.setattr(img, "MAX_PIXELS", N * N - 1)
    with pytest.raises(SpmmInputError, match="decompression bomb") as caught:
        img.load_image(path)
    assert "\n" not in str(caught.value) and caught.value.__cause__ is None


@pytest.mark.parametrize("side", [9, 20], ids=["PIL warning", "PIL error"])
def test_pil_decompression_bomb_checks_become_one_line_errors(tmp_path, monkeypatch, side):
    path = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((side, side), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 81 pixels warn, 400 (> 2 × 50) raise
    with pytest.raises(SpmmInputError, match="decompression bomb") as caught:
        img.load_image(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_loading_leaves_pil_limit_alone(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(COLOURS8).save(path)
    before = Image.MAX_IMAGE_PIXELS
    img.load_image(path)
    assert Image.MAX_IMAGE_PIXELS == before
