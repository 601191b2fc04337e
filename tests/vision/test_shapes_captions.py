"""Captioned shapes scenes: every caption word that names an object matches that object's mask,
checked independently of the generator's bookkeeping — masks as the pixels deleting the object
changes, colours read off the pixels, order off the mask centroids, shapes off the mask geometry
(fill of the bounding circle, convexity, a hole at the centre)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from spmm.errors import SpmmInputError
from spmm.modalities.image.shapes import COLOURS
from spmm.modalities.image.shapes_captions import (
    COLOUR_NAMES, OBJECTS, VOCABULARY, caption_words, captioned_scenes_at, naming_words,
)

SEED, SIZE, N = 5, 64, 24


@pytest.fixture(scope="module")
def scenes():
    return {drop: captioned_scenes_at(range(N), SEED, SIZE, drop) for drop in (None, *range(OBJECTS))}


def shape_of(mask: np.ndarray) -> str:
    """The shape a mask shows, from closed-form areas relative to the circle through its farthest
    pixel (circle 1, square 2/π, cross ≈ 0.63, star ≈ 0.42, triangle 3√3/(4π) ≈ 0.41, ring 1 − 0.55²
    with a hole) and the share of the convex hull filled (square, triangle ≈ 1 less rasterisation
    steps; cross ≈ 0.71, star ≈ 0.56)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    radius = np.hypot(corners[:, 0] - cx, corners[:, 1] - cy).max()
    fill = mask.sum() / (np.pi * radius ** 2)
    if not mask[int(cy), int(cx)]:
        return "ring"
    if fill > 0.75:
        return "circle"
    hull = mask.sum() / ConvexHull(corners).volume
    if fill > 0.5:
        return "square" if hull > 0.8 else "cross"
    return "triangle" if hull > 0.7 else "star"


def test_layout(scenes):
    full = scenes[None]
    assert full.images.shape == (N, 3, SIZE, SIZE) and full.masks.shape == (N, OBJECTS, SIZE, SIZE)
    assert full.images.min() >= 0 and full.images.max() <= 1 and len(full.captions) == N
    assert all(set(c.split()) <= set(VOCABULARY) for c in full.captions)


def test_each_mask_is_exactly_what_deleting_its_object_changes(scenes):
    full = scenes[None]
    for k in range(OBJECTS):
        changed = (full.images != scenes[k].images).any(axis=1)
        np.testing.assert_array_equal(changed, full.masks[:, k])
        np.testing.assert_array_equal(scenes[k].masks, full.masks)  # masks describe the full scene
        assert scenes[k].captions == full.captions
    assert not (full.masks[:, 0] & full.masks[:, 1]).any() and full.masks.sum((2, 3)).min() > 30


def test_caption_words_name_the_pixels(scenes):
    full = scenes[None]
    palette = np.asarray(COLOURS)
    for i, caption in enumerate(full.captions):
        words = caption.split()
        assert words == ["a", words[1], words[2], "and", "a", words[5], words[6]]
        named = {(w, k, role) for w, k, role in naming_words(full.colours[i], full.shapes[i])}
        assert named == {(1, 0, "colour"), (2, 0, "shape"), (5, 1, "colour"), (6, 1, "shape")}
        centroids = []
        for k in range(OBJECTS):
            mask = full.masks[i, k]
            mean = full.images[i][:, mask].mean(axis=1)
            nearest = np.abs(palette - mean).max(axis=1).argmin()
            assert np.abs(palette[nearest] - mean).max() <= 0.05 + 1e-6
            assert words[1 + 4 * k] == COLOUR_NAMES[nearest]
            assert words[2 + 4 * k] == shape_of(mask), (i, k, caption)
            centroids.append(np.nonzero(mask)[1].mean())
        assert centroids[0] < centroids[1]  # named left to right
        assert words[1] != words[5] and words[2] != words[6]  # each word names one object


def test_scenes_are_seeded_and_subsets_consistent():
    a = captioned_scenes_at([3, 1], SEED, SIZE)
    b = captioned_scenes_at(range(4), SEED, SIZE)
    np.testing.assert_array_equal(a.images, b.images[[3, 1]])
    assert a.captions == [b.captions[3], b.captions[1]]
    assert captioned_scenes_at([0], SEED + 1, SIZE).captions != b.captions[:1] or not np.array_equal(
        captioned_scenes_at([0], SEED + 1, SIZE).images, b.images[:1])


def test_caption_words():
    assert caption_words([0, 2], [0, 2]) == "a red circle and a blue square".split()


@pytest.mark.parametrize("drop", [-1, 2, True, "0"])
def test_bad_drop_is_a_one_line_error(drop):
    with pytest.raises(SpmmInputError, match="drop must be"):
        captioned_scenes_at([0], SEED, SIZE, drop)
