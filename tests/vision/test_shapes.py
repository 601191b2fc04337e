"""The synthetic-shapes benchmark: exact evidence masks, reproducible seeds, consistent subsets,
the "largest object" rule, clear errors, and the shipped classifiers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import spmm
from spmm.errors import SpmmInputError
from spmm.modalities.image.shapes import (
    DISTRACTOR_RADIUS, OBJECT_RADIUS, SHAPE_CLASSES, make_shapes, shapes_at,
)

SEED = 7
SIZE = 64
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


@pytest.fixture(scope="module")
def scenes():
    return {drop: make_shapes(12, SEED, SIZE, drop=drop) for drop in (None, "object", "distractors")}


def test_batch_layout(scenes):
    batch = scenes[None]
    assert batch.images.shape == (12, 3, SIZE, SIZE) and batch.images.dtype == np.float32
    assert batch.labels.dtype == np.int64 and batch.evidence.dtype == bool and batch.distractors.dtype == bool
    assert batch.images.min() >= 0 and batch.images.max() <= 1
    assert set(batch.labels) <= set(range(len(SHAPE_CLASSES))) and len(SHAPE_CLASSES) >= 6
    assert (batch.seed, batch.size) == (SEED, SIZE)


@pytest.mark.parametrize("drop, mask", [("object", "evidence"), ("distractors", "distractors")])
def test_masks_are_exactly_the_deleted_pixels(scenes, drop, mask):
    changed = (scenes[None].images != scenes[drop].images).any(axis=1)
    np.testing.assert_array_equal(changed, getattr(scenes[None], mask))
    for batch in scenes.values():  # masks describe the full scene whatever is dropped
        np.testing.assert_array_equal(getattr(batch, mask), getattr(scenes[None], mask))


def test_masks_disjoint_and_solid(scenes):
    batch = scenes[None]
    assert not (batch.evidence & batch.distractors).any()
    for image, evidence in zip(batch.images, batch.evidence):
        colours = image[:, evidence]
        assert evidence.sum() > 0
        np.testing.assert_array_equal(colours, colours[:, :1].repeat(colours.shape[1], axis=1))


def test_same_background_behind_both_deletions(scenes):
    both = scenes[None].evidence | scenes[None].distractors
    np.testing.assert_array_equal(
        np.where(both[:, None], 0, scenes["object"].images), np.where(both[:, None], 0, scenes["distractors"].images)
    )


def _diameter(mask: np.ndarray) -> float:
    points = np.argwhere(mask).astype(float)
    return float(np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)).max())


def test_one_class_object_larger_than_one_to_three_distractors():
    batch = make_shapes(30, 11, SIZE)
    for evidence, distractors in zip(batch.evidence, batch.distractors):
        assert ndimage.label(evidence, EIGHT_NEIGHBOURS)[1] == 1
        parts, count = ndimage.label(distractors, EIGHT_NEIGHBOURS)
        assert 1 <= count <= 3
        smallest_object = _diameter(evidence)
        assert smallest_object >= np.sqrt(3) * OBJECT_RADIUS[0] * SIZE - 2  # a triangle's side at the smallest radius
        for k in range(1, count + 1):
            assert _diameter(parts == k) <= 2 * DISTRACTOR_RADIUS[1] * SIZE + 1 < smallest_object


def test_label_without_object_is_another_shape_and_stable(scenes):
    """The rule's answer for the scene without its class object: a valid class other than the label,
    the same whatever is dropped and for a scene taken alone."""
    batch = scenes[None]
    assert batch.labels_without_object.dtype == np.int64
    assert set(batch.labels_without_object) <= set(range(len(SHAPE_CLASSES)))
    assert (batch.labels_without_object != batch.labels).all()
    for drop in ("object", "distractors"):
        np.testing.assert_array_equal(scenes[drop].labels_without_object, batch.labels_without_object)
        np.testing.assert_array_equal(scenes[drop].labels, batch.labels)
    alone = shapes_at([5, 2], SEED, SIZE)
    np.testing.assert_array_equal(alone.labels_without_object, batch.labels_without_object[[5, 2]])


def test_seeds_reproduce_and_differ():
    a, b, c = make_shapes(4, 3, SIZE), make_shapes(4, 3, SIZE), make_shapes(4, 4, SIZE)
    for name in ("images", "labels", "evidence", "distractors"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.images, c.images)


def test_subsets_consistent():
    big, small = make_shapes(9, 5, SIZE, drop="object"), make_shapes(3, 5, SIZE, drop="object")
    picked = shapes_at([8, 2], 5, SIZE, drop="object")
    for name in ("images", "labels", "evidence", "distractors"):
        np.testing.assert_array_equal(getattr(small, name), getattr(big, name)[:3])
        np.testing.assert_array_equal(getattr(picked, name), getattr(big, name)[[8, 2]])


def test_labels_balanced():
    labels = shapes_at(range(300), 21, 48).labels
    counts = np.bincount(labels, minlength=len(SHAPE_CLASSES))
    # 300 draws of 6 equally likely classes: mean 50, sd 6.45; ±25 is beyond 3.8 sd
    assert counts.min() >= 25 and counts.max() <= 75, counts


@pytest.mark.parametrize("kwargs, word", [
    ({"n": -1}, "n"), ({"n": 2.5}, "n"), ({"seed": -3}, "seed"), ({"size": 40}, "size"),
    ({"drop": "background"}, "drop"), ({"size": True}, "size"),
])
def test_bad_arguments(kwargs, word):
    args = {"n": 2, "seed": 0, "size": SIZE, **kwargs}
    with pytest.raises(SpmmInputError, match=word):
        make_shapes(**args)


def test_bad_index():
    with pytest.raises(SpmmInputError, match="index"):
        shapes_at([0, -1], 0, SIZE)


FRESH_SEED = 987654
FRESH_SCENES = 64
SHIPPED = ("resnet", "vgg", "vit")


@pytest.fixture(scope="module")
def fresh_scenes():
    return make_shapes(FRESH_SCENES, FRESH_SEED, SIZE)


def _fresh_accuracy(arch: str, scenes) -> float:
    import torch

    explainable = spmm.load(f"shapes-{arch}")
    assert list(explainable.labels) == list(SHAPE_CLASSES)
    with torch.no_grad():
        predicted = explainable.model(torch.from_numpy(scenes.images) * 2 - 1).argmax(1).numpy()
    return float((predicted == scenes.labels).mean())


@pytest.mark.parametrize("arch", SHIPPED)
def test_shipped_models_agree_with_their_cards(arch, fresh_scenes):
    from spmm.adapters.vision.shapes import shapes_card

    card = shapes_card(arch)
    p = card["test_accuracy"]
    # accuracy on 64 scenes of another seed: within 3.5 binomial sd of the card's 2000-scene number
    assert abs(_fresh_accuracy(arch, fresh_scenes) - p) <= 3.5 * np.sqrt(p * (1 - p) / FRESH_SCENES)


@pytest.mark.parametrize("arch", SHIPPED)
def test_shipped_models_are_accurate_on_fresh_scenes(arch, fresh_scenes):
    assert _fresh_accuracy(arch, fresh_scenes) >= 0.9


@pytest.mark.parametrize("arch", SHIPPED)
def test_shipped_models_use_the_class_object_on_fresh_scenes(arch):
    """The cards' intervention check (2000 scenes: object deleted -> changed >= 0.90, distractors
    deleted -> changed <= 0.05), repeated on 64 scenes of another seed with binomial slack."""
    from spmm.adapters.vision.shapes import shapes_card
    from spmm.modalities.image.shapes_interventions import check_interventions

    assert shapes_card(arch)["ground_truth_trusted"]
    result = check_interventions(spmm.load(f"shapes-{arch}").model, FRESH_SCENES, FRESH_SEED, SIZE)
    assert result.object_change >= 0.8 and result.distractor_change <= 0.1


class _LookupModel:
    """Knows the label of each full scene of make_shapes(n, SEED, SIZE) by its bytes and answers
    class 0 for any other image."""

    def __init__(self, n: int) -> None:
        import torch

        self.torch = torch
        batch = make_shapes(n, SEED, SIZE)
        self.known = {self.key(image): int(label) for image, label in zip(batch.images, batch.labels)}

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        """Exact up to the float error of the [0, 1] -> [−1, 1] -> [0, 1] round trip."""
        return np.round(image * 4096).astype(np.int32).tobytes()

    def __call__(self, x):
        labels = []
        for image in ((x + 1) / 2).numpy():
            labels.append(self.known.get(self.key(image), -1))
        logits = self.torch.zeros(len(labels), len(SHAPE_CLASSES))
        for row, label in enumerate(labels):
            logits[row, label if label >= 0 else 0] = 1.0
        return logits


def test_interventions_of_constant_and_lookup_models():
    import torch

    from spmm.modalities.image.shapes_interventions import check_interventions

    labels = make_shapes(10, SEED, SIZE).labels
    constant = check_interventions(lambda x: torch.eye(len(SHAPE_CLASSES))[[2] * len(x)], 10, SEED, SIZE)
    assert (constant.accuracy, constant.object_change, constant.distractor_change) == ((labels == 2).mean(), 0, 0)
    assert not constant.trusted
    lookup = check_interventions(_LookupModel(10), 10, SEED, SIZE, batch_size=4)
    # any edited scene is unknown to the lookup and goes to class 0: a change exactly where the label is not 0
    assert lookup.accuracy == 1.0
    assert lookup.object_change == lookup.distractor_change == (labels != 0).mean()
