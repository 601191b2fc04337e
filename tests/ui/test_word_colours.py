"""Word colours are readable: the text colour of every scored word is the one of black/white with
the higher WCAG 2 contrast against its background (checked with the WCAG formula written here)."""

from __future__ import annotations

import re

import pytest

from spmm.modalities import text as text_modality
from spmm.modalities.text import render


def _wcag_luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2.x: L = 0.2126 R + 0.7152 G + 0.0722 B of the linearised sRGB channels."""
    channels = []
    for value in rgb:
        c = value / 255.0
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def _contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    light, dark = sorted((_wcag_luminance(a), _wcag_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("rgb, luminance", [
    ((0, 0, 0), 0.0), ((255, 255, 255), 1.0), ((255, 0, 0), 0.2126), ((0, 255, 0), 0.7152),
    ((0, 0, 255), 0.0722), ((128, 128, 128), 0.21586),
])
def test_relative_luminance_matches_wcag_reference_values(rgb, luminance) -> None:
    assert render.relative_luminance(rgb) == pytest.approx(luminance, abs=5e-5)


def test_black_on_white_is_21_to_1() -> None:
    assert _contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_every_word_colour_gets_the_text_colour_with_more_contrast(sign: float) -> None:
    for step in range(101):
        background = render.score_rgb(sign * step / 100, 1.0)
        chosen = render.text_rgb(background)
        other = (255, 255, 255) if chosen == (0, 0, 0) else (0, 0, 0)
        assert chosen in ((0, 0, 0), (255, 255, 255))
        assert _contrast(chosen, background) >= _contrast(other, background), background
        assert _contrast(chosen, background) >= 4.5, f"{background}: below WCAG AA for normal text"


def test_saturated_blue_gets_white_text_and_red_black_text() -> None:
    assert render.text_rgb((0, 0, 255)) == (255, 255, 255)
    assert render.text_rgb((255, 0, 0)) == (0, 0, 0)
    assert render.text_rgb((255, 255, 255)) == (0, 0, 0)


def test_saved_html_and_terminal_use_the_contrast_colour() -> None:
    scored = text_modality.SpanScores("good bad meh", ["good", "bad", "meh"], [1.0, -1.0, 0.1],
                                      [(0, 4), (5, 8), (9, 12)])
    page = render.render_html(scored)
    styles = dict(re.findall(r'<span style="([^"]+)" title="[^"]+">(\w+)</span>', page)[i][::-1] for i in range(3))
    assert styles["bad"] == "background:rgb(0,0,255);color:rgb(255,255,255)"
    assert styles["good"] == "background:rgb(255,0,0);color:rgb(0,0,0)"
    assert styles["meh"].endswith("color:rgb(0,0,0)")
    terminal = render.render_terminal(scored)
    assert "\x1b[48;2;0;0;255m\x1b[38;2;255;255;255mbad" in terminal
    assert "\x1b[48;2;255;0;0m\x1b[38;2;0;0;0mgood" in terminal


def test_heat_pictures_blend_the_signed_colours_over_grey():
    """Each pixel of a token-strip picture is (1 − w)·grey + w·score_rgb(v, scale), w = 0.7·min(|v|/scale, 1),
    rounded down to 8 bits (computed here pixel by pixel)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    grey, heat, scale = rng.random((5, 7)), rng.normal(size=(5, 7)), 1.5
    picture = np.array(Image.open(io.BytesIO(base64.b64decode(render.heat_png_base64(grey, heat, scale)))))
    for y in range(5):
        for x in range(7):
            weight = 0.7 * min(abs(heat[y, x]) / scale, 1.0)
            colour = np.array(render.score_rgb(float(heat[y, x]), scale), dtype=float)
            expected = np.clip((1 - weight) * grey[y, x] * 255 + weight * colour, 0, 255).astype(np.uint8)
            assert (picture[y, x] == expected).all()
