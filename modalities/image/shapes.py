"""Synthetic shapes with known ground truth: the class is the shape of the one large object.

Every scene is drawn from its own generator ``np.random.default_rng([seed, index])``, so sample
``i`` is the same in every call with that seed, whatever ``n`` (subsets are consistent).  Nothing
is stored: the code and the seed are the data set.

Scene (size × size RGB, values in [0, 1]):

* **Background**: a textured, cluttered field — a muted base colour, smooth colour noise, a
  faint sinusoidal grating and 4–10 thin random line segments, clipped to [0.2, 0.8] per channel.
* **Class object** (exactly one): one of :data:`SHAPE_CLASSES`, radius 0.17–0.24 · size, any
  rotation and position, a solid colour from :data:`COLOURS`.  Its shape alone is the label.
* **Distractors** (1–3): shapes from the same vocabulary, radius 0.07–0.12 · size, own random
  rotation, position and colour from the same palette.

Design choice (what makes the ground truth provable): the class is "the shape of the largest
object", and distractors are drawn from the vocabulary *without the class shape*, each
independently of everything else.  Then the scene with the class object deleted has a
different answer under the same rule (its largest object has another shape), and deleting the
distractors leaves the answer unchanged; a model that follows the rule must change its
prediction in the first case and keep it in the second — which the intervention check
(``examples/shapes_interventions.py``) measures.  Distractor colours, positions, scales and
rotations are independent of the class; their shapes carry only the weak negative information
"not the class" (each is uniform over the five other shapes).

Objects never overlap (bounding circles at least 2 px apart), are drawn without anti-aliasing,
and every palette colour has each channel ≤ 0.15 or ≥ 0.85 (or 0.5 alongside extreme ones) while
the background stays in [0.2, 0.8]: an object pixel therefore always differs from the
background beneath it, and the masks are exactly the pixels where a scene differs from its
render with ``drop="object"`` / ``drop="distractors"`` (deletion = the background itself, which
is rendered separately, so nothing is inpainted approximately).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from spmm.errors import SpmmInputError

SHAPE_CLASSES: tuple[str, ...] = ("circle", "triangle", "square", "star", "cross", "ring")
"""Class names in label order."""

COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.95, 0.05, 0.05), (0.05, 0.95, 0.05), (0.05, 0.05, 0.95), (0.95, 0.95, 0.05),
    (0.95, 0.05, 0.95), (0.05, 0.95, 0.95), (0.95, 0.95, 0.95), (0.05, 0.05, 0.05),
    (0.95, 0.5, 0.05),
)
"""Object colours (shared by class objects and distractors); jittered by ±0.05 per channel."""

DROPS = (None, "object", "distractors")
OBJECT_RADIUS = (0.17, 0.24)
DISTRACTOR_RADIUS = (0.07, 0.12)
"""Radii as fractions of the image side; every distractor is smaller than every class object."""
BACKGROUND_RANGE = (0.2, 0.8)
MIN_SIZE = 48
GAP = 2.0
"""Smallest distance (px) between the bounding circles of two objects."""
MAX_PLACEMENT_TRIES = 200


@dataclasses.dataclass
class ShapesBatch:
    """images: (N, 3, H, W) float32 in [0, 1]; labels: (N,) int64 indices into SHAPE_CLASSES;
    evidence: (N, H, W) bool, the class object's pixels; distractors: (N, H, W) bool, the
    distractors' pixels; labels_without_object: (N,) int64, the class the same rule gives the scene
    rendered without its class object (the shape of its largest distractor; never ``labels``);
    seed, size: what made the batch (``make_shapes(len, seed, size)``)."""

    images: np.ndarray
    labels: np.ndarray
    evidence: np.ndarray
    distractors: np.ndarray
    labels_without_object: np.ndarray
    seed: int
    size: int


@dataclasses.dataclass(frozen=True)
class _Object:
    shape: int
    centre: tuple[float, float]
    radius: float
    angle: float
    colour: np.ndarray


def _polygon(points: np.ndarray, centre: tuple[float, float], radius: float, angle: float) -> list[tuple]:
    """Unit-radius outline points (K, 2) rotated, scaled and moved to ``centre`` (x, y)."""
    c, s = np.cos(angle), np.sin(angle)
    rotated = points @ np.array([[c, s], [-s, c]])
    return [tuple(p) for p in rotated * radius + np.asarray(centre)]


def _star_outline(tips: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = np.pi / 2 + np.arange(2 * tips) * np.pi / tips
    radii = np.where(np.arange(2 * tips) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), -radii * np.sin(angles)], axis=1)


def _regular_outline(corners: int) -> np.ndarray:
    angles = np.pi / 2 + np.arange(corners) * 2 * np.pi / corners
    return np.stack([np.cos(angles), -np.sin(angles)], axis=1)


_ARM = 0.33
_OUTLINES = {
    "triangle": _regular_outline(3),
    "square": _regular_outline(4),
    "star": _star_outline(),
    "cross": np.array([(-_ARM, -1), (_ARM, -1), (_ARM, -_ARM), (1, -_ARM), (1, _ARM), (_ARM, _ARM), (_ARM, 1),
                       (-_ARM, 1), (-_ARM, _ARM), (-1, _ARM), (-1, -_ARM), (-_ARM, -_ARM)], dtype=float)
    / np.hypot(1, _ARM),
}
RING_INNER = 0.55


def _shape_mask(obj: _Object, size: int) -> np.ndarray:
    """(size, size) bool: the pixels of ``obj`` (no anti-aliasing; inside its bounding circle)."""
    name = SHAPE_CLASSES[obj.shape]
    if name in ("circle", "ring"):
        ys, xs = np.mgrid[0:size, 0:size] + 0.5
        distance = np.hypot(xs - obj.centre[0], ys - obj.centre[1])
        mask = distance <= obj.radius
        return mask & (distance >= RING_INNER * obj.radius) if name == "ring" else mask
    canvas = Image.new("1", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(_polygon(_OUTLINES[name], obj.centre, obj.radius, obj.angle), fill=1)
    return np.asarray(canvas, dtype=bool)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32 texture in BACKGROUND_RANGE."""
    base = rng.uniform(0.35, 0.65, size=3)
    coarse = rng.normal(0.0, 0.12, size=(6, 6, 3)).astype(np.float32)
    noise = np.stack([np.asarray(Image.fromarray(coarse[..., c], mode="F").resize((size, size), Image.BICUBIC))
                      for c in range(3)], axis=-1)
    ys, xs = np.mgrid[0:size, 0:size] / size
    direction = rng.uniform(0, np.pi)
    frequency = rng.uniform(4, 12)
    grating = 0.06 * np.sin(2 * np.pi * frequency * (xs * np.cos(direction) + ys * np.sin(direction)))
    field = base + noise + grating[..., None] + rng.normal(0.0, 0.02, size=(size, size, 3))
    clutter = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(clutter)
    lines = Image.new("1", (size, size), 0)
    draw_lines = ImageDraw.Draw(lines)
    for _ in range(int(rng.integers(4, 11))):
        start = rng.uniform(0, size, size=2)
        end = start + rng.normal(0.0, size / 4, size=2)
        width = int(rng.integers(1, 3))
        colour = tuple(int(v) for v in rng.integers(60, 196, size=3))
        draw.line([tuple(start), tuple(end)], fill=colour, width=width)
        draw_lines.line([tuple(start), tuple(end)], fill=1, width=width)
    on_line = np.asarray(lines, dtype=bool)
    field[on_line] = np.asarray(clutter, dtype=np.float64)[on_line] / 255.0
    return np.clip(field, *BACKGROUND_RANGE).astype(np.float32)


