"""The vision protocol of SPEC §4: labelled image folders, mosaics, the feature groups each
metric uses on images, and the explainers with their per-architecture settings."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from spmm.bench.runner import Batch, MetricSpec
from spmm.errors import SpmmInputError
from spmm.metrics.base import ExplainFn, explainer
from spmm.metrics.groups import square_patches
from spmm.metrics.registry import check_settings, list_metrics, make_metric

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG", ".JPG", ".PNG"}

DEFAULT_EXPLAINERS = [
    "soft_pullback", "pullback_ascent", "smooth_pullback", "integrated_pullbacks",
    "gradient", "gradient_ascent", "smoothgrad", "fusiongrad", "gradient_shap", "integrated_gradients",
    "deeplift", "guided_gradcam",
]
"""The 12 explainers of SPEC §3: four SP variants and eight baselines."""

DEFAULT_METRICS = [
    "infidelity", "faithfulness_correlation", "faithfulness_estimate", "monotonicity_correlation",
    "max_sensitivity", "random_logit",
]
"""The six metrics of the paper's table (Focus runs on mosaics: ``spmm bench focus``)."""

CAM_METHODS = {"guided_gradcam", "guided_pb_cam"}


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
        return [folder / r["file"] for r in rows], [int(r["class_index"]) for r in rows]
    files = sorted(p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES)
    if not files:
        raise SpmmInputError(f"no images in {folder}")
    return files[:n] if n is not None else files, None


def image_batches(
    model: Callable[[Tensor], Any], files: Sequence[Path], classes: Sequence[int] | None, batch_size: int, size: int = 224
) -> list[Batch]:
    """Batches of images in [−1, 1] on the model's device; targets are the labels, or the model's
    top-1 without labels."""
    from spmm.modalities.image import load_images

    device = next(model.parameters()).device if isinstance(model, nn.Module) else torch.device("cpu")
    batches = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        inputs = load_images(chunk, size).to(device)
        if classes is not None:
            targets = torch.tensor(classes[start : start + batch_size], device=device)
        else:
            with torch.no_grad():
                targets = model(inputs).argmax(-1)
        batches.append(Batch([Path(f).name for f in chunk], inputs, targets))
    return batches


def mosaic_batches(files: Sequence[Path], classes: Sequence[int], count: int, batch_size: int, seed: int = 0) -> list[Batch]:
    """Batches of 2×2 mosaics (SPEC §4) with ``target_groups`` (B, 4) for Focus."""
    from spmm.modalities.image.mosaic import build_mosaics

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


def image_metric_specs(names: Sequence[str], shape: Sequence[int], seed: int = 0,
                       overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, MetricSpec]:
    """The SPEC §4 settings on images of sample ``shape`` (C, H, W): Infidelity on every patch of
    the 112 and 56 grids, FaithCorr on 56×56 patches, pixel groups with 3136 pixels per step for
    FaithEst/MonoCorr/deletion/insertion, Max-sensitivity radius 0.02, Focus on 2×2 quadrants."""
    overrides = _per_name(overrides, list_metrics(), "metric")
    for name, settings in overrides.items():
        check_settings(name, settings)
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
    }
    specs = {}
    for name in names:
        if name not in settings:
            raise SpmmInputError(f"unknown metric {name!r}; available: {', '.join(settings)}")
        init, call = settings[name]
        init = {**init, **overrides.get(name, {})}
        if name not in ("focus",):
            init.setdefault("seed", seed)
        specs[name] = MetricSpec(make_metric(name, **init), call)
    return specs


def image_explainers(
    names: Sequence[str], model: nn.Module, seed: int = 0, params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, ExplainFn]:
    """Explain functions for ``names``; CAM methods get the vision adapter's GradCAM layer
    (``spmm.adapters.vision.gradcam_layer``) unless ``params`` name one."""
    from spmm.methods.registry import check_parameters, get_method, list_methods

    known = list_methods()
    params = _per_name(params, known, "explainer")
    for name, extra in params.items():
        check_parameters(get_method(name), extra)
    explainers = {}
    for name in names:
        if name not in known:
            raise SpmmInputError(f"unknown explainer {name!r}; available: {', '.join(sorted(known))}")
        extra = dict(params.get(name, {}))
        if name in CAM_METHODS and "layer" not in extra:
            from spmm.adapters.vision import gradcam_layer

            extra["layer"] = gradcam_layer(model)
        explainers[name] = explainer(name, seed=seed, **extra)
    return explainers


def _per_name(params: Mapping[str, Any] | None, known: Sequence[str], kind: str) -> dict[str, dict[str, Any]]:
    """Check that per-name parameters map known ``kind`` names to objects of settings."""
    params = dict(params or {})
    for name, value in params.items():
        if name not in known:
            raise SpmmInputError(f"parameters given for unknown {kind} {name!r}; available: {', '.join(sorted(known))}")
        if not isinstance(value, Mapping):
            raise SpmmInputError(f"parameters of {kind} {name!r} must be an object of settings, got {value!r}")
    return params
