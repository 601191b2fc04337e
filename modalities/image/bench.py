"""The image protocol of SPEC §4 for ``spmm bench``: labelled image folders, mosaics and the
feature groups each metric uses on images."""

from __future__ import annotations

import csv
from pathlib import Path, PurePath
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from spmm.bench.runner import Batch, MetricSpec, metric_specs
from spmm.errors import SpmmInputError
from spmm.metrics.groups import square_patches

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG", ".JPG", ".PNG"}
SHAPES_SOURCE = "shapes"
"""``--data shapes``: the seeded synthetic-shapes generator (:mod:`spmm.modalities.image.shapes`)
instead of an image folder; the only source with ground-truth masks (``spmm bench groundtruth``)."""
GROUND_TRUTH_METRICS = ["mass_accuracy", "rank_accuracy", "mask_auroc", "pointing_hit"]

def labelled_images(folder: str | Path, n: int | None = None) -> tuple[list[Path], list[int] | None]:
    """Image files of ``folder`` (sorted, first ``n``) and their class indices from ``labels.csv``
    (columns file, class_index, ...), or None when there is no labels.csv."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no data folder at {folder}")
    labels_file = folder / "labels.csv"
    if labels_file.exists():
        with labels_file.open() as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"file", "class_index"} <= set(rows[0]):
            raise SpmmInputError(f"{labels_file} needs the columns file and class_index")
        rows = rows[:n] if n is not None else rows
        classes = []
        for line, row in enumerate(rows, start=2):
            _check_inside(row["file"], labels_file, line)
            text = (row["class_index"] or "").strip()
            if not text.lstrip("-").isdigit():
                raise SpmmInputError(f"{labels_file} line {line}: class_index {text!r} is not an integer")
            classes.append(int(text))
        return [folder / r["file"] for r in rows], classes
    files = sorted(p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES)
    if not files:
        raise SpmmInputError(f"no images in {folder}")
    return files[:n] if n is not None else files, None


def _check_inside(name: str | None, labels_file: Path, line: int) -> None:
    """A labels.csv file name must name a file inside the data folder: not empty, not absolute,
    no ``..`` component (nothing outside the folder is ever read)."""
    path = PurePath(name or "")
    if not str(name or "").strip() or path.is_absolute() or ".." in path.parts:
        raise SpmmInputError(
            f"{labels_file} line {line}: file {name!r} is not a path inside the data folder "
            "(give it relative to the folder, without '..')"
        )


def image_batches(
    model: Callable[[Tensor], Any], files: Sequence[Path], classes: Sequence[int] | None, batch_size: int, size: int = 224,
    load: Callable[[Sequence[Path]], Tensor] | None = None,
) -> list[Batch]:
    """Batches of images in [−1, 1] on the model's device; targets are the labels, or the model's
    top-1 without labels.  ``load``: files -> (B, C, H, W), the model's own preparation (e.g. a
    Hugging Face image processor's geometry); default: spmm's resize and centre crop to ``size``."""
    from . import load_images

    device = next(model.parameters()).device if isinstance(model, nn.Module) else torch.device("cpu")
    batches = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        inputs = (load(chunk) if load is not None else load_images(chunk, size)).to(device)
        if classes is not None:
            targets = torch.tensor(classes[start : start + batch_size], device=device)
        else:
            with torch.no_grad():
                targets = model(inputs).argmax(-1)
        batches.append(Batch([Path(f).name for f in chunk], inputs, targets))
    return batches


def mosaic_batches(files: Sequence[Path], classes: Sequence[int], count: int, batch_size: int, seed: int = 0) -> list[Batch]:
    """Batches of 2×2 mosaics (SPEC §4) with ``target_groups`` (B, 4) for Focus."""
    from .mosaic import build_mosaics

    mosaics = build_mosaics(files, classes, count, seed=seed)
    batches = []
    for start in range(0, count, batch_size):
        part = mosaics[start : start + batch_size]
        batches.append(Batch(
            [f"mosaic{start + i:04d}" for i in range(len(part))],
            torch.stack([m.image for m in part]),
            torch.tensor([m.target for m in part]),
            {"target_groups": torch.stack([m.target_quadrants for m in part])},
        ))
    return batches


def shapes_batches(model: Any, n: int, batch_size: int, seed: int, size: int) -> list[Batch]:
    """Batches of ``n`` synthetic-shapes scenes (``make_shapes(n, seed, size)``) in [−1, 1] on the
    model's device; targets are the labels and ``mask`` (B, H, W) bool the class object's pixels."""
    from .shapes import make_shapes

    device = next(model.parameters()).device if isinstance(model, nn.Module) else torch.device("cpu")
    scenes = make_shapes(n, seed, size=size)
    images = torch.as_tensor(scenes.images, dtype=torch.float32) * 2 - 1
    labels = torch.as_tensor(scenes.labels, dtype=torch.long)
    masks = torch.as_tensor(scenes.evidence, dtype=torch.bool)
    return [
        Batch([f"shapes-{seed}-{i:05d}" for i in range(start, min(n, start + batch_size))],
              images[start : start + batch_size].to(device), labels[start : start + batch_size].to(device),
              {"mask": masks[start : start + batch_size].to(device)})
        for start in range(0, n, batch_size)
    ]


def image_metric_specs(names: Sequence[str], shape: Sequence[int], seed: int = 0,
                       overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, MetricSpec]:
    """The SPEC §4 settings on images of sample ``shape`` (C, H, W): Infidelity on every patch of
    the 112 and 56 grids, FaithCorr on 56×56 patches, pixel groups with 3136 pixels per step for
    FaithEst/MonoCorr/deletion/insertion, Max-sensitivity radius 0.02, Focus on 2×2 quadrants; the
    ground-truth metrics on |attr| summed over colour channels (the batches give each sample's ``mask``,
    and ``other_mask`` for ``mass_other``)."""
    height = shape[-2]
    pixels = square_patches(shape, 1)
    per_step = max(1, (height * shape[-1]) // 16)
    settings: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "infidelity": ({"draws": 5}, {"groups": [square_patches(shape, height // 2), square_patches(shape, height // 4)]}),
        "faithfulness_correlation": ({"baseline": 0.0}, {"groups": square_patches(shape, height // 4)}),
        "faithfulness_estimate": ({"groups_per_step": per_step, "baseline": 0.0}, {"groups": pixels}),
        "monotonicity_correlation": ({"groups_per_step": per_step, "samples": 10, "baseline": "uniform"}, {"groups": pixels}),
        "deletion_auc": ({"groups_per_step": per_step}, {"groups": pixels}),
        "insertion_auc": ({"groups_per_step": per_step}, {"groups": pixels}),
        "max_sensitivity": ({"samples": 10, "radius": 0.02}, {}),
        "random_logit": ({}, {}),
        "focus": ({"times_input": True}, {"groups": square_patches(shape, height // 2)}),
        **{name: ({"relevance": "abs", "times_input": False}, {}) for name in (*GROUND_TRUTH_METRICS, "mass_other")},
    }
    return metric_specs(names, settings, seed, overrides)


def bench_batches(model: Any, data: str | Path, kind: str, n: int, batch_size: int, seed: int,
                  size: int = 224, load: Callable[[Sequence[Path]], Tensor] | None = None) -> list[Batch]:
    """The batches of ``spmm bench KIND``: on a labelled image folder the first ``n`` images
    (``faithfulness``) or ``n`` 2×2 mosaics with their target quadrants (``focus``); on
    ``data="shapes"`` the first ``n`` synthetic scenes of side ``size`` with their masks
    (``faithfulness``, ``groundtruth``).  ``load``: as for :func:`image_batches` (folder images only;
    mosaics and shapes are built at ``size`` in [−1, 1])."""
    if str(data) == SHAPES_SOURCE:
        if kind == "focus":
            raise SpmmInputError("focus builds mosaics from a labelled image folder; the shapes source has its "
                                 "own ground truth: run `spmm bench groundtruth`")
        return shapes_batches(model, n, batch_size, seed, size)
    if kind == "groundtruth":
        raise SpmmInputError(f"groundtruth needs data with ground-truth masks: --data {SHAPES_SOURCE}, got {data}")
    if kind == "focus":
        files, classes = labelled_images(data)
        if classes is None:
            raise SpmmInputError(f"Focus needs class labels: {data} has no labels.csv")
        device = next(model.parameters()).device if isinstance(model, nn.Module) else torch.device("cpu")
        return [b.to(device) for b in mosaic_batches(files, classes, n, batch_size, seed)]
    files, classes = labelled_images(data, n)
    return image_batches(model, files, classes, batch_size, size, load)
