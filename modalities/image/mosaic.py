"""2×2 image mosaics for localisation (SPEC §4, Focus): the target image in two random
quadrants, images of two distractor classes in the other two."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.modalities.image import load_image


@dataclasses.dataclass
class Mosaic:
    """image: (3, 2·tile, 2·tile) in [−1, 1]; target: class index; target_quadrants: (4,) bool in
    row-major order (top-left, top-right, bottom-left, bottom-right); sources: the tile files."""

    image: Tensor
    target: int
    target_quadrants: Tensor
    sources: list[str]


def build_mosaics(
    files: Sequence[str | Path], classes: Sequence[int], count: int, tile: int = 112, seed: int = 0
) -> list[Mosaic]:
    """``count`` mosaics from labelled image files (one class index per file).

    For each mosaic a target file and two files of two other, different classes are drawn;
    the target fills two random quadrants, the distractors the others.  Deterministic in ``seed``.
    """
    if len(files) != len(classes):
        raise SpmmInputError(f"got {len(files)} files but {len(classes)} class labels")
    if len(set(classes)) < 3:
        raise SpmmInputError("mosaics need images of at least 3 different classes")
    generator = torch.Generator().manual_seed(seed)
    cache: dict[int, Tensor] = {}

    def tile_of(index: int) -> Tensor:
        if index not in cache:
            cache[index] = load_image(files[index], size=tile)
        return cache[index]

    mosaics = []
    for _ in range(count):
        target = int(torch.randint(len(files), (1,), generator=generator))
        distractors: list[int] = []
        while len(distractors) < 2:
            pick = int(torch.randint(len(files), (1,), generator=generator))
            if classes[pick] != classes[target] and all(classes[pick] != classes[d] for d in distractors):
                distractors.append(pick)
        quadrants = torch.randperm(4, generator=generator)
        order = [0] * 4
        for slot, source in zip(quadrants.tolist(), [target, target, *distractors]):
            order[slot] = source
        tiles = [tile_of(i) for i in order]
        image = torch.cat([torch.cat(tiles[:2], 2), torch.cat(tiles[2:], 2)], 1)
        mosaics.append(Mosaic(image, int(classes[target]), torch.tensor([i == target for i in order]), [str(files[i]) for i in order]))
    return mosaics