def _place(rng: np.random.Generator, size: int, radius: float, placed: list[_Object]) -> tuple[float, float]:
    """A centre (x, y) keeping the circle of ``radius`` inside the image and GAP px from ``placed``."""
    for _ in range(MAX_PLACEMENT_TRIES):
        centre = rng.uniform(radius + 1, size - radius - 1, size=2)
        if all(np.hypot(*(centre - np.asarray(o.centre))) >= radius + o.radius + GAP for o in placed):
            return float(centre[0]), float(centre[1])
    raise RuntimeError(f"could not place an object of radius {radius:.1f} in a {size}px scene")


def _colour(rng: np.random.Generator) -> np.ndarray:
    return np.asarray(COLOURS[int(rng.integers(len(COLOURS)))]) + rng.uniform(-0.05, 0.05, size=3)


def _scene(seed: int, index: int, size: int) -> tuple[np.ndarray, int, list[_Object]]:
    """Background (H, W, 3), label and objects (class object first) of sample ``index``."""
    rng = np.random.default_rng([seed, index])
    background = _background(rng, size)
    label = int(rng.integers(len(SHAPE_CLASSES)))
    radius = rng.uniform(*OBJECT_RADIUS) * size
    objects = [_Object(label, _place(rng, size, radius, []), radius, rng.uniform(0, 2 * np.pi), _colour(rng))]
    others = [k for k in range(len(SHAPE_CLASSES)) if k != label]
    for _ in range(int(rng.integers(1, 4))):
        shape = others[int(rng.integers(len(others)))]
        radius = rng.uniform(*DISTRACTOR_RADIUS) * size
        objects.append(_Object(shape, _place(rng, size, radius, objects), radius, rng.uniform(0, 2 * np.pi),
                               _colour(rng)))
    return background, label, objects


