"""Captioned synthetic-shapes scenes: the ground truth of the ``shapes-captioner`` (a small
vision-language model) — every word that names an object has that object's mask.

Scene ``index`` of ``seed`` is drawn from ``np.random.default_rng([seed, index])`` (as
:mod:`.shapes`): the textured, cluttered background of :mod:`.shapes`, then :data:`OBJECTS`
objects of distinct shapes (:data:`~.shapes.SHAPE_CLASSES`) and distinct colours
(:data:`COLOUR_NAMES`, the palette of :mod:`.shapes`), radius :data:`RADIUS` · size, any rotation,
not overlapping, their centres at least :data:`MIN_X_GAP` · size apart horizontally.  The caption
names them from left to right: ``"a red circle and a blue square"``.  Because colours and shapes
are distinct within a scene, each colour word and each shape word names exactly one object.

``drop=k`` renders the same scene without object ``k`` (caption order): its pixels show the
background (rendered separately, nothing inpainted), so deleting an object is exact; masks,
captions and words always describe the full scene.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from spmm.errors import SpmmInputError

from .shapes import COLOURS, MIN_SIZE, SHAPE_CLASSES, _background, _check_int, _Object, _shape_mask

COLOUR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan", "white", "black", "orange")
"""The names of :data:`~.shapes.COLOURS`, in its order."""
OBJECTS = 2
RADIUS = (0.14, 0.2)
MIN_X_GAP = 0.12
"""Smallest horizontal distance between two centres (fraction of the side): left-to-right order is clear."""
GAP = 2.0
MAX_PLACEMENT_TRIES = 500
ARTICLE, JOIN = "a", "and"
VOCABULARY: tuple[str, ...] = (ARTICLE, JOIN, *COLOUR_NAMES, *SHAPE_CLASSES)
"""Every word a caption can hold."""


@dataclasses.dataclass
class CaptionedScenes:
    """images: (N, 3, H, W) float32 in [0, 1]; masks: (N, K, H, W) bool, object k's pixels (k in
    caption order, K = OBJECTS); colours, shapes: (N, K) int64 indices into COLOUR_NAMES /
    SHAPE_CLASSES; captions: N strings; seed, size, drop: what made them."""

    images: np.ndarray
    masks: np.ndarray
    colours: np.ndarray
    shapes: np.ndarray
    captions: list[str]
    seed: int
    size: int
    drop: int | None


def caption_words(colours: Sequence[int], shapes: Sequence[int]) -> list[str]:
    """The caption of objects (in order) as words: ``["a", "red", "circle", "and", "a", "blue", "square"]``."""
    words: list[str] = []
    for k, (colour, shape) in enumerate(zip(colours, shapes)):
        words += ([JOIN] if k else []) + [ARTICLE, COLOUR_NAMES[int(colour)], SHAPE_CLASSES[int(shape)]]
    return words


def naming_words(colours: Sequence[int], shapes: Sequence[int]) -> list[tuple[int, int, str]]:
    """The words of :func:`caption_words` that name an object: (word index, object index, "colour"
    or "shape")."""
    named = []
    for k in range(len(colours)):
        start = 4 * k  # "a colour shape" plus "and" before every object but the first
        named += [(start + 1, k, "colour"), (start + 2, k, "shape")]
    return named


def _objects(rng: np.random.Generator, size: int) -> list[_Object]:
    """OBJECTS objects of distinct shapes and colours, placed without overlap, sorted left to right."""
    shapes = rng.choice(len(SHAPE_CLASSES), OBJECTS, replace=False)
    colours = rng.choice(len(COLOURS), OBJECTS, replace=False)
    radii = rng.uniform(*RADIUS, size=OBJECTS) * size
    for _ in range(MAX_PLACEMENT_TRIES):
        centres = [rng.uniform(r + 1, size - r - 1, size=2) for r in radii]
        apart = all(np.hypot(*(centres[i] - centres[j])) >= radii[i] + radii[j] + GAP
                    and abs(centres[i][0] - centres[j][0]) >= MIN_X_GAP * size
                    for i in range(OBJECTS) for j in range(i))
        if apart:
            break
    else:
        raise RuntimeError(f"could not place {OBJECTS} objects in a {size}px scene")
    objects = [_Object(int(s), (float(c[0]), float(c[1])), float(r), float(rng.uniform(0, 2 * np.pi)),
                       np.asarray(COLOURS[int(k)]) + rng.uniform(-0.05, 0.05, size=3))
               for s, c, r, k in zip(shapes, centres, radii, colours)]
    order = np.argsort([o.centre[0] for o in objects], kind="stable")
    return [objects[i] for i in order]


def captioned_scenes_at(indices: Sequence[int], seed: int, size: int = 64, drop: int | None = None) -> CaptionedScenes:
    """Captioned scenes ``indices`` of ``seed`` (module docstring), in the given order; ``drop``:
    the caption index of an object rendered as background (None: full scenes)."""
    indices = list(indices)
    for index in indices:
        _check_int("every scene index", index, 0)
    _check_int("seed", seed, 0)
    _check_int("size", size, MIN_SIZE)
    if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, np.integer)) or not 0 <= drop < OBJECTS):
        raise SpmmInputError(f"drop must be None or an object index 0..{OBJECTS - 1}, got {drop!r}")
    n, size = len(indices), int(size)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    masks = np.zeros((n, OBJECTS, size, size), dtype=bool)
    colours = np.empty((n, OBJECTS), dtype=np.int64)
    shapes = np.empty((n, OBJECTS), dtype=np.int64)
    for row, index in enumerate(indices):
        rng = np.random.default_rng([int(seed), int(index)])
        image = _background(rng, size)
        for k, obj in enumerate(_objects(rng, size)):
            masks[row, k] = _shape_mask(obj, size)
            shapes[row, k] = obj.shape
            colours[row, k] = int(np.abs(np.asarray(COLOURS) - obj.colour).sum(1).argmin())
            if k != drop:
                image[masks[row, k]] = np.clip(obj.colour, 0.0, 1.0)
        images[row] = image.transpose(2, 0, 1)
    captions = [" ".join(caption_words(c, s)) for c, s in zip(colours, shapes)]
    return CaptionedScenes(images, masks, colours, shapes, captions, int(seed), size, drop)