def _check_int(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise SpmmInputError(f"{name} must be an integer >= {least}, got {value!r}")


def shapes_at(indices: Sequence[int], seed: int, size: int = 96, drop: str | None = None) -> ShapesBatch:
    """Scenes ``indices`` of ``seed`` (scene i equals sample i of ``make_shapes(n > i, seed, size, drop)``).

    Returns a :class:`ShapesBatch` with len(indices) samples in the given order.
    """
    indices = list(indices)
    for index in indices:
        _check_int("every scene index", index, 0)
    _check_int("seed", seed, 0)
    _check_int("size", size, MIN_SIZE)
    if drop not in DROPS:
        raise SpmmInputError(f"drop must be one of {DROPS}, got {drop!r}")
    n, size = len(indices), int(size)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    evidence = np.zeros((n, size, size), dtype=bool)
    distractors = np.zeros((n, size, size), dtype=bool)
    labels_without_object = np.empty(n, dtype=np.int64)
    for row, index in enumerate(indices):
        image, labels[row], objects = _scene(int(seed), int(index), size)
        labels_without_object[row] = max(objects[1:], key=lambda o: o.radius).shape
        for k, obj in enumerate(objects):
            mask = _shape_mask(obj, size)
            (evidence if k == 0 else distractors)[row] |= mask
            if (drop == "object" and k == 0) or (drop == "distractors" and k > 0):
                continue
            image[mask] = np.clip(obj.colour, 0.0, 1.0)
        images[row] = image.transpose(2, 0, 1)
    return ShapesBatch(images, labels, evidence, distractors, labels_without_object, int(seed), size)


def make_shapes(n: int, seed: int, size: int = 96, drop: str | None = None) -> ShapesBatch:
    """``n`` scenes of the synthetic-shapes benchmark (see the module docstring).

    drop: None renders full scenes; ``"object"`` the same scenes without the class object;
    ``"distractors"`` without the distractors (deleted pixels show the background texture).
    The masks always describe the full scene, whatever ``drop``.

    Returns
    -------
    ShapesBatch: images (n, 3, size, size) float32 in [0, 1], labels (n,) (of the full scene, whatever
    ``drop``), evidence and distractors (n, size, size) bool, labels_without_object (n,).
    """
    _check_int("n", n, 0)
    return shapes_at(range(int(n)), seed, size, drop)
